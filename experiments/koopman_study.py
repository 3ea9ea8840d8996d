"""Paper 2's studies: Koopman magnitude / gradient pruning (KMP, KGP) against magnitude / gradient pruning.

Run: ``.venv/bin/python -m experiments.koopman_study [--model mnistnet] [--dataset mnist-npm10k] [--smoke]``.

One seeded training run to convergence (``--train-epochs``), with the weights kept at the end of each of
``--early-epochs``. Pruned tensors: every conv and linear weight but the classifier, under one global threshold
(compression = weights of those tensors / kept weights). For each pruning point a window of snapshots
(``--window-steps`` optimiser steps, default one epoch, of the same recipe) starts at that point's weights; its
exact DMD gives the KMP and KGP scores.

- Converged (claim: KMP and global magnitude pruning nearly coincide): at compressions ``--compressions``,
  test accuracy right after pruning and after ``--finetune-epochs`` of fine-tuning, and the overlap of the kept
  sets (|KMP kept & GMP kept| / kept).
- Pre-convergence (claim: KMP ranks by where weights are going): at each early epoch and ``--early-compression``,
  accuracies of KMP and GMP, their overlap, and the overlap of each with the converged model's GMP mask.
- KGP vs gradient pruning (claim: nearly equivalent): at the same points, accuracies and the overlap, against two
  references: the noise floor (the gradient rule on two different minibatches) and the window-averaged gradient
  rule (``|w * mean g|`` over ``WINDOW_GRADIENT_BATCHES`` minibatches after those two), also pruned and fine-tuned.

``--seed N`` (N > 0) writes to ``...-seedN``; ``experiments.koopman_report`` pools the seeds with intervals.

Writes ``results.json``, ``results.csv`` and three PNG plots into ``--out``; ``summary.md`` holds the tables.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from allocator.data import load_dataset  # noqa: E402
from allocator.io_utils import atomic_write_text  # noqa: E402
from allocator.koopman import koopman_scores, record_window  # noqa: E402
from allocator.models import get_model  # noqa: E402
from allocator.pruning import (  # noqa: E402
    ScoreContext,
    Tensors,
    TrainConfig,
    describe,
    evaluate,
    global_kept,
    mask_from_scores,
    scores,
    set_threads,
    train,
)
from allocator.study.cells import finetune_cell, prune_from_dense  # noqa: E402
from allocator.study.seeds import derive_seed  # noqa: E402


def kept_sets(layer_scores: dict[str, torch.Tensor], budget: int) -> tuple[dict[str, int], set[tuple[str, int]]]:
    """Global-threshold kept counts and the set of kept (tensor, flat index) pairs."""
    counts = global_kept(layer_scores, budget)
    kept = set()
    for name, count in counts.items():
        mask = mask_from_scores(layer_scores[name], count).flatten()
        kept.update((name, int(i)) for i in torch.nonzero(mask).flatten().tolist())
    return counts, kept


def prune_and_tune(entry, state, data, layer_scores, budget, finetune: TrainConfig, seed: int) -> dict[str, float]:
    """The cell protocol (``allocator.study.cells``) with one global threshold's counts; masked dense fine-tuning."""
    counts, _ = kept_sets(layer_scores, budget)
    model = prune_from_dense(entry.build, state, layer_scores, counts)
    pruned = evaluate(model, data.test_x, data.test_y)[1]
    if finetune.epochs:
        # the committed results fine-tuned with the dense training's stream; kept so that they reproduce
        finetune_cell(model, entry.build, data, finetune, seed, sparse=False, seed_purpose="dense")
    return {"accuracy_pruned": pruned, "accuracy_finetuned": evaluate(model, data.test_x, data.test_y)[1]}


#: Minibatches the window-averaged gradient rule averages over (of the stored training order, after the two the
#: gradient rule and its noise floor use).
WINDOW_GRADIENT_BATCHES = 64


