"""The CNN study's answers, from the result files of ``experiments.cnn_study`` (never typed by hand).

Run: ``.venv/bin/python -m experiments.cnn_report [--root experiments/results/cnn-quick]``. Reads every run folder
``ROOT/DATASET/MODEL/CRITERION`` and writes ``ROOT/REPORT.md`` and ``ROOT/ours_minus_rules.png``:

- per model: test accuracy mean ± std per rule and density, ``ln E[B]`` per rule, the densities ours chose per
  layer (``experiments.paper1_report``'s tables);
- each of ours (``REFERENCES``: the bound, and the data objective guarded by it) against every other rule at every
  (model, density): the paired difference (same seeds) with its paired t-test p-value, Holm-corrected over all
  those comparisons together (one family); a difference counts as a win or a loss only when its Holm-adjusted
  p-value is below 0.05;
- the time the cells took (from their records).
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Sequence

from allocator.io_utils import atomic_write_text
from allocator.study.summary import load_cells
from experiments.paper1_report import analyse, section
from experiments.statistics import holm, paired_t_p_value

#: Our rules, each compared with every rule that is not ours: ``ours`` maximises ln E[B]; ``ours-guarded:0.1``
#: minimises the data objective (output distortion) among allocations within 0.1 nats of the best ln E[B].
REFERENCES = ("ours", "ours-guarded:0.1")


def holm_split(rows: Sequence[tuple[str, dict]]) -> tuple[list, list, int]:
    """Holm-adjust the rows' p-values in place (``p_holm``); the significant wins and losses (adjusted p < 0.05)
    and how many rows could be tested."""
    adjusted = holm([float(r["p"]) for _, r in rows])
    for (_, r), p in zip(rows, adjusted):
        r["p_holm"] = p
    wins = [(m, r) for m, r in rows if not math.isnan(r["p_holm"]) and r["p_holm"] < 0.05 and r["mean"] > 0]
    losses = [(m, r) for m, r in rows if not math.isnan(r["p_holm"]) and r["p_holm"] < 0.05 and r["mean"] < 0]
    return wins, losses, sum(not math.isnan(r["p"]) for _, r in rows)


def comparison_rows(rows: Sequence[tuple[str, dict]]) -> list[str]:
    """One markdown table row per (model, comparison): density, rule, pairs, mean difference, wins, p, p (Holm)."""
    lines = []
    for m, r in rows:
        same = " (same allocation)" if r["identical"] else ""
        p = "n/a" if math.isnan(r["p"]) else f"{r['p']:.3g}"
        ph = "n/a" if math.isnan(r["p_holm"]) else f"{r['p_holm']:.3g}"
        lines.append(f"| {m} | {r['density']:g} | {r['reference']} | {r['rule']}{same} | {r['pairs']} | "
                     f"{100 * r['mean']:+.2f} | {r['wins']}/{r['pairs']} | {p} | {ph} |")
    return lines


def comparisons(folder: Path, reference: str = "ours") -> list[dict[str, object]]:
    """``reference`` against every other rule at every density of one run folder (paired seeds); a later
    reference is not compared with an earlier one again (``ours`` against ``ours-guarded:0.1`` is listed once)."""
    cells = [c for c in load_cells(folder) if "test_accuracy" in c]
    by_key: dict[tuple[float, str], dict[int, dict]] = {}
    for cell in cells:
        by_key.setdefault((cell["density"], cell["allocation"]), {})[cell["seed"]] = cell
    out = []
    for (density, rule), other in sorted(by_key.items()):
        mine = by_key.get((density, reference))
        if rule == reference or mine is None or (rule in REFERENCES
                                                  and REFERENCES.index(rule) < REFERENCES.index(reference)):
            continue
        common = sorted(set(mine) & set(other))
        # a pair is one dense model's two cells: a seed whose cells came from two dense models (a checkpoint lost and
        # some cells re-run on a retrained one) pairs only cells of the same one
        seeds = [s for s in common if mine[s].get("dense_test_accuracy") == other[s].get("dense_test_accuracy")]
        diffs = [mine[s]["test_accuracy"] - other[s]["test_accuracy"] for s in seeds]
        if not diffs:
            continue
        out.append({"density": density, "reference": reference, "rule": rule, "pairs": len(seeds),
                    "mean": statistics.fmean(diffs), "p": paired_t_p_value(diffs),
                    "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs),
                    "other_dense": len(common) - len(seeds),
                    "identical": all(mine[s].get("kept") == other[s].get("kept") for s in seeds)})
    return out


def dense_models_per_seed(folder: Path) -> dict[int, dict[float, int]]:
    """Per seed, how many cells each dense model (told apart by its recorded test accuracy) gave."""
    out: dict[int, dict[float, int]] = {}
    for cell in load_cells(folder):
        counts = out.setdefault(cell["seed"], {})
        accuracy = cell.get("dense_test_accuracy")
        counts[accuracy] = counts.get(accuracy, 0) + 1
    return out


def plot(rows: Sequence[tuple[str, dict]], path: Path) -> None:
    """One panel per (reference, model): reference - rule (pp, mean over paired seeds) against density, one line
    per rule."""
    from allocator.plotting import pyplot, save_figure

    models = sorted({model for model, _ in rows})
    references = [ref for ref in REFERENCES if any(r["reference"] == ref for _, r in rows)]
    if not models:
        return
    figure, axes = pyplot().subplots(len(references), len(models), figsize=(4.6 * len(models),
                                                                           3.6 * len(references)), squeeze=False)
    palette = pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {rule: palette[i % len(palette)] for i, rule in enumerate(sorted({r["rule"] for _, r in rows}))}
    for (reference, model), axis in zip([(ref, m) for ref in references for m in models], axes.flat):
        mine = [r for m, r in rows if m == model and r["reference"] == reference]
        if not mine:  # this model has no cells of that rule
            axis.set_axis_off()
            axis.text(0.5, 0.5, f"{model}: no {reference} cells", ha="center", va="center", fontsize=9)
            continue
        for rule in sorted({r["rule"] for r in mine}):
            points = sorted((r["density"], 100 * r["mean"]) for r in mine if r["rule"] == rule)
            axis.plot([d for d, _ in points], [v for _, v in points], marker="o", label=f"{reference} - {rule}",
                      color=colours[rule])
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set_xscale("log")
        axis.set_title(f"{model}: {reference}", fontsize=10)
        axis.set_xlabel("global density (fraction kept)")
        axis.set_ylabel("test accuracy difference (pp)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def timing(root: Path, folders: Sequence[Path]) -> list[str]:
    """Measured seconds per model (dense training from ``dense/seed*.json`` and from the sweep's task records in
    ``root/tasks.jsonl`` for seeds whose checkpoint is not kept, cells from their records) and a projection to the
    full profile of ``experiments.cnn_study`` (labelled as one: linear in the epochs)."""
    import json

    from allocator.study.sweep import read_task_log
    from experiments.cnn_study import ALLOCATIONS, DENSITIES, QUICK

    recorded: dict[str, list[float]] = {}
    for task in read_task_log(root)[0]:
        if task.get("dense_train_seconds"):
            recorded.setdefault(task["model"], []).append(float(task["dense_train_seconds"]))
    lines = ["## Time", "",
             "Measured on this 2-core CPU machine, one torch thread per task (one or two tasks at a time).", "",
             "| model | seeds | dense training s (median) | cells | cell s (median) | projected full profile, core-h |",
             "| --- | --- | --- | --- | --- | --- |"]
    total = 0.0
    for folder in folders:
        model = folder.parts[-2]
        dense = [json.loads(p.read_text()).get("train_seconds") for p in (folder / "dense").glob("seed*.json")]
        dense = [d for d in dense if d] or recorded.get(model, [])
        cells = [c for c in load_cells(folder) if "test_accuracy" in c]
        if not cells:
            continue
        cell_s = statistics.median(c.get("seconds", 0.0) for c in cells)
        dense_s = statistics.median(dense) if dense else math.nan
        # full profile: 5 seeds, 15 dense + 15 fine-tuning epochs, every density x rule (quick: 5 + 3 epochs)
        full = 5 * ((dense_s * 15 / QUICK["epochs"] if dense else 0.0)
                    + len(DENSITIES) * len(ALLOCATIONS) * cell_s * 15 / QUICK["finetune_epochs"]) / 3600
        total += full
        dense_text = f"{dense_s:.0f}" if dense else "-"
        lines.append(f"| {model} | {len({c['seed'] for c in cells})} | {dense_text} | {len(cells)} | {cell_s:.0f} | "
                     f"{full:.1f} |")
    lines += ["", f"Projected full profile ({len(DENSITIES)} densities x {len(ALLOCATIONS)} rules x 5 seeds, 15 + 15 "
              f"epochs): about {total:.0f} core-hours, {total / 2:.0f} h on 2 cores (a projection, linear in the "
              "epochs, from the quick profile's medians; the issue's goal is 6 h).", ""]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="experiments/results/cnn-quick")
    args = parser.parse_args(argv)
    root = Path(args.root)
    folders = sorted(p.parent for p in root.glob("*/*/*/cells"))
    if not folders:
        raise SystemExit(f"no run folders under {root}; run python -m experiments.cnn_study first")
    tables: list[str] = []
    rows: list[tuple[str, dict]] = []
    seconds = 0.0
    for folder in folders:
        dataset, model, criterion = folder.parts[-3:]
        a = analyse(folder)
        seconds += a["seconds"]
        tables += section(f"{model} on {dataset} ({criterion}), every conv and linear layer pruned", a) + [""]
        rows += [(model, r) for reference in REFERENCES for r in comparisons(folder, reference)]
    wins, losses, tested = holm_split(rows)
    mixed = [f"{folder.parts[-2]} seed {seed} ("
             + ", ".join(f"{n} cells at {100 * a:.2f} %" for a, n in sorted(c.items())) + ")"
             for folder in folders for seed, c in dense_models_per_seed(folder).items() if len(c) > 1]
    dropped = sum(r["other_dense"] for _, r in rows)
    lines = ["# CNN study: measured answers", "",
             f"Generated by `python -m experiments.cnn_report` from the cells under `{root}`. Test accuracy after "
             "one-shot layer-magnitude pruning of every conv and linear layer (classifier dense) and fine-tuning with "
             "masks fixed; densities are global over the prunable weights (fraction kept); pp = percentage points. "
             "The allocation `ours` maximises ln E[B] with the convolutions inside the bound, each conv floored at "
             "the uniform share; `ours-guarded:0.1` minimises the output distortion on a calibration batch among "
             "allocations within 0.1 nats of that best ln E[B] (the solver's default guard), so the bound "
             "decides where it is steep and the data where it is flat.", "",
             "## Ours against every rule", "",
             f"{len(rows)} (model, density, rule) comparisons on paired seeds, {tested} with two or more pairs (paired "
             f"t-test, Holm-corrected over those {tested}). Counted as a result only where the Holm-adjusted p < 0.05.",
             "", f"- ours better: {len(wins)}" + "".join(
                 f"\n  - {m} at {r['density']:g}, {r['reference']} vs {r['rule']}: {100 * r['mean']:+.2f} pp "
                 f"({r['wins']}/{r['pairs']} seeds, p_holm {r['p_holm']:.3g})" for m, r in wins),
             f"- ours worse: {len(losses)}" + "".join(
                 f"\n  - {m} at {r['density']:g}, {r['reference']} vs {r['rule']}: {100 * r['mean']:+.2f} pp "
                 f"({r['wins']}/{r['pairs']} seeds won, p_holm {r['p_holm']:.3g})" for m, r in losses),
             f"- no detectable difference: {len(rows) - len(wins) - len(losses)}", "",
             "Seeds whose cells came from two dense models (dense test accuracy; a checkpoint was lost and some cells "
             "were re-run on a retrained model, which is not bit-identical): "
             + ("; ".join(mixed) + f". Only cells of the same dense model are paired ({dropped} pairs dropped)."
                if mixed else "none."), "",
             "| model | density | ours | vs | pairs | ours - rule (pp) | ours won | p | p (Holm) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += comparison_rows(rows)
    lines += timing(root, folders)
    plot(rows, root / "ours_minus_rules.png")
    lines += ["", "Differences per model: [ours_minus_rules.png](ours_minus_rules.png).", "",
              f"Cells took {seconds / 60:.1f} min of one core in all (pruning, fine-tuning, evaluation; dense training "
              "not included).", ""]
    atomic_write_text(root / "REPORT.md", "\n".join(lines + tables) + "\n")
    print("\n".join(lines[:12]))
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
