"""Issue 14's fine-tuning-length check: does any ranking of rules change when fine-tuning runs 45 epochs, not 15?

Run: ``.venv/bin/python -m experiments.finetune_length [--out experiments/results/finetune-length-REPORT.md]``.
Each model has a short run folder (``quick-paired-M``: 15 fine-tuning epochs) and a long one (``finetune45-M``: the
same dense models, seeds, densities and rules, 45 fine-tuning epochs), both written by ``allocator validate``
(commands in the report). From their cells (never typed by hand) it writes, per (model, density):

- every rule's mean test accuracy over the seeds both runs hold, at 15 and 45 epochs, and its rank at each;
- Kendall's tau between the two rankings, and whether the best rule changes;
- ours against every rule at each length: the paired difference, its paired t-test, Holm-corrected over the family
  of all (model, density, rule) comparisons of that length; a comparison "changes" when its Holm verdict (better,
  worse, no detectable difference) differs between the two lengths;
- how often the selected fine-tuning epoch is one of the last three (was fine-tuning still improving?);

and a plot, ``finetune-length.png``: accuracy at 45 against accuracy at 15 per rule, one panel per model.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Sequence

from allocator.io_utils import atomic_write_text
from allocator.study.summary import load_cells
from experiments.statistics import holm, paired_t_p_value

RESULTS = Path("experiments/results")
MODELS = ("mlp-2x100", "lenet-300-100")
SHORT, LONG = 15, 45
REFERENCE = "ours"


def _cells(folder: Path) -> dict[tuple[float, str, int], dict]:
    cells = [c for c in load_cells(folder) if "test_accuracy" in c and c.get("criterion", "magnitude") == "magnitude"]
    return {(c["density"], c["allocation"], c["seed"]): c for c in cells}


def _rank(means: dict[str, float]) -> dict[str, int]:
    """1 = best; equal means share the better rank."""
    ordered = sorted(means.values(), reverse=True)
    return {rule: 1 + ordered.index(value) for rule, value in means.items()}


def compare(model: str, short: dict, long: dict) -> list[dict]:
    """One record per density of the long run: means, ranks, tau, the paired differences at both lengths."""
    from scipy import stats

    records = []
    for density in sorted({d for d, _, _ in long}, reverse=True):
        rules = sorted({r for d, r, _ in long if d == density} & {r for d, r, _ in short if d == density})
        seeds = sorted({s for d, r, s in long if d == density} & {s for d, r, s in short if d == density})
        seeds = [s for s in seeds if all((density, r, s) in long and (density, r, s) in short for r in rules)]
        if not rules or not seeds:
            continue
        means = {length: {r: statistics.fmean(runs[(density, r, s)]["test_accuracy"] for s in seeds) for r in rules}
                 for length, runs in ((SHORT, short), (LONG, long))}
        ranks = {length: _rank(means[length]) for length in means}
        tau = stats.kendalltau([means[SHORT][r] for r in rules], [means[LONG][r] for r in rules]).statistic
        same_as = {r: long[(density, r, seeds[0])].get("same_counts_as", {}).get("allocation") for r in rules}
        pairs = {}
        for length, runs in ((SHORT, short), (LONG, long)):
            for rule in rules:
                if rule == REFERENCE or REFERENCE not in rules:
                    continue
                diffs = [runs[(density, REFERENCE, s)]["test_accuracy"] - runs[(density, rule, s)]["test_accuracy"]
                         for s in seeds]
                identical = all(runs[(density, REFERENCE, s)]["kept"] == runs[(density, rule, s)]["kept"] for s in seeds)
                pairs[(length, rule)] = {"mean": statistics.fmean(diffs), "identical": identical,
                                         "p": math.nan if identical else paired_t_p_value(diffs),
                                         "wins": sum(d > 0 for d in diffs), "pairs": len(diffs)}
        dense_differs = sorted({s for s in seeds if long[(density, rules[0], s)].get("dense_test_accuracy")
                                != short[(density, rules[0], s)].get("dense_test_accuracy")})
        last = [long[(density, r, s)].get("finetune_best_epoch") for r in rules for s in seeds]
        last_short = [short[(density, r, s)].get("finetune_best_epoch") for r in rules for s in seeds]
        records.append({"model": model, "density": density, "rules": rules, "seeds": seeds, "means": means,
                        "dense_differs": dense_differs,
                        "ranks": ranks, "tau": float(tau), "same_as": same_as, "pairs": pairs,
                        "late_long": sum(e is not None and e > LONG - 3 for e in last) / len(last),
                        "late_short": sum(e is not None and e > SHORT - 3 for e in last_short) / len(last_short)})
    return records


def _verdict(p_holm: float, mean: float, identical: bool = False) -> str:
    if identical:
        return "same allocation"
    if math.isnan(p_holm) or p_holm >= 0.05:
        return "n.s."
    return "better" if mean > 0 else "worse"


def holm_verdicts(records: list[dict]) -> None:
    """Holm over every (model, density, rule) comparison of one length, in place (``p_holm``, ``verdict``)."""
    for length in (SHORT, LONG):
        items = [pair for record in records for (size, _), pair in record["pairs"].items() if size == length]
        for pair, adjusted in zip(items, holm([pair["p"] for pair in items])):  # same allocations (nan) not counted
            pair["p_holm"] = adjusted
            pair["verdict"] = _verdict(adjusted, pair["mean"], pair["identical"])


def plot(records: list[dict], path: Path) -> None:
    from allocator.plotting import pyplot, save_figure

    models = list(dict.fromkeys(r["model"] for r in records))
    figure, axes = pyplot().subplots(1, len(models), figsize=(5.0 * len(models), 4.2), squeeze=False)
    for axis, model in zip(axes.flat, models):
        for record in (r for r in records if r["model"] == model):
            xs = [100 * record["means"][SHORT][rule] for rule in record["rules"]]
            ys = [100 * record["means"][LONG][rule] for rule in record["rules"]]
            axis.scatter(xs, ys, s=14, label=f"density {record['density']:g}")
            if REFERENCE in record["rules"]:
                i = record["rules"].index(REFERENCE)
                axis.scatter([xs[i]], [ys[i]], s=60, facecolors="none", edgecolors="black")
        low, high = axis.get_xlim()
        axis.plot([low, high], [low, high], color="grey", linewidth=0.8)
        axis.set_title(f"{model}: mean test accuracy per rule (ours circled)", fontsize=9)
        axis.set_xlabel(f"after {SHORT} fine-tuning epochs (%)")
        axis.set_ylabel(f"after {LONG} fine-tuning epochs (%)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def report(records: list[dict], folders: list[tuple[Path, Path]]) -> list[str]:
    short_items = [p for r in records for (n, _), p in r["pairs"].items() if n == SHORT]
    changed = [(r, rule) for r in records for (n, rule), p in r["pairs"].items()
               if n == LONG and p["verdict"] != r["pairs"][(SHORT, rule)]["verdict"]]
    best_changed = [r for r in records if min(r["ranks"][SHORT], key=r["ranks"][SHORT].get)
                    != min(r["ranks"][LONG], key=r["ranks"][LONG].get)]
    lines = ["# Fine-tuning length: 15 against 45 epochs", "",
             "Generated by `python -m experiments.finetune_length` from the cells under "
             + ", ".join(f"`{s}` ({SHORT} epochs) and `{l}` ({LONG} epochs)" for s, l in folders) + ". Both runs "
             "share the dense models (15 epochs, the same seeds); only the fine-tuning length differs. The long runs: "
             "`allocator validate --model M --dataset fashion-mnist --density 0.01,0.0025,0.001 --seeds 5 "
             "--finetune-epochs 45 --allocations ours,uniform,erk,igq,balanced,global-magnitude,lamp,synflow,rd "
             "--out experiments/results/finetune45-M` (with the short run's `dense/` copied in). Test accuracy after "
             "one-shot layer-magnitude pruning (classifier dense) and fine-tuning with masks fixed, the epoch chosen "
             "on the validation split; pp = percentage points; densities global over the prunable weights.", "",
             "## Answers", "",
             f"- Kendall's tau between the rankings at {SHORT} and {LONG} epochs, per (model, density): "
             + ", ".join(f"{r['model']} {r['density']:g}: {r['tau']:.2f}" for r in records) + ".",
             f"- The best rule (highest mean) changes in {len(best_changed)} of {len(records)} (model, density) "
             "settings" + ("" if not best_changed else ": " + "; ".join(
                 f"{r['model']} {r['density']:g}: {min(r['ranks'][SHORT], key=r['ranks'][SHORT].get)} -> "
                 f"{min(r['ranks'][LONG], key=r['ranks'][LONG].get)}" for r in best_changed)) + ".",
             f"- Ours against each rule, Holm-corrected over the {len(short_items)} comparisons of each length: the "
             f"verdict changes in {len(changed)}" + ("" if not changed else ": " + "; ".join(
                 f"{r['model']} {r['density']:g} vs {rule}: {r['pairs'][(SHORT, rule)]['verdict']} -> "
                 f"{r['pairs'][(LONG, rule)]['verdict']}" for r, rule in changed)) + ".",
             "- The dense models are the same in both runs (the cells' dense test accuracy, seed by seed): "
             + ("yes" if not any(r["dense_differs"] for r in records) else "NO for " + "; ".join(
                 f"{r['model']} {r['density']:g} seeds {r['dense_differs']}" for r in records if r["dense_differs"]))
             + ".",
             "- Cells whose selected epoch is one of the last three: "
             + ", ".join(f"{r['model']} {r['density']:g}: {100 * r['late_short']:.0f} % at {SHORT}, "
                         f"{100 * r['late_long']:.0f} % at {LONG}" for r in records) + ".", ""]
    for record in records:
        lines += [f"## {record['model']} at density {record['density']:g} ({len(record['seeds'])} paired seeds)", "",
                  f"| rule | accuracy {SHORT} ep (%) | rank | accuracy {LONG} ep (%) | rank | gain (pp) | "
                  f"ours - rule {SHORT} ep (pp, p Holm) | ours - rule {LONG} ep (pp, p Holm) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for rule in sorted(record["rules"], key=record["ranks"][LONG].get):
            same = f" (= {record['same_as'][rule]})" if record["same_as"].get(rule) else ""
            cells = []
            for length in (SHORT, LONG):
                pair = record["pairs"].get((length, rule))
                cells.append("-" if pair is None else "same allocation" if pair["identical"] else
                             f"{100 * pair['mean']:+.2f} ({pair['p_holm']:.2g}, {pair['verdict']})")
            short_mean, long_mean = record["means"][SHORT][rule], record["means"][LONG][rule]
            lines.append(f"| {rule}{same} | {100 * short_mean:.2f} | {record['ranks'][SHORT][rule]} | "
                         f"{100 * long_mean:.2f} | {record['ranks'][LONG][rule]} | {100 * (long_mean - short_mean):+.2f}"
                         f" | {cells[0]} | {cells[1]} |")
        lines.append("")
    lines += ["Accuracy at 45 against 15 epochs per rule: [finetune-length.png](finetune-length.png).", ""]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--out", default=str(RESULTS / "finetune-length-REPORT.md"))
    args = parser.parse_args(argv)
    folders = [(RESULTS / f"quick-paired-{m}", RESULTS / f"finetune45-{m}") for m in args.models.split(",")]
    missing = [str(f) for pair in folders for f in pair if not (f / "cells").is_dir()]
    if missing:
        raise SystemExit(f"no cells under {', '.join(missing)}: run allocator validate there first (module docstring)")
    records = []
    for (short, long), model in zip(folders, args.models.split(",")):
        records += compare(model, _cells(short), _cells(long))
    if not records:
        raise SystemExit("the short and long runs share no (density, rule, seed) cells")
    holm_verdicts(records)
    out = Path(args.out)
    lines = report(records, folders)
    plot(records, out.parent / "finetune-length.png")
    atomic_write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines[:14]))
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