def window_gradient_scores(model: torch.nn.Module, names: Sequence[str], data: Tensors, batch_size: int,
                           batches: int, first: int = 0) -> dict[str, torch.Tensor]:
    """``|w * mean_k g_k|``: the gradient rule with the gradient averaged over ``batches`` consecutive minibatches of
    the training set in its stored order, from minibatch ``first`` (the comparator KGP needs: its change over a
    window is, to first order, the negative summed gradient)."""
    parameters = [model.get_parameter(name) for name in names]
    totals = [torch.zeros_like(p, dtype=torch.float64) for p in parameters]
    was_training = model.training
    model.eval()
    try:
        used = 0
        for index in range(first, first + batches):
            rows = slice(index * batch_size, (index + 1) * batch_size)
            if rows.start >= len(data.train_y):
                break
            loss = torch.nn.functional.cross_entropy(model(data.train_x[rows]), data.train_y[rows])
            for total, grad in zip(totals, torch.autograd.grad(loss, parameters)):
                total += grad.double()
            used += 1
    finally:
        model.train(was_training)
    return {name: (p.detach().double() * total / max(1, used)).abs() for name, p, total in zip(names, parameters, totals)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnistnet")
    parser.add_argument("--dataset", default="mnist-npm10k")
    parser.add_argument("--data-dir")
    parser.add_argument("--train-epochs", type=int, default=10)
    parser.add_argument("--early-epochs", default="1,2,3")
    parser.add_argument("--compressions", default="2,4,8,16,32,64")
    parser.add_argument("--early-compression", type=float, default=8.0)
    parser.add_argument("--window-steps", type=int, help="snapshot window in optimiser steps (default one epoch)")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    parser.add_argument("--smoke", action="store_true", help="tiny settings for the test suite")
    args = parser.parse_args(argv)
    if args.smoke:
        args.train_epochs, args.early_epochs, args.compressions = 2, "1", "2,8"
        args.window_steps = args.window_steps or 12
    early = [int(e) for e in args.early_epochs.split(",") if e]
    compressions = [float(c) for c in args.compressions.split(",")]
    if any(e >= args.train_epochs or e < 1 for e in early):
        parser.error(f"--early-epochs {early} must lie in [1, --train-epochs - 1]")
    out = Path(args.out or f"experiments/results/koopman-{args.model}-{args.dataset}"
               + (f"-seed{args.seed}" if args.seed else "") + ("-smoke" if args.smoke else ""))
    set_threads(1)
    say = lambda message: print(f"[koopman] {message}", file=sys.stderr, flush=True)  # noqa: E731

    entry = get_model(args.model)
    dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    data = Tensors.from_dataset(dataset)
    description = describe(entry.build(), data.train_x[:1])
    classifier = description.network.names[-1]
    names = [n for n in description.weight_names if n != classifier]
    recipe = TrainConfig(epochs=args.train_epochs)
    finetune = TrainConfig(epochs=args.finetune_epochs)
    steps = args.window_steps or -(-len(data.train_y) // recipe.batch_size)

    torch.manual_seed(derive_seed(args.seed, "dense"))
    model = entry.build()
    checkpoints: dict[int, dict[str, torch.Tensor]] = {0: copy.deepcopy(model.state_dict())}

    def keep_epochs(epoch: int, total: int, record) -> None:
        say(f"epoch {epoch}/{total}: validation accuracy {100 * record.select_accuracy:.2f} %")
        if epoch in early:
            checkpoints[epoch] = copy.deepcopy(model.state_dict())

    start = time.perf_counter()
    history = train(model, data, recipe, args.seed, progress=keep_epochs)
    converged = copy.deepcopy(model.state_dict())
    dense_accuracy = evaluate(model, data.test_x, data.test_y)[1]
    total = sum(model.get_parameter(n).numel() for n in names)
    say(f"trained {args.train_epochs} epochs in {time.perf_counter() - start:.0f} s; selected epoch {history.best_epoch}; "
        f"test accuracy {100 * dense_accuracy:.2f} %; {total} weights in the pruned tensors")

    def analyse(state: dict[str, torch.Tensor], label: str):
        current = entry.build()
        current.load_state_dict(state)
        window_start = time.perf_counter()
        store = record_window(current, data, names, steps=steps, config=recipe, seed=derive_seed(args.seed, "koopman-study-window"),
                              directory=str(out / "snapshots"))
        try:
            koopman = koopman_scores(store)
        finally:
            store.close()
        say(f"{label}: window of {store.count} snapshots, DMD rank {koopman.rank}, eigenvalue closest to 1 "
            f"{koopman.eigenvalue:.6f} ({time.perf_counter() - window_start:.1f} s)")
        batch = slice(0, recipe.batch_size)
        context = ScoreContext(seed=args.seed, inputs=data.train_x[batch], targets=data.train_y[batch],
                               extra={"koopman": koopman})
        table = {c: scores(c, current, names, context) for c in ("magnitude", "kmp", "gradient", "kgp")}
        second = ScoreContext(seed=args.seed, inputs=data.train_x[recipe.batch_size:2 * recipe.batch_size],
                              targets=data.train_y[recipe.batch_size:2 * recipe.batch_size])
        table["gradient-batch2"] = scores("gradient", current, names, second)  # the noise floor of the gradient rule
        table["gradient-window"] = window_gradient_scores(current, names, data, recipe.batch_size,  # disjoint from
                                                          min(steps, WINDOW_GRADIENT_BATCHES), first=2)  # both above
        return koopman, table

    rows: list[dict[str, object]] = []
    final_gmp: set | None = None
    koopman, converged_scores = analyse(converged, "converged")
    for compression in compressions:
        budget = max(1, round(total / compression))
        _, gmp_set = kept_sets(converged_scores["magnitude"], budget)
        _, kmp_set = kept_sets(converged_scores["kmp"], budget)
        if compression == args.early_compression:
            final_gmp = gmp_set
        for criterion in ("magnitude", "kmp"):
            result = prune_and_tune(entry, converged, data, converged_scores[criterion], budget, finetune, args.seed)
            rows.append({"study": "converged", "epoch": args.train_epochs, "compression": compression,
                         "criterion": criterion, **result, "overlap_kmp_gmp": len(gmp_set & kmp_set) / budget,
                         "eigenvalue_real": koopman.eigenvalue.real, "eigenvalue_imag": koopman.eigenvalue.imag})
            say(f"converged, compression {compression:g}, {criterion}: {100 * result['accuracy_pruned']:.2f} % -> "
                f"{100 * result['accuracy_finetuned']:.2f} %")
    budget = max(1, round(total / args.early_compression))
    if final_gmp is None:
        _, final_gmp = kept_sets(converged_scores["magnitude"], budget)
    for epoch in early:
        koopman, table = analyse(checkpoints[epoch], f"epoch {epoch}")
        sets = {c: kept_sets(table[c], budget)[1] for c in table}
        for criterion in ("magnitude", "kmp", "gradient", "kgp", "gradient-window"):
            result = prune_and_tune(entry, checkpoints[epoch], data, table[criterion], budget, finetune, args.seed)
            rows.append({"study": "pre-convergence", "epoch": epoch, "compression": args.early_compression,
                         "criterion": criterion, **result,
                         "overlap_kmp_gmp": len(sets["kmp"] & sets["magnitude"]) / budget,
                         "overlap_kgp_gradient": len(sets["kgp"] & sets["gradient"]) / budget,
                         "overlap_gradient_two_batches": len(sets["gradient"] & sets["gradient-batch2"]) / budget,
                         "overlap_kgp_window_gradient": len(sets["kgp"] & sets["gradient-window"]) / budget,
                         "overlap_gradient_window_gradient": len(sets["gradient"] & sets["gradient-window"]) / budget,
                         "overlap_with_converged_gmp": len(sets[criterion] & final_gmp) / budget,
                         "eigenvalue_real": koopman.eigenvalue.real, "eigenvalue_imag": koopman.eigenvalue.imag})
            say(f"epoch {epoch}, {criterion}: {100 * result['accuracy_pruned']:.2f} % -> "
                f"{100 * result['accuracy_finetuned']:.2f} %")

    document = {"config": vars(args), "dataset": dataset.describe(), "pruned_tensors": names,
                "weights_in_pruned_tensors": total, "dense_test_accuracy": dense_accuracy,
                "window_steps": steps, "compression_counts": "weights of the pruned tensors / kept weights",
                "rows": rows}
    atomic_write_text(out / "results.json", json.dumps(document, indent=2))
    buffer = io.StringIO()
    fields = sorted({k for row in rows for k in row}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    atomic_write_text(out / "summary.md", summary_markdown(document))
    plot(document, out)
    print(summary_markdown(document))
    return 0


def summary_markdown(document: dict) -> str:
    rows = document["rows"]
    lines = [f"# Koopman pruning study: {document['config']['model']} on {document['dataset']['name']}",
             f"data: {document['dataset']['source']}; dense test accuracy {100 * document['dense_test_accuracy']:.2f} %; "
             f"pruned tensors {', '.join(document['pruned_tensors'])} ({document['weights_in_pruned_tensors']} weights); "
             f"window {document['window_steps']} steps", "",
             "## Converged: KMP vs global magnitude (GMP)", "",
             "| compression | GMP pruned % | GMP tuned % | KMP pruned % | KMP tuned % | kept-set overlap |",
             "| --- | --- | --- | --- | --- | --- |"]
    converged = [r for r in rows if r["study"] == "converged"]
    for compression in sorted({r["compression"] for r in converged}):
        gmp = next(r for r in converged if r["compression"] == compression and r["criterion"] == "magnitude")
        kmp = next(r for r in converged if r["compression"] == compression and r["criterion"] == "kmp")
        lines.append(f"| {compression:g} | {100 * gmp['accuracy_pruned']:.2f} | {100 * gmp['accuracy_finetuned']:.2f} | "
                     f"{100 * kmp['accuracy_pruned']:.2f} | {100 * kmp['accuracy_finetuned']:.2f} | "
                     f"{gmp['overlap_kmp_gmp']:.4f} |")
    early = [r for r in rows if r["study"] == "pre-convergence"]
    if early:
        lines += ["", f"## Pre-convergence at compression {early[0]['compression']:g}", "",
                  "| epoch | criterion | pruned % | tuned % | overlap with converged GMP mask | KMP&GMP | KGP&gradient | "
                  "gradient, two minibatches (noise floor) | KGP&window gradient | gradient&window gradient |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in early:
            extra = " | ".join(f"{r[k]:.4f}" if k in r else "-" for k in (
                "overlap_gradient_two_batches", "overlap_kgp_window_gradient", "overlap_gradient_window_gradient"))
            lines.append(f"| {r['epoch']} | {r['criterion']} | {100 * r['accuracy_pruned']:.2f} | "
                         f"{100 * r['accuracy_finetuned']:.2f} | {r['overlap_with_converged_gmp']:.4f} | "
                         f"{r['overlap_kmp_gmp']:.4f} | {r['overlap_kgp_gradient']:.4f} | {extra} |")
    return "\n".join(lines) + "\n"


def plot(document: dict, out: Path) -> None:
    from allocator.plotting import pyplot, save_figure

    rows = document["rows"]
    converged = [r for r in rows if r["study"] == "converged"]
    early = [r for r in rows if r["study"] == "pre-convergence"]
    figure, axes = pyplot().subplots(1, 3, figsize=(15, 4.2))
    for criterion, style in (("magnitude", "-o"), ("kmp", "--s")):
        sub = sorted((r for r in converged if r["criterion"] == criterion), key=lambda r: r["compression"])
        x = [r["compression"] for r in sub]
        axes[0].plot(x, [100 * r["accuracy_pruned"] for r in sub], style, label=f"{criterion}, right after pruning")
        axes[0].plot(x, [100 * r["accuracy_finetuned"] for r in sub], style, label=f"{criterion}, after fine-tuning")
    axes[0].set_xscale("log", base=2)
    axes[0].set(xlabel="compression (pruned-tensor weights / kept)", ylabel="test accuracy (%)",
                title="converged: KMP vs global magnitude")
    for criterion in ("magnitude", "kmp", "gradient", "kgp", "gradient-window"):
        sub = sorted((r for r in early if r["criterion"] == criterion), key=lambda r: r["epoch"])
        if sub:
            axes[1].plot([r["epoch"] for r in sub], [r["overlap_with_converged_gmp"] for r in sub], "-o", label=criterion)
            axes[2].plot([r["epoch"] for r in sub], [100 * r["accuracy_pruned"] for r in sub], "-o", label=criterion)
    axes[1].set(xlabel="epoch of pruning", ylabel="overlap of kept set with converged GMP mask",
                title="pre-convergence: where weights are going")
    axes[2].set(xlabel="epoch of pruning", ylabel="test accuracy right after pruning (%)",
                title="pre-convergence: accuracy")
    for axis in axes:
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{document['config']['model']} on {document['dataset']['name']}")
    figure.tight_layout()
    save_figure(figure, out / "koopman_study.png")


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
