"""Paper 1's claims, answered from the result files of ``experiments.paper1_study`` (never typed by hand).

Run: ``.venv/bin/python -m experiments.paper1_report [--root experiments/results/paper1]``. Reads every run
folder ``ROOT/DATASET/MODEL/CRITERION`` (its cells and allocation files) and writes ``ROOT/REPORT.md``:

- per (data set, model): test accuracy mean ± std per allocation and density, the paired difference
  ours - uniform with its 95 % Student-t interval and the wins, and the per-layer densities ours chose;
- claim 1 (a cliff past a critical density): per allocation, the largest drop of mean accuracy between
  neighbouring densities of the grid, and where it happens;
- claim 2 (the bound and accuracy fall together): Spearman's rank correlation between ln E[B] and mean
  accuracy over all (density, allocation) cells;
- claim 3 (bound-guided allocation often beats uniform): densities where the paired interval lies above 0,
  below 0, or contains 0, and the share of paired seeds where ours won.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Sequence

from allocator.io_utils import atomic_write_text
from allocator.pruning.validate import paired_interval


def load_cells(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / "cells").glob("*.json"))]


def analyse(folder: Path) -> dict[str, object]:
    cells = [c for c in load_cells(folder) if "test_accuracy" in c]
    groups: dict[tuple[float, str], list[dict]] = {}
    for cell in cells:
        groups.setdefault((cell["density"], cell["allocation"]), []).append(cell)
    densities = sorted({d for d, _ in groups}, reverse=True)
    rules = sorted({r for _, r in groups}, key=lambda r: ("ours", "uniform", "erk", "global-magnitude", "lamp").index(r)
                   if r in ("ours", "uniform", "erk", "global-magnitude", "lamp") else 9)
    mean = {k: statistics.fmean(c["test_accuracy"] for c in v) for k, v in groups.items()}
    spread = {k: statistics.stdev([c["test_accuracy"] for c in v]) if len(v) > 1 else 0.0 for k, v in groups.items()}
    bound = {k: v[0]["ln_bound"] for k, v in groups.items()}
    paired = {}
    for density in densities:
        ours = {c["seed"]: c["test_accuracy"] for c in groups.get((density, "ours"), [])}
        uniform = {c["seed"]: c["test_accuracy"] for c in groups.get((density, "uniform"), [])}
        seeds = sorted(set(ours) & set(uniform))
        if seeds:
            diffs = [ours[s] - uniform[s] for s in seeds]
            m, low, high = paired_interval(diffs)
            paired[density] = {"pairs": len(seeds), "mean": m, "low": low, "high": high,
                               "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs)}
    cliffs = {}
    for rule in rules:
        series = [(d, mean[(d, rule)]) for d in densities if (d, rule) in mean]
        drops = [(a[1] - b[1], a[0], b[0]) for a, b in zip(series, series[1:])]
        if drops:
            drop, upper, lower = max(drops)
            cliffs[rule] = {"drop": drop, "from_density": upper, "to_density": lower}
    keys = sorted(mean)
    correlation = None
    if len(keys) >= 3 and len({bound[k] for k in keys}) > 1 and len({mean[k] for k in keys}) > 1:
        from scipy import stats

        result = stats.spearmanr([bound[k] for k in keys], [mean[k] for k in keys])
        correlation = {"rho": float(result.statistic), "p_value": float(result.pvalue), "cells": len(keys)}
    chosen = {}
    for path in sorted((folder / "allocations").glob("*.json")):
        document = json.loads(path.read_text())
        layers = document["layers"]
        density = document["budget"]["given_value"]
        chosen[density] = {name: layers[name]["density"] for name in document["network"]["layer_order"]
                           if layers[name]["prunable"]}
    seconds = sum(c.get("seconds", 0.0) for c in cells)
    return {"seconds": seconds, "densities": densities, "rules": rules, "mean": mean, "spread": spread, "bound": bound,
            "paired": paired, "cliffs": cliffs, "correlation": correlation, "chosen": chosen,
            "seeds": sorted({c["seed"] for c in cells}), "cells": len(cells)}


def section(title: str, a: dict) -> list[str]:
    rules = a["rules"]
    lines = [f"## {title}", "", f"{a['cells']} cells, seeds {a['seeds']}; pruning, fine-tuning and evaluation took "
             f"{a['seconds'] / 60:.1f} min of one core in all ({a['seconds'] / max(1, a['cells']):.1f} s per cell; "
             f"dense training is not included)", "",
             "| density | " + " | ".join(f"{r} acc %" for r in rules) + " | ours - uniform (pp) [95 % CI] | wins |",
             "| --- | " + " | ".join("---" for _ in rules) + " | --- | --- |"]
    for d in a["densities"]:
        cells = [f"{100 * a['mean'][(d, r)]:.2f} ± {100 * a['spread'][(d, r)]:.2f}" if (d, r) in a["mean"] else "-"
                 for r in rules]
        p = a["paired"].get(d)
        if p:
            interval = "n/a" if math.isnan(p["low"]) else f"[{100 * p['low']:+.2f}, {100 * p['high']:+.2f}]"
            paired = f"{100 * p['mean']:+.2f} {interval}"
            wins = f"{p['wins']}/{p['pairs']} (lost {p['losses']})"
        else:
            paired, wins = "-", "-"
        lines.append(f"| {d:g} | " + " | ".join(cells) + f" | {paired} | {wins} |")
    lines += ["", "ln E[B] (nats) per allocation:", "",
              "| density | " + " | ".join(rules) + " |", "| --- | " + " | ".join("---" for _ in rules) + " |"]
    for d in a["densities"]:
        lines.append(f"| {d:g} | " + " | ".join(f"{a['bound'][(d, r)]:.2f}" if (d, r) in a["bound"] else "-"
                                                 for r in rules) + " |")
    if a["chosen"]:
        names = list(next(iter(a["chosen"].values())))
        lines += ["", "densities ours chose per layer:", "", "| global density | " + " | ".join(names) + " |",
                  "| --- | " + " | ".join("---" for _ in names) + " |"]
        for d in sorted(a["chosen"], reverse=True):
            lines.append(f"| {d:g} | " + " | ".join(f"{a['chosen'][d][n]:.3g}" for n in names) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="experiments/results/paper1")
    args = parser.parse_args(argv)
    root = Path(args.root)
    folders = sorted(p.parent for p in root.glob("*/*/*/cells"))
    if not folders:
        raise SystemExit(f"no run folders under {root}; run python -m experiments.paper1_study first")
    header = ["# Paper 1 reproduction: measured answers", "",
              "Generated by `python -m experiments.paper1_report` from the cells under this folder. Accuracy is test "
              "accuracy after one-shot layer-magnitude pruning and fine-tuning with masks fixed; densities are global "
              "over the prunable weights (fraction kept); pp = percentage points.", ""]
    lines: list[str] = []
    claims = ["## Claims", ""]
    above = below = undecided = single = wins = losses = pairs = 0
    for folder in folders:
        dataset, model, criterion = folder.parts[-3:]
        a = analyse(folder)
        title = f"{model} on {dataset} ({criterion})"
        lines += section(title, a) + [""]
        for p in a["paired"].values():
            wins += p["wins"]
            losses += p["losses"]
            pairs += p["pairs"]
            if math.isnan(p["low"]):
                single += 1
            elif p["low"] > 0:
                above += 1
            elif not math.isnan(p["high"]) and p["high"] < 0:
                below += 1
            else:
                undecided += 1
        cliff = a["cliffs"].get("uniform") or next(iter(a["cliffs"].values()), None)
        if cliff:
            claims.append(f"- {title}: the largest drop of uniform's mean accuracy is {100 * cliff['drop']:.1f} pp, "
                          f"between densities {cliff['from_density']:g} and {cliff['to_density']:g}"
                          + (f"; ours drops most ({100 * a['cliffs']['ours']['drop']:.1f} pp) between "
                             f"{a['cliffs']['ours']['from_density']:g} and {a['cliffs']['ours']['to_density']:g}"
                             if "ours" in a["cliffs"] else "") + ".")
        if a["correlation"]:
            c = a["correlation"]
            claims.append(f"- {title}: Spearman correlation of ln E[B] and mean accuracy over {c['cells']} "
                          f"(density, allocation) cells: {c['rho']:.3f} (p = {c['p_value']:.2g}).")
    claims.append(f"- Ours vs uniform over all (data set, model, density) cells with paired seeds: the 95 % interval "
                  f"of ours - uniform lies above 0 in {above}, below 0 in {below}, and contains 0 in {undecided}"
                  f"{f' ({single} cells have one paired seed so far: no interval)' if single else ''}; "
                  f"over {pairs} paired (seed, density) comparisons ours won {wins}, lost {losses} and tied "
                  f"{pairs - wins - losses} (identical accuracy: where the bound saturates ours is uniform, and at the "
                  f"sparsest densities every rule is at chance); win rate among decided pairs "
                  f"{100 * wins / max(1, wins + losses):.0f} %.")
    atomic_write_text(root / "REPORT.md", "\n".join(header + claims + [""] + lines) + "\n")
    print("\n".join(claims))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
