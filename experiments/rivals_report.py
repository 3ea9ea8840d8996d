"""Issue 14's report: ours against the strongest rivals with statistics a reviewer accepts, from the cells on disk.

Run: ``.venv/bin/python -m experiments.rivals_report [--root experiments/results/paper1] [--out
experiments/results/rivals-REPORT.md]``. Reads every run folder ``ROOT/DATASET/MODEL/CRITERION`` (the grid of
``experiments.rivals_study`` grows paper 1's folders) and writes the report and ``rivals-primary.png`` beside it.
Nothing is typed by hand; what is not on disk yet is absent, and the report says how many cells it read.

Declared up front, before any number:

- **Primary comparison**, per cell (data set, model, density): ours (the best of our objectives present: ``ours``,
  ``ours-distortion``, ``ours-guarded``, by mean accuracy) against the best rival (the best other rule by mean
  accuracy), paired seeds, paired t-test, Holm-corrected over every cell of the family. Both sides are chosen after
  the fact; the rivals' side picks from more rules, so the selection favours them.
- **Secondary**: ``ours`` (the bound) against each rule, per cell, with Holm and Benjamini-Hochberg over the cells of
  that comparison (one family per rule), and the seed-pooled effect per (data set, model): for each seed the mean
  difference over the densities (those that hold the largest common set of seeds, where the grid is partly grown),
  then a t-interval over seeds (Holm over every (data set, model, rule)).
- Only a Holm-adjusted p < 0.05 is called a win or a loss; "n.s." is no detectable difference.

Corrections of the first report (issue 14, item 3):

- densities whose budgets keep the same number of weights are one experiment: merged under the densest (e.g.
  LeNet-5's 9e-05 and 8e-05 both keep 5 weights);
- a comparison whose two rules keep identical counts on every seed is "same allocation" (zero by construction):
  listed, never tested or plotted as a measured zero;
- ln E[B] of a rule whose counts depend on the seed (global magnitude, LAMP, SynFlow, RD) is the mean over seeds,
  marked ``*``;
- exact ties between different allocations are explained: both at chance (<= 12 % on 10 classes), the same effective
  counts (weights on an input-to-output path, ``effective_kept``), or neither (listed);
- the association of the bound with accuracy is given within a density (ranks centred per density,
  ``experiments.statistics.within_group_correlation``), beside the across-density correlation and density's own;
- each model says what was pruned and fine-tuned (LeNet-5 in paper 1's folders: convolutions frozen).

The random-pruning control (``criterion random`` folders: each rule's counts, the kept weights drawn at random) is
analysed alike in families of its own and reported in its own section, never pooled with the grid.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Sequence

from allocator.io_utils import atomic_write_text
from allocator.study.statistics import paired_interval
from allocator.study.summary import load_cells
from experiments.rivals_study import CONTROL_MODELS
from experiments.statistics import benjamini_hochberg, holm, paired_t_p_value, within_group_correlation

CHANCE = 0.12  # at or below this test accuracy (10 classes) a cell predicts at chance
ALPHA = 0.05


def is_ours(rule: str) -> bool:
    return rule == "ours" or rule.startswith("ours-")


def _budget(cell: dict) -> int:
    return sum(cell["kept"].values())


def read_folder(folder: Path) -> dict[str, object]:
    """Cells by (density, rule, seed) with merged densities, and the folder's description."""
    config = json.loads((folder / "config.json").read_text()).get("config", {})
    cells = [c for c in load_cells(folder) if "test_accuracy" in c and "kept" in c]
    budgets: dict[float, int] = {}  # the most any rule keeps at a density: the budget (a rule may keep fewer)
    for cell in cells:
        budgets[cell["density"]] = max(budgets.get(cell["density"], 0), _budget(cell))
    by_budget: dict[int, list[float]] = {}
    for density, kept in budgets.items():
        by_budget.setdefault(kept, []).append(density)
    merged = {}  # density -> the densest density with the same budget
    for densities in by_budget.values():
        for density in densities:
            merged[density] = max(densities)
    table: dict[tuple[float, str, int], dict] = {}
    for cell in sorted(cells, key=lambda c: -c["density"]):  # densest first: a merged density keeps its own cell
        key = (merged[cell["density"]], cell["allocation"], cell["seed"])
        table.setdefault(key, cell)
    dense_of: dict[int, set] = {}
    for cell in cells:
        dense_of.setdefault(cell["seed"], set()).add(cell.get("dense_test_accuracy"))
    mixed = sorted(seed for seed, values in dense_of.items() if len(values) > 1)  # cells of one seed, two dense models
    frozen = bool(config.get("freeze_features"))
    convs = bool(config.get("convs_inside"))
    return {"cells": table, "count": len(cells), "merged": {d: m for d, m in merged.items() if d != m}, "mixed": mixed,
            "pruned": "every conv and linear layer" if convs else "the linear layers",
            "finetuned": "the linear layers only (convolutions frozen at the dense model)" if frozen else "every layer",
            "criterion": config.get("criterion", "magnitude")}


