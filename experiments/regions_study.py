"""Actual linear regions of MLP 2x100 after pruning with uniform vs our allocation, beside accuracy and the bound.

Run: ``.venv/bin/python -m experiments.regions_study [--seeds 3] [--smoke]``.

Per seed: train the dense model (paper 1 recipe), count its regions exactly on ``--planes`` planes through test
images (polygon splitting, hidden layers). For each density of paper 1's MLP 2x100 grid and each allocation:
prune by layer magnitude to the allocation's counts, fine-tune with masks fixed, count the regions on the same
planes, and record test accuracy, ln E[B] (n0 = 784, papers' convention) and the bound for the slice
(n0 = 2, output layer excluded). Each cell is written atomically; a rerun resumes. Writes ``results.csv``,
``summary.md`` and ``regions_study.png`` into ``--out``.
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
from allocator.study.cells import finetune_cell, prune_from_dense  # noqa: E402
from allocator.study.seeds import derive_seed  # noqa: E402
from allocator.regions.model import count_model_regions, data_slice, images  # noqa: E402

PAPER_GRID = "0.01,0.005,0.0025,0.001,0.00075,0.0005,0.0001"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp-2x100")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--densities", default=PAPER_GRID)
    parser.add_argument("--allocations", default="ours,uniform")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--planes", type=int, default=3, help="planes through test images (3k, 3k+1, 3k+2)")
    parser.add_argument("--train-epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--out")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.densities, args.seeds, args.planes, args.train_epochs, args.finetune_epochs = "0.01,0.001", 1, 1, 1, 1
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
    allocations = {d: allocate(entry.network, density=d, baselines=("uniform",)) for d in densities}
    names = [n for n, p in zip(entry.network.names, entry.network.prunable) if p]
    atomic_write_text(out / "config.json", json.dumps({"args": vars(args), "dataset": dataset.describe()}, indent=2))

    def measure(model: torch.nn.Module) -> dict[str, object]:
        counts = [count_model_regions(model, plane, resolution=50) for plane in planes]
        return {"regions_per_plane": [c.regions for c in counts], "regions_mean": statistics.fmean(c.regions for c in counts),
                "count_seconds": sum(c.seconds for c in counts), "ln_bound_slice": counts[0].ln_bound_n0_2,
                "test_accuracy": evaluate(model, data.test_x, data.test_y)[1]}

    for seed in range(args.seeds):
        torch.manual_seed(derive_seed(seed, "dense"))
        dense = entry.build()
        trained = False
        for density in [1.0] + densities:
            for rule in (["dense"] if density == 1.0 else rules):
                path = out / "cells" / f"seed{seed}-d{density!r}-{rule}.json"
                if path.is_file():
                    continue
                if not trained:
                    say(f"seed {seed}: training the dense model ({args.train_epochs} epochs)")
                    train(dense, data, TrainConfig(epochs=args.train_epochs), derive_seed(seed, "dense"))
                    trained = True
                if rule == "dense":
                    model, ln_bound = dense, ln_expected_bound(entry.network, [1.0] * 3)
                else:
                    allocation = allocations[density]
                    kept_all = allocation.kept if rule == "ours" else allocation.baselines[rule].kept
                    kept = {n: k for n, k in zip(entry.network.names, kept_all) if n in names}
                    model = prune_from_dense(entry.build, dense.state_dict(), scores("magnitude", dense, names), kept)
                    finetune_cell(model, entry.build, data, TrainConfig(epochs=args.finetune_epochs), seed)
                    make_permanent(model)
                    ln_bound = ln_expected_bound(entry.network, [k / w for k, w in zip(kept_all, entry.network.weights)])
                cell = {"seed": seed, "density": density, "allocation": rule, "ln_bound": ln_bound, **measure(model)}
                atomic_write_text(path, json.dumps(cell))
                say(f"seed {seed} density {density:g} {rule}: {cell['regions_mean']:.1f} regions per plane, "
                    f"test accuracy {100 * cell['test_accuracy']:.2f} %")
    rows = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    table = summarise(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    text = markdown(table, dataset.describe(), args)
    atomic_write_text(out / "summary.md", text)
    plot(table, out / "regions_study.png", f"{args.model} on {args.dataset}")
    print(text)
    return 0


def summarise(rows: list[dict]) -> list[dict[str, object]]:
    groups: dict[tuple[float, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["density"], row["allocation"]), []).append(row)
    table = []
    for (density, rule), members in sorted(groups.items(), key=lambda item: (-item[0][0], item[0][1])):
        regions = [m["regions_mean"] for m in members]
        accuracy = [m["test_accuracy"] for m in members]
        table.append({"density": density, "allocation": rule, "seeds": len(members),
                      "regions_mean": statistics.fmean(regions),
                      "regions_std": statistics.stdev(regions) if len(regions) > 1 else 0.0,
                      "test_accuracy_mean": statistics.fmean(accuracy),
                      "test_accuracy_std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
                      "ln_bound": members[0]["ln_bound"], "ln_bound_slice_n0_2": members[0]["ln_bound_slice"],
                      "count_seconds_mean": statistics.fmean(m["count_seconds"] for m in members)})
    return table


def markdown(table: list[dict], dataset: dict, args: argparse.Namespace) -> str:
    lines = [f"# Linear regions of {args.model} on {dataset['name']} after pruning",
             f"data: {dataset['source']}; regions counted exactly on {args.planes} plane(s) through test images, "
             f"mean per plane; {args.seeds} seed(s); {args.train_epochs} + {args.finetune_epochs} epochs", "",
             "| density | allocation | regions per plane (mean ± std over seeds) | test accuracy % | ln E[B] (n0=784) "
             "| bound on the slice (n0=2) |", "| --- | --- | --- | --- | --- | --- |"]
    for row in table:
        lines.append(f"| {row['density']:g} | {row['allocation']} | {row['regions_mean']:.1f} ± {row['regions_std']:.1f} "
                     f"| {100 * row['test_accuracy_mean']:.2f} ± {100 * row['test_accuracy_std']:.2f} "
                     f"| {row['ln_bound']:.2f} | {math.exp(row['ln_bound_slice_n0_2']):.3g} |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict], path: Path, title: str) -> None:
    from allocator.plotting import pyplot, save_figure

    figure, axes = pyplot().subplots(1, 3, figsize=(15, 4.2))
    for rule in sorted({r["allocation"] for r in table if r["allocation"] != "dense"}):
        rows = sorted((r for r in table if r["allocation"] == rule), key=lambda r: r["density"])
        x = [r["density"] for r in rows]
        axes[0].errorbar(x, [r["regions_mean"] for r in rows], yerr=[r["regions_std"] for r in rows], marker="o",
                         capsize=3, label=rule)
        axes[1].errorbar(x, [100 * r["test_accuracy_mean"] for r in rows],
                         yerr=[100 * r["test_accuracy_std"] for r in rows], marker="o", capsize=3, label=rule)
        axes[2].plot(x, [r["ln_bound"] for r in rows], marker="o", label=rule)
    dense = [r for r in table if r["allocation"] == "dense"]
    if dense:
        axes[0].axhline(dense[0]["regions_mean"], color="grey", linestyle=":", label="dense")
        axes[1].axhline(100 * dense[0]["test_accuracy_mean"], color="grey", linestyle=":", label="dense")
    labels = ("linear regions per plane (exact)", "test accuracy (%)", "ln E[B] (nats, n0 = 784)")
    for axis, label in zip(axes, labels):
        axis.set_xscale("log")
        axis.set(xlabel="global density (fraction of prunable weights kept)", ylabel=label)
        axis.grid(True, alpha=0.3)
        axis.legend()
    axes[0].set_yscale("log")
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)


if __name__ == "__main__":
    raise SystemExit(main())
