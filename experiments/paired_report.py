"""The quick paired check of issue 13, from the cells of ``allocator validate`` runs (never typed by hand).

Run: ``.venv/bin/python -m experiments.paired_report [--out experiments/results/quick-paired-REPORT.md] FOLDER...``
with the run folders (default: the two quick-paired runs). Writes one report: per model, accuracy per rule and
density (``experiments.paper1_report``'s tables), then ours against every other rule and objective at every
(model, density): paired difference on the same seeds, paired t-test, Holm-corrected over all those comparisons;
only a Holm-adjusted p < 0.05 counts as a win or a loss. A second family compares ``ours-guarded`` against every
rule the same way (its own Holm correction), since the guarded objective is the one issue 13 asks about.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Sequence

from allocator.io_utils import atomic_write_text
from allocator.study.summary import load_cells
from experiments.cnn_report import _paired_p_value, holm
from experiments.paper1_report import analyse, section

DEFAULT_FOLDERS = ("experiments/results/quick-paired-mlp-2x100", "experiments/results/quick-paired-lenet-300-100")


def versus(folder: Path, reference: str) -> list[dict[str, object]]:
    """``reference`` against every other rule at every density of one run folder (paired seeds)."""
    cells = [c for c in load_cells(folder) if "test_accuracy" in c]
    by_key: dict[tuple[float, str], dict[int, dict]] = {}
    for cell in cells:
        by_key.setdefault((cell["density"], cell["allocation"]), {})[cell["seed"]] = cell
    rows = []
    for (density, rule), other in sorted(by_key.items()):
        mine = by_key.get((density, reference))
        if rule == reference or mine is None:
            continue
        seeds = sorted(set(mine) & set(other))
        diffs = [mine[s]["test_accuracy"] - other[s]["test_accuracy"] for s in seeds]
        if diffs:
            rows.append({"density": density, "rule": rule, "pairs": len(seeds), "mean": statistics.fmean(diffs),
                         "p": _paired_p_value(diffs), "wins": sum(d > 0 for d in diffs),
                         "identical": all(mine[s].get("kept") == other[s].get("kept") for s in seeds)})
    return rows


def family(title: str, reference: str, rows: list[tuple[str, dict]]) -> list[str]:
    """One Holm family: counts of wins and losses, then every comparison."""
    adjusted = holm([float(r["p"]) for _, r in rows])
    for (_, r), p in zip(rows, adjusted):
        r["p_holm"] = p
    wins = [(m, r) for m, r in rows if not math.isnan(r["p_holm"]) and r["p_holm"] < 0.05 and r["mean"] > 0]
    losses = [(m, r) for m, r in rows if not math.isnan(r["p_holm"]) and r["p_holm"] < 0.05 and r["mean"] < 0]
    tested = sum(not math.isnan(r["p"]) for _, r in rows)

    def listed(items: list[tuple[str, dict]]) -> str:
        return "".join(f"\n  - {m} at {r['density']:g} vs {r['rule']}: {100 * r['mean']:+.2f} pp ({r['wins']}/"
                       f"{r['pairs']} seeds won, p_holm {r['p_holm']:.3g})" for m, r in items)

    lines = [f"## {title}", "",
             f"{len(rows)} (model, density, rule) comparisons of `{reference}` on paired seeds, {tested} testable "
             f"(paired t-test, Holm-corrected over those {tested}); a result only where the Holm-adjusted p < 0.05.",
             "", f"- `{reference}` better: {len(wins)}{listed(wins)}", f"- `{reference}` worse: {len(losses)}"
             f"{listed(losses)}", f"- no detectable difference: {len(rows) - len(wins) - len(losses)}", "",
             f"| model | density | vs | pairs | {reference} - rule (pp) | won | p | p (Holm) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m, r in rows:
        same = " (same allocation)" if r["identical"] else ""
        p = "n/a" if math.isnan(r["p"]) else f"{r['p']:.3g}"
        ph = "n/a" if math.isnan(r["p_holm"]) else f"{r['p_holm']:.3g}"
        lines.append(f"| {m} | {r['density']:g} | {r['rule']}{same} | {r['pairs']} | {100 * r['mean']:+.2f} | "
                     f"{r['wins']}/{r['pairs']} | {p} | {ph} |")
    return lines + [""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", default=list(DEFAULT_FOLDERS))
    parser.add_argument("--out", default="experiments/results/quick-paired-REPORT.md")
    args = parser.parse_args(argv)
    folders = [Path(f) for f in args.folders]
    missing = [str(f) for f in folders if not (f / "cells").is_dir()]
    if missing:
        raise SystemExit(f"no cells under {', '.join(missing)}: run allocator validate there first (see the report)")
    tables: list[str] = []
    ours: list[tuple[str, dict]] = []
    guarded: list[tuple[str, dict]] = []
    for folder in folders:
        model = folder.name.removeprefix("quick-paired-")
        tables += section(f"{model} on Fashion-MNIST (magnitude criterion)", analyse(folder)) + [""]
        ours += [(model, r) for r in versus(folder, "ours")]
        guarded += [(model, r) for r in versus(folder, "ours-guarded")]
    lines = ["# Issue 13's quick paired check: measured answers", "",
             f"Generated by `python -m experiments.paired_report` from the cells under {', '.join(map(str, folders))}. "
             "Test accuracy after one-shot layer-magnitude pruning (classifier dense, as every rule here) and "
             "fine-tuning with masks fixed; 10 paired seeds, 15 dense + 15 fine-tuning epochs, Fashion-MNIST; densities "
             "global over the prunable weights (fraction kept); pp = percentage points. `ours` maximises ln E[B]; "
             "`ours-distortion` minimises the summed per-layer output distortion (RD's curves); `ours-guarded` "
             "minimises it subject to ln E[B] >= the best - 1 nat.", ""]
    lines += family("Ours (the bound) against every rule and objective", "ours", ours)
    lines += family("The guarded objective against every rule", "ours-guarded", guarded)
    atomic_write_text(Path(args.out), "\n".join(lines + tables) + "\n")
    print("\n".join(lines[:40]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