def compare(table: dict, density: float, mine: str, other: str) -> dict | None:
    """``mine`` - ``other`` on the seeds both hold at ``density``; ``None`` when none."""
    seeds = sorted({s for d, r, s in table if d == density and r == mine} &
                   {s for d, r, s in table if d == density and r == other})
    if not seeds:
        return None
    a, b = [table[(density, mine, s)] for s in seeds], [table[(density, other, s)] for s in seeds]
    diffs = [x["test_accuracy"] - y["test_accuracy"] for x, y in zip(a, b)]
    identical = all(x["kept"] == y["kept"] for x, y in zip(a, b))
    mean, low, high = paired_interval(diffs)
    return {"density": density, "mine": mine, "other": other, "pairs": len(seeds), "mean": mean, "low": low,
            "high": high, "p": math.nan if identical else paired_t_p_value(diffs), "identical": identical,
            "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs), "diffs": dict(zip(seeds, diffs)),
            "ties": [(x, y) for x, y, d in zip(a, b, diffs) if d == 0 and x["kept"] != y["kept"]]}


def adjust(rows: list[dict]) -> None:
    """Holm and Benjamini-Hochberg over ``rows`` (one family), in place; identical allocations are not tested."""
    tested = [r for r in rows if not math.isnan(r["p"])]
    for r, h, b in zip(tested, holm([r["p"] for r in tested]), benjamini_hochberg([r["p"] for r in tested])):
        r["p_holm"], r["p_bh"] = h, b
    for r in rows:
        r.setdefault("p_holm", math.nan)
        r.setdefault("p_bh", math.nan)
        r["verdict"] = ("same allocation" if r["identical"] else "n.s." if math.isnan(r["p_holm"]) or
                        r["p_holm"] >= ALPHA else "better" if r["mean"] > 0 else "worse")


def _interval(r: dict) -> str:
    if math.isnan(r["low"]):
        return f"{100 * r['mean']:+.2f}"
    return f"{100 * r['mean']:+.2f} [{100 * r['low']:+.2f}, {100 * r['high']:+.2f}]"


def _p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2g}"


