"""Actual linear regions of MLP 2x100 after pruning with every rule, beside accuracy and the bound.

Run: ``.venv/bin/python -m experiments.regions_study [--seeds 3] [--smoke]``.

Per seed: train the dense model (paper 1 recipe). For each density of paper 1's MLP 2x100 grid and each rule:
prune by layer magnitude to the rule's counts, fine-tune with masks fixed, and measure the hidden layers' regions
three ways (``allocator.regions``): the distinct activation patterns over all test images, the exact number of
regions along ``--lines`` random lines, each through two test images (the whole chord of the box of valid inputs), and the exact
count on ``--planes`` planes through three test images (polygon splitting); with test accuracy and ln E[B]
(n0 = 784, papers' convention). Each cell is written atomically; a rerun resumes. Writes ``results.csv``,
``summary.md`` and ``regions_study.png`` into ``--out``.

No bound is set beside the plane counts: the n0 = 2 bound of the first study is not a model of a plane through
784-D input (the plane's count follows the number of first-layer hyperplanes that cross it, about the rows of the
first layer with a kept weight, while the n0 = 2 bound caps every layer's contribution at dimension 2 regardless of
how the 784-D regions are cut). The comparison with the bound is across rules at one density, with the full-input
measures, in ``summary.md``'s association table.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from allocator.allocation import allocate  # noqa: E402
from allocator.bound import ln_expected_bound  # noqa: E402
from allocator.data import load_dataset  # noqa: E402
from allocator.io_utils import atomic_write_text  # noqa: E402
from allocator.models import get_model  # noqa: E402
from allocator.pruning import (  # noqa: E402
    Tensors,
    TrainConfig,
    evaluate,
    make_permanent,
    scores,
    set_threads,
    train,
)
from allocator.study.cells import finetune_cell, kept_for_rule, prune_from_dense  # noqa: E402
from allocator.study.config import WEIGHT_FREE_RULES  # noqa: E402
from allocator.study.seeds import derive_seed  # noqa: E402
from allocator.regions.model import count_model_regions, data_slice, images, mlp_layers  # noqa: E402
from allocator.regions.patterns import distinct_patterns, line_pieces, random_lines  # noqa: E402

PAPER_GRID = "0.01,0.005,0.0025,0.001,0.00075,0.0005,0.0001"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp-2x100")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--densities", default=PAPER_GRID)
    parser.add_argument("--allocations", default="ours,uniform,erk,igq,synflow,lamp,global-magnitude")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--planes", type=int, default=3, help="planes through test images (3k, 3k+1, 3k+2)")
    parser.add_argument("--lines", type=int, default=20, help="random lines through test images (seeded, shared)")
    parser.add_argument("--train-epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--out")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.densities, args.seeds, args.planes, args.lines = "0.01,0.001", 1, 1, 3
        args.train_epochs, args.finetune_epochs = 1, 1
    densities = [float(d) for d in args.densities.split(",")]
    rules = [r.strip() for r in args.allocations.split(",")]
    out = Path(args.out or f"experiments/results/regions-{args.model}-{args.dataset}" + ("-smoke" if args.smoke else ""))
    set_threads(1)
    say = lambda message: print(f"[regions] {message}", file=sys.stderr, flush=True)  # noqa: E731
    entry = get_model(args.model)
    dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    data = Tensors.from_dataset(dataset)
    planes = [data_slice(images(data.test_x, [3 * k, 3 * k + 1, 3 * k + 2]), dataset.mean[0], dataset.std[0])
              for k in range(args.planes)]
    low, high = (0.0 - dataset.mean[0]) / dataset.std[0], (1.0 - dataset.mean[0]) / dataset.std[0]
    test_points = data.test_x.reshape(len(data.test_x), -1).double().numpy()
    args.test_images = len(test_points)
    lines = random_lines(test_points, args.lines, low, high, np.random.default_rng(0))
    free = tuple(r for r in rules if r in WEIGHT_FREE_RULES and r != "ours")
    allocations = {d: allocate(entry.network, density=d, baselines=free) for d in densities}
    names = [n for n, p in zip(entry.network.names, entry.network.prunable) if p]
    atomic_write_text(out / "config.json", json.dumps({"args": vars(args), "dataset": dataset.describe()}, indent=2))

    def measure(model: torch.nn.Module) -> dict[str, object]:
        counts = [count_model_regions(model, plane, resolution=50) for plane in planes]
        hidden = mlp_layers(model)[:-1]
        pieces = [line_pieces(hidden, start, end) for start, end in lines]
        return {"regions_per_plane": [c.regions for c in counts], "regions_mean": statistics.fmean(c.regions for c in counts),
                "count_seconds": sum(c.seconds for c in counts), "plane_bound_per_plane": [c.plane.max_regions for c in counts],
                "test_patterns": distinct_patterns(hidden, test_points), "line_pieces": pieces,
                "line_pieces_mean": statistics.fmean(pieces), "test_accuracy": evaluate(model, data.test_x, data.test_y)[1]}

    for seed in range(args.seeds):
        torch.manual_seed(derive_seed(seed, "dense"))
        dense = entry.build()
        init_state = {k: v.clone() for k, v in dense.state_dict().items()}

        def init_model() -> torch.nn.Module:
            fresh = entry.build()
            fresh.load_state_dict(init_state)
            return fresh

        trained = False
        for density in [1.0] + densities:
            for rule in (["dense"] if density == 1.0 else rules):
                path = out / "cells" / f"seed{seed}-d{density!r}-{rule}.json"
                if path.is_file() and "test_patterns" in json.loads(path.read_text()):
                    continue  # a cell of the first study (no full-input measures) is measured again
                if not trained:
                    say(f"seed {seed}: training the dense model ({args.train_epochs} epochs)")
                    train(dense, data, TrainConfig(epochs=args.train_epochs), derive_seed(seed, "dense"))
                    trained = True
                if rule == "dense":
                    model, ln_bound = dense, ln_expected_bound(entry.network, [1.0] * 3)
                else:
                    allocation = allocations[density]
                    kept = kept_for_rule(rule, allocation, dense, names, init_model=init_model,
                                         input_shape=(entry.network.input_width,))
                    if kept is None:
                        say(f"seed {seed} density {density:g} {rule}: the rule is unavailable at this budget; no cell")
                        continue
                    kept_all = [kept.get(n, w) for n, w in zip(entry.network.names, entry.network.weights)]
                    model = prune_from_dense(entry.build, dense.state_dict(), scores("magnitude", dense, names), kept)
                    finetune_cell(model, entry.build, data, TrainConfig(epochs=args.finetune_epochs), seed)
                    make_permanent(model)
                    ln_bound = ln_expected_bound(entry.network, [k / w for k, w in zip(kept_all, entry.network.weights)])
                cell = {"seed": seed, "density": density, "allocation": rule, "ln_bound": ln_bound,
                        "kept": None if rule == "dense" else kept, **measure(model)}
                atomic_write_text(path, json.dumps(cell))
                say(f"seed {seed} density {density:g} {rule}: {cell['test_patterns']} patterns over the test images, "
                    f"{cell['line_pieces_mean']:.1f} regions per line, {cell['regions_mean']:.1f} per plane, "
                    f"test accuracy {100 * cell['test_accuracy']:.2f} %")
    rows = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    rows = [r for r in rows if "test_patterns" in r and (r["allocation"] == "dense" or r["allocation"] in rules)]
    table = summarise(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    text = markdown(table, rows, dataset.describe(), args)
    atomic_write_text(out / "summary.md", text)
    plot(table, out / "regions_study.png", f"{args.model} on {args.dataset}")
    print(text)
    return 0


MEASURES = (("test_patterns", "patterns over the test images"), ("line_pieces_mean", "regions per random line"),
            ("regions_mean", "regions per plane"), ("test_accuracy", "test accuracy"))


def summarise(rows: list[dict]) -> list[dict[str, object]]:
    """Per (density, rule): mean and std over seeds of every measure and of ln E[B] (which depends on the seed for
    the weight-based rules: its mean over seeds)."""
    groups: dict[tuple[float, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["density"], row["allocation"]), []).append(row)
    table = []
    for (density, rule), members in sorted(groups.items(), key=lambda item: (-item[0][0], item[0][1])):
        entry: dict[str, object] = {"density": density, "allocation": rule, "seeds": len(members)}
        for key, _ in MEASURES + (("ln_bound", ""),):
            values = [float(m[key]) for m in members]
            entry[f"{key}_mean"] = statistics.fmean(values)
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        entry["ln_bound_varies"] = len({round(m["ln_bound"], 9) for m in members}) > 1
        entry["count_seconds_mean"] = statistics.fmean(m["count_seconds"] for m in members)
        table.append(entry)
    return table


def associations(rows: list[dict]) -> list[tuple[str, float, float, int]]:
    """Within-density association of ln E[B] with each measure over the pruned cells (every rule and seed):
    Spearman's rho with each density's ranks centred (``experiments.statistics.within_group_correlation``), and the
    plain Spearman rho across densities for contrast; with the number of cells."""
    from scipy.stats import spearmanr

    from experiments.statistics import within_group_correlation

    pruned = [r for r in rows if r["allocation"] != "dense"]
    out = []
    for key, label in MEASURES:
        x, y = [r["ln_bound"] for r in pruned], [float(r[key]) for r in pruned]
        within = within_group_correlation(x, y, [r["density"] for r in pruned], ranks=True)
        across = float(spearmanr(x, y).statistic) if len(pruned) > 2 else math.nan
        out.append((label, within, across, len(pruned)))
    return out


def markdown(table: list[dict], rows: list[dict], dataset: dict, args: argparse.Namespace) -> str:
    lines = [f"# Linear regions of {args.model} on {dataset['name']} after pruning", "",
             f"Data: {dataset['source']}. {args.seeds} seed(s); {args.train_epochs} dense + {args.finetune_epochs} "
             "fine-tuning epochs; layer-magnitude pruning to each rule's counts (classifier dense). Regions of the "
             f"hidden layers, three ways: distinct activation patterns over all {args.test_images} test images, "
             f"the exact count along {args.lines} random lines, each through two test images (the whole chord of the "
             f"box of valid inputs; the same lines for every cell), and the exact count on {args.planes} plane(s) "
             "through three test images. Mean ± std over seeds. ln E[B]: the bound at n0 = 784 (papers' "
             "convention); marked * where it depends on the seed (weight-based rules: mean over seeds).", "",
             "The first study also printed the bound for n0 = 2 beside the plane counts; it is dropped: a plane "
             "through 784-D input is cut by the first layer's hyperplanes that cross it (about one per first-layer "
             "row with a kept weight), which the n0 = 2 bound does not model, so ours (fewer live first-layer rows) "
             "can have fewer plane regions and a higher 784-D bound at once.", "",
             "| density | rule | test accuracy % | ln E[B] | patterns over the test images | regions per line | "
             "regions per plane |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in table:
        star = "*" if row["ln_bound_varies"] else ""
        lines.append(f"| {row['density']:g} | {row['allocation']} | {100 * row['test_accuracy_mean']:.2f} ± "
                     f"{100 * row['test_accuracy_std']:.2f} | {row['ln_bound_mean']:.2f}{star} | "
                     f"{row['test_patterns_mean']:.0f} ± {row['test_patterns_std']:.0f} | "
                     f"{row['line_pieces_mean_mean']:.1f} ± {row['line_pieces_mean_std']:.1f} | "
                     f"{row['regions_mean_mean']:.1f} ± {row['regions_mean_std']:.1f} |")
    lines += ["", "## Does the bound rank the measured regions?", "",
              "Spearman's rho between ln E[B] and each measure over every pruned cell (rule x seed): within a "
              "density (ranks centred per density: what allocation changes at a fixed budget) and across all "
              "densities (mostly the density itself).", "",
              "| measure | rho within a density | rho across densities | cells |", "| --- | --- | --- | --- |"]
    for label, within, across, cells in associations(rows):
        lines.append(f"| {label} | {within:.2f} | {across:.2f} | {cells} |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict], path: Path, title: str) -> None:
    """Each measure, test accuracy and ln E[B] against density, one line per rule (mean ± std over seeds)."""
    from allocator.plotting import pyplot, save_figure

    panels = MEASURES + (("ln_bound", "ln E[B] (nats, n0 = 784)"),)
    figure, axes = pyplot().subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0))
    for rule in sorted({r["allocation"] for r in table if r["allocation"] != "dense"}):
        rows = sorted((r for r in table if r["allocation"] == rule), key=lambda r: r["density"])
        x = [r["density"] for r in rows]
        for axis, (key, _) in zip(axes, panels):
            scale = 100.0 if key == "test_accuracy" else 1.0
            axis.errorbar(x, [scale * r[f"{key}_mean"] for r in rows], yerr=[scale * r[f"{key}_std"] for r in rows],
                          marker="o", markersize=3, capsize=2, label=rule)
    dense = [r for r in table if r["allocation"] == "dense"]
    for axis, (key, label) in zip(axes, panels):
        if dense:
            axis.axhline((100.0 if key == "test_accuracy" else 1.0) * dense[0][f"{key}_mean"], color="grey",
                         linestyle=":", label="dense")
        axis.set_xscale("log")
        if key in ("test_patterns", "line_pieces_mean", "regions_mean"):
            axis.set_yscale("log")
        axis.set(xlabel="global density (fraction of prunable weights kept)",
                 ylabel=label + (" (%)" if key == "test_accuracy" else ""))
        axis.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(title + ": hidden-layer regions measured three ways, accuracy and the bound")
    figure.tight_layout()
    save_figure(figure, path)


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