def analyse(root: Path, criterion: str = "magnitude") -> dict[str, object]:
    """Every comparison of the module docstring over the run folders of one pruning criterion (``magnitude``: the
    grid; ``random``: the control, analysed alike in a family of its own)."""
    folders = sorted(p.parent for p in root.glob(f"*/*/{criterion}/cells"))
    runs = {}
    for folder in folders:
        dataset, model, _ = folder.parts[-3:]
        runs[(dataset, model)] = read_folder(folder)
    primary, secondary, pooled, associations, ties = [], {}, [], [], []
    for (dataset, model), run in runs.items():
        table = run["cells"]
        rules = sorted({r for _, r, _ in table})
        densities = sorted({d for d, _, _ in table}, reverse=True)
        run["rules"], run["densities"] = rules, densities
        for density in densities:
            means = {r: statistics.fmean(c["test_accuracy"] for (d, rr, _), c in table.items() if d == density
                                         and rr == r) for r in rules if any(k[:2] == (density, r) for k in table)}
            ours_side = {r: m for r, m in means.items() if is_ours(r)}
            rivals = {r: m for r, m in means.items() if not is_ours(r)}
            if ours_side and rivals:
                best_ours, best_rival = max(ours_side, key=ours_side.get), max(rivals, key=rivals.get)
                row = compare(table, density, best_ours, best_rival)
                if row is not None:
                    primary.append({"dataset": dataset, "model": model, **row})
            for rule in rules:
                if rule == "ours" or "ours" not in means or rule not in means:
                    continue
                row = compare(table, density, "ours", rule)
                if row is not None:
                    secondary.setdefault(rule, []).append({"dataset": dataset, "model": model, **row})
                    ties += [(dataset, model, density, rule, x, y) for x, y in row["ties"]]
        for rule in rules:
            rows = [r for r in secondary.get(rule, []) if (r["dataset"], r["model"]) == (dataset, model)
                    and not r["identical"]]
            if rows:  # pool the densities that share the largest seed set (a partly grown grid has fewer seeds)
                widest = max((frozenset(r["diffs"]) for r in rows), key=lambda k: (len(k), sum(
                    frozenset(r["diffs"]) == k for r in rows)))
                rows = [r for r in rows if frozenset(r["diffs"]) == widest]
            seeds = sorted(set.intersection(*(set(r["diffs"]) for r in rows))) if rows else []
            if len(seeds) >= 2:
                per_seed = [statistics.fmean(r["diffs"][s] for r in rows) for s in seeds]
                mean, low, high = paired_interval(per_seed)
                pooled.append({"dataset": dataset, "model": model, "other": rule, "mean": mean, "low": low,
                               "high": high, "pairs": len(seeds), "densities": len(rows), "identical": False,
                               "p": paired_t_p_value(per_seed), "wins": sum(v > 0 for v in per_seed),
                               "losses": sum(v < 0 for v in per_seed)})
        cells = list(table.values())
        if len(cells) > 3:
            from scipy.stats import spearmanr

            bound = [c["ln_bound"] for c in cells]
            accuracy = [c["test_accuracy"] for c in cells]
            density_of = [c["density"] for c in cells]
            def rho(x: Sequence[float], y: Sequence[float]) -> float:
                return float(spearmanr(x, y).statistic) if len(set(x)) > 1 and len(set(y)) > 1 else math.nan

            associations.append({
                "dataset": dataset, "model": model, "cells": len(cells),
                "within_spearman": within_group_correlation(bound, accuracy, density_of, ranks=True),
                "within_pearson": within_group_correlation(bound, accuracy, density_of),
                "across_bound": rho(bound, accuracy), "across_density": rho(density_of, accuracy)})
    adjust(primary)
    for rows in secondary.values():
        adjust(rows)
    adjust(pooled)
    return {"runs": runs, "primary": primary, "secondary": secondary, "pooled": pooled,
            "associations": associations, "ties": ties}


def _tie_reason(x: dict, y: dict) -> str:
    if x["test_accuracy"] <= CHANCE:
        return "both at chance"
    if not x.get("effective_kept") or not y.get("effective_kept"):
        return "effective counts not recorded"
    if x["effective_kept"] == y["effective_kept"]:
        return "same effective counts"
    return "unexplained"


TIE_REASONS = ("both at chance", "same effective counts", "effective counts not recorded", "unexplained")


def plot(primary: list[dict], runs: dict, path: Path) -> None:
    """One panel per (data set, model): ours* - best rival (pp) against density with 95 % intervals; filled markers
    where Holm keeps the difference; same-allocation cells are not drawn."""
    from allocator.plotting import pyplot, save_figure

    keys = sorted({(r["dataset"], r["model"]) for r in primary})
    if not keys:
        return
    columns = min(4, len(keys))
    rows = -(-len(keys) // columns)
    figure, axes = pyplot().subplots(rows, columns, figsize=(4.4 * columns, 3.5 * rows), squeeze=False)
    for axis in axes.flat[len(keys):]:
        axis.set_visible(False)
    for axis, (dataset, model) in zip(axes.flat, keys):
        points = sorted((r for r in primary if (r["dataset"], r["model"]) == (dataset, model) and not r["identical"]),
                        key=lambda r: r["density"])
        for r in points:
            error = [[0.0], [0.0]] if math.isnan(r["low"]) else [[100 * (r["mean"] - r["low"])],
                                                                  [100 * (r["high"] - r["mean"])]]
            significant = r["verdict"] in ("better", "worse")
            axis.errorbar([r["density"]], [100 * r["mean"]], yerr=error, marker="o", capsize=3, color="tab:blue",
                          markerfacecolor="tab:blue" if significant else "white")
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set_xscale("log")
        run = runs[(dataset, model)]
        axis.set_title(f"{model}, {dataset}\npruned: {run['pruned']}; fine-tuned: "
                       f"{'linear only' if 'frozen' in run['finetuned'] else 'all'}", fontsize=8)
        axis.set_xlabel("global density (fraction kept)")
        axis.set_ylabel("best ours - best rival (pp)")
        axis.grid(True, alpha=0.3)
    figure.suptitle("Primary comparison, 95 % intervals; filled: Holm-adjusted p < 0.05", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def control_section(a: dict, control: dict) -> list[str]:
    """The random-pruning control: the same comparisons with random scores (``control``: ``analyse(root, "random")``),
    beside the magnitude grid's seed-pooled effect of ours against uniform."""
    lines = ["", "## Control: random pruning", ""]
    if not control.get("runs"):
        return lines + ["No random-pruning cells on disk yet (`python -m experiments.rivals_study` runs them on "
                        f"{', '.join(CONTROL_MODELS)} unless `--no-control`)."]
    lines += ["Each rule's counts, but the kept weights chosen at random (`criterion random`) instead of by magnitude: "
              "does an allocation's advantage survive without the criterion it was paired with? Same statistics, one "
              "family per comparison (Holm over the control's cells); the seed-pooled effect of ours against uniform "
              "under both criteria side by side (each pooled over its own densities and seeds, as the columns say: "
              "the two grids can differ in both).", "",
              "| data set | model | cells | primary: ours better / worse (Holm) | ours vs uniform: better / worse "
              "(Holm) | pooled ours - uniform, random (pp) | pooled ours - uniform, magnitude (pp) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    def pooled(analysis: dict, dataset: str, model: str) -> str:
        rows = [r for r in analysis["pooled"] if (r["dataset"], r["model"], r["other"]) == (dataset, model, "uniform")]
        return "-" if not rows else (f"{_interval(rows[0])} ({rows[0]['densities']} densities x {rows[0]['pairs']} "
                                     f"seeds, {rows[0]['verdict']})")

    for (dataset, model), run in sorted(control["runs"].items()):
        primary = [r for r in control["primary"] if (r["dataset"], r["model"]) == (dataset, model)]
        uniform = [r for r in control["secondary"].get("uniform", []) if (r["dataset"], r["model"]) == (dataset, model)]
        lines.append(f"| {dataset} | {model} | {run['count']} | {sum(r['verdict'] == 'better' for r in primary)} / "
                     f"{sum(r['verdict'] == 'worse' for r in primary)} of {len(primary)} | "
                     f"{sum(r['verdict'] == 'better' for r in uniform)} / {sum(r['verdict'] == 'worse' for r in uniform)}"
                     f" of {len(uniform)} | {pooled(control, dataset, model)} | {pooled(a, dataset, model)} |")
    lines += ["", "Primary comparison under random pruning, per cell:", "",
              "| data set | model | density | best ours | best rival | pairs | ours - rival (pp) [95 % CI] | won | "
              "p (Holm) | verdict |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in control["primary"]:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['density']:g} | {r['mine']} | {r['other']} | {r['pairs']} | "
                     f"{_interval(r)} | {r['wins']}/{r['pairs']} | {_p(r['p_holm'])} | {r['verdict']} |")
    return lines


def grid_time(root: Path) -> dict[str, object]:
    """What the grid of ``experiments.rivals_study`` (its defaults) still lacks and what it would cost, per run
    folder: cells wanted and on disk, and core seconds per computed cell from the sweep's ``tasks.jsonl`` (the tasks'
    seconds over the cells they computed, so a seed's dense training and the rules' solves are spread over its new
    cells), then the missing cells times that. A folder with no measured task borrows the cost of the magnitude
    folder of the same model (the random control; marked ``borrowed``), else the same model's cost on the other data
    set times the median cost ratio between the data sets over the models measured on both (``scaled``). A record
    line that does not parse (a sweep killed mid-write) is skipped and counted."""
    from experiments.rivals_study import DATASETS, MODELS, SEEDS, folder_cells, specs

    from allocator.study.sweep import read_task_log

    records, unreadable = read_task_log(root)
    spent: dict[tuple[str, str, str], list[float]] = {}
    for r in records:
        if r.get("new_cells"):
            entry = spent.setdefault((r["dataset"], r["model"], r.get("criterion", "magnitude")), [0.0, 0])
            entry[0] += r["seconds"]
            entry[1] += r["new_cells"]
    measured = {key: seconds / cells for key, (seconds, cells) in spent.items()}
    rows = []
    for spec in specs(MODELS, DATASETS, SEEDS, True):
        for dataset in spec.datasets:
            for model in spec.models:
                for criterion in spec.criteria:
                    wanted, present, stranded = folder_cells(root / dataset / model / criterion, spec.seeds,
                                                             spec.densities[model], spec.allocations, criterion)
                    rows.append({"dataset": dataset, "model": model, "criterion": criterion, "wanted": wanted,
                                 "present": present, "stranded": stranded,
                                 "core_seconds_per_cell": measured.get((dataset, model, criterion)), "how": "measured"})
    ratios = [measured[(DATASETS[0], m, "magnitude")] / measured[(DATASETS[1], m, "magnitude")] for m in MODELS
              if (DATASETS[0], m, "magnitude") in measured and (DATASETS[1], m, "magnitude") in measured]
    cost_ratio = statistics.median(ratios) if ratios else math.nan  # first data set's cost per cell over the second's
    for row in rows:
        if row["core_seconds_per_cell"] is None and (row["dataset"], row["model"], "magnitude") in measured:
            row["core_seconds_per_cell"] = measured[(row["dataset"], row["model"], "magnitude")]
            row["how"] = "borrowed"
        if row["core_seconds_per_cell"] is None:
            other = DATASETS[1] if row["dataset"] == DATASETS[0] else DATASETS[0]
            known = measured.get((other, row["model"], "magnitude"))
            if known is not None and not math.isnan(cost_ratio):
                row["core_seconds_per_cell"] = known * (cost_ratio if row["dataset"] == DATASETS[0] else 1 / cost_ratio)
                row["how"] = "scaled"
        if row["core_seconds_per_cell"] is None:
            row["how"] = "none"
    return {"rows": rows, "cost_ratio": cost_ratio, "datasets": DATASETS, "unreadable": unreadable}


def time_section(root: Path) -> list[str]:
    """The ``grid_time`` table and its totals: missing core hours, and wall hours on 2 workers (core time / 2)."""
    t = grid_time(root)
    rows = t["rows"]
    ratio = "no model measured on both" if math.isnan(t["cost_ratio"]) else f"{t['cost_ratio']:.1f}x"
    lines = ["", "## Time: the grid so far and what it lacks", "",
             "Core seconds per computed cell from `tasks.jsonl` (each task's seconds over the cells it computed: a "
             "seed's dense training, the rules' solves, pruning, fine-tuning and evaluation), on this project's 2-core "
             "CPU machine, one torch thread per worker; other work shared the cores at times, so these are upper "
             "estimates. Wall time on 2 workers is half the core time. A folder's average comes from the cells it "
             "computed so far and may not represent the densities still missing. Marks: † = borrowed from the "
             "magnitude folder of the same model; ~ = scaled from the same model on the other data set by the median "
             f"cost ratio {t['datasets'][0]} / {t['datasets'][1]} over the models measured on both ({ratio}). "
             "Stranded: cells on disk of an unfinished seed whose dense checkpoint is not (checkpoints are not in git "
             "and retraining does not reproduce them bit for bit), so the seed is recomputed whole; they count as "
             "missing.", "",
             "| data set | model | criterion | cells wanted | on disk | stranded | core s per cell | missing, core h |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    missing_core_seconds, unmeasured = 0.0, 0
    marks = {"measured": "", "borrowed": "†", "scaled": "~"}
    for r in rows:
        left, cost = r["wanted"] - r["present"] + r["stranded"], r["core_seconds_per_cell"]
        if cost is None:
            unmeasured += left
            lines.append(f"| {r['dataset']} | {r['model']} | {r['criterion']} | {r['wanted']} | {r['present']} | "
                         f"{r['stranded']} | no measurement | - |")
            continue
        missing_core_seconds += left * cost
        lines.append(f"| {r['dataset']} | {r['model']} | {r['criterion']} | {r['wanted']} | {r['present']} | "
                     f"{r['stranded']} | {marks[r['how']]}{cost:.2f} | {left * cost / 3600:.1f} |")
    wanted, present = sum(r["wanted"] for r in rows), sum(r["present"] for r in rows)
    stranded = sum(r["stranded"] for r in rows)
    lines += ["", f"On disk {present} of {wanted} cells ({stranded} of them stranded); the {wanted - present + stranded} "
              "to compute would take about "
              f"{missing_core_seconds / 3600:.1f} core hours, {missing_core_seconds / 7200:.1f} h of wall time on 2 "
              "workers" + (f" (plus {unmeasured} cells with no measurement)" if unmeasured else "")
              + ". The issue's goal: the MLP grid within 6 h of wall time on 2 cores."]
    if t["unreadable"]:
        lines.append(f"{t['unreadable']} line(s) of tasks.jsonl did not parse and were skipped.")
    return lines


def report(root: Path, a: dict, control: dict | None = None) -> list[str]:
    runs, primary = a["runs"], a["primary"]
    count = sum(run["count"] for run in runs.values())
    better = [r for r in primary if r["verdict"] == "better"]
    worse = [r for r in primary if r["verdict"] == "worse"]
    same = [r for r in primary if r["identical"]]
    lines = ["# Ours against the strongest rivals: measured answers", "",
             f"Generated by `python -m experiments.rivals_report --root {root}` from {count} cells in {len(runs)} run "
             "folders (layer-magnitude criterion). Test accuracy after one-shot pruning to each rule's counts "
             "(classifier dense) and fine-tuning with masks fixed, the epoch chosen on the validation split; pp = "
             "percentage points; densities global over the prunable weights. The module docstring declares the "
             "comparisons and corrections before any number.", "",
             "## Answer per model (primary comparison)", "",
             f"Best of our objectives against the best rival, per (data set, model, density), Holm over the "
             f"{sum(not math.isnan(r['p']) for r in primary)} testable cells "
             f"({sum(not r['identical'] and math.isnan(r['p']) for r in primary)} more with one seed pair: no test; "
             f"{len(same)} more cells: the two keep the same "
             f"counts). Ours better after correction: {len(better)}; worse: {len(worse)}.", "",
             "| data set | model | cells | ours better (Holm) | ours worse (Holm) | n.s. | same allocation | "
             "where ours loses, uncorrected (mean < 0, p < 0.05) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (dataset, model) in sorted(runs):
        rows = [r for r in primary if (r["dataset"], r["model"]) == (dataset, model)]
        loses = [f"{r['density']:g} ({r['mine']} vs {r['other']}: {100 * r['mean']:+.2f})" for r in rows
                 if not r["identical"] and r["mean"] < 0 and not math.isnan(r["p"]) and r["p"] < ALPHA]
        lines.append(f"| {dataset} | {model} | {len(rows)} | {sum(r['verdict'] == 'better' for r in rows)} | "
                     f"{sum(r['verdict'] == 'worse' for r in rows)} | {sum(r['verdict'] == 'n.s.' for r in rows)} | "
                     f"{sum(r['identical'] for r in rows)} | {'; '.join(loses) or '-'} |")
    lines += ["", "Plot: [rivals-primary.png](rivals-primary.png).", "",
              "| data set | model | density | best ours | best rival | pairs | ours - rival (pp) [95 % CI] | won | p | "
              "p (Holm) | verdict |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in primary:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['density']:g} | {r['mine']} | {r['other']} | {r['pairs']} | "
                     f"{_interval(r)} | {r['wins']}/{r['pairs']} | {_p(r['p'])} | {_p(r['p_holm'])} | {r['verdict']} |")
    lines += ["", "## Ours (the bound) against each rule", "",
              "Per rule one family: every (data set, model, density) cell where the two allocations differ. Columns: "
              "cells; intervals above / below 0 uncorrected; surviving Holm; surviving Benjamini-Hochberg (q < 0.05).", "",
              "| vs | cells | same allocation | CI above 0 | Holm: better | BH: better | CI below 0 | Holm: worse | "
              "BH: worse |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rule, rows in sorted(a["secondary"].items()):
        tested = [r for r in rows if not r["identical"]]
        above = sum(not math.isnan(r["low"]) and r["low"] > 0 for r in tested)
        below = sum(not math.isnan(r["high"]) and r["high"] < 0 for r in tested)
        lines.append(f"| {rule} | {len(rows)} | {len(rows) - len(tested)} | {above} | "
                     f"{sum(r['verdict'] == 'better' for r in tested)} | "
                     f"{sum(r['p_bh'] < ALPHA and r['mean'] > 0 for r in tested if not math.isnan(r['p_bh']))} | "
                     f"{below} | {sum(r['verdict'] == 'worse' for r in tested)} | "
                     f"{sum(r['p_bh'] < ALPHA and r['mean'] < 0 for r in tested if not math.isnan(r['p_bh']))} |")
    lines += ["", "Seed-pooled effect of ours against each rule per (data set, model): per seed the mean difference "
              "over the densities where the allocations differ, then a t-interval over seeds; Holm over every row.", "",
              "| data set | model | vs | densities | seeds | ours - rule (pp) [95 % CI] | seeds won | p (Holm) | "
              "verdict |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(a["pooled"], key=lambda r: (r["dataset"], r["model"], r["other"])):
        lines.append(f"| {r['dataset']} | {r['model']} | {r['other']} | {r['densities']} | {r['pairs']} | "
                     f"{_interval(r)} | {r['wins']}/{r['pairs']} | {_p(r['p_holm'])} | {r['verdict']} |")
    lines += ["", "## Does the bound rank accuracy?", "",
              "Spearman's rho over every cell (rule x seed x density): within a density (ranks centred per density: "
              "what the allocation changes at a fixed budget), and across densities for the bound and for density "
              "alone (the first report's rho 0.95-0.98 is mostly density's).", "",
              "| data set | model | cells | rho within a density | Pearson within a density | rho across (bound) | "
              "rho across (density alone) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in a["associations"]:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['cells']} | {r['within_spearman']:.2f} | "
                     f"{r['within_pearson']:.2f} | {r['across_bound']:.2f} | {r['across_density']:.2f} |")
    lines += ["", "## Ties and merged densities", "",
              f"Exact ties (the same test accuracy) of ours with another rule whose counts differ: {len(a['ties'])}. "
              "Explained when both sit at chance, or when the two keep the same number of weights on input-to-output "
              "paths in every layer (`effective_kept`; cells written before those counts were recorded cannot say). "
              "On mnist-npm10k the test split has 2,000 images (steps of 0.05 pp), so close rules also tie by "
              "coincidence.",
              "", "| data set | model | ties | " + " | ".join(TIE_REASONS) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in TIE_REASONS) + " |"]
    for (dataset, model) in sorted(runs):
        mine = [_tie_reason(x, y) for d, m, _, _, x, y in a["ties"] if (d, m) == (dataset, model)]
        lines.append(f"| {dataset} | {model} | {len(mine)} | " + " | ".join(str(mine.count(r)) for r in TIE_REASONS)
                     + " |")
    lines.append("")
    for (dataset, model), run in sorted(runs.items()):
        if run["merged"]:
            lines.append(f"- {model} on {dataset}: densities " + ", ".join(
                f"{d:g} (same budget as {m:g})" for d, m in sorted(run["merged"].items(), reverse=True))
                + " merged into the denser one.")
    mixed = [(key, run["mixed"]) for key, run in sorted(runs.items()) if run["mixed"]]
    lines += ["", "## Dense models", "",
              "Every cell of a seed must come from one dense model (the pairing rests on it); a seed whose cells record "
              "two dense test accuracies mixes dense models (cells added by a later code version that retrained it): "
              + ("none." if not mixed else "; ".join(f"{model} on {dataset}: seeds {seeds}"
                                                     for (dataset, model), seeds in mixed) + ".")]
    lines += control_section(a, control or {})
    lines += time_section(root)
    lines += ["", "## Per model: accuracy and the bound", ""]
    for (dataset, model), run in sorted(runs.items()):
        table = run["cells"]
        lines += [f"### {model} on {dataset}", "",
                  f"Pruned: {run['pruned']}; fine-tuned: {run['finetuned']}. Test accuracy mean ± std over seeds (%), "
                  "and ln E[B] (nats; * = mean over seeds, the counts depend on the seed).", "",
                  "| density | " + " | ".join(run["rules"]) + " |", "| --- | " + " | ".join("---" for _ in run["rules"]) + " |"]
        for density in run["densities"]:
            row = []
            for rule in run["rules"]:
                cells = [c for (d, r, _), c in table.items() if d == density and r == rule]
                if not cells:
                    row.append("-")
                    continue
                acc = [c["test_accuracy"] for c in cells]
                bounds = {round(c["ln_bound"], 9) for c in cells}
                spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
                row.append(f"{100 * statistics.fmean(acc):.2f} ± {100 * spread:.2f} "
                           f"({statistics.fmean(c['ln_bound'] for c in cells):.1f}{'*' if len(bounds) > 1 else ''})")
            lines.append(f"| {density:g} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="experiments/results/paper1")
    parser.add_argument("--out", default="experiments/results/rivals-REPORT.md")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not any(root.glob("*/*/*/cells")):
        raise SystemExit(f"no run folders under {root}; run python -m experiments.rivals_study first")
    analysis = analyse(root)
    out = Path(args.out)
    plot(analysis["primary"], analysis["runs"], out.parent / "rivals-primary.png")
    lines = report(root, analysis, analyse(root, "random"))
    atomic_write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines[:24]))
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
