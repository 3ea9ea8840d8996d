"""A run folder's results from its cells (no torch): ``results.csv``, ``summary.json``, ``accuracy_vs_density.png``."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from allocator.io_utils import atomic_write_text
from allocator.study.config import ValidateConfig, run_identity
from allocator.study.plots import plot_accuracy
from allocator.study.run_folder import read_cell
from allocator.study.statistics import group_cells, mean_and_std, paired_comparison

CSV_FIELDS = ["seed", "density", "allocation", "criterion", "test_accuracy", "test_accuracy_pruned", "test_loss",
              "ln_bound", "dense_test_accuracy", "finetune_best_epoch", "seconds", "effective_fraction"]


def effective_fraction(cell: dict) -> float | None:
    """Kept weights on some input-to-output path, over all kept prunable weights (``None`` where not recorded).

    Example:
        >>> effective_fraction({"kept": {"fc1.weight": 46, "fc2.weight": 42},
        ...                     "effective_kept": {"fc1.weight": 34, "fc2.weight": 20, "fc3.weight": 150}})
        0.6136363636363636
    """
    effective, kept = cell.get("effective_kept"), cell.get("kept")
    if not effective or not kept:
        return None
    total = sum(kept.values())
    return sum(effective.get(name, 0) for name in kept) / total if total else None


def load_cells(folder: str | Path) -> list[dict]:
    """Every readable, complete cell file of a run folder, in file-name order (``run_folder.read_cell``)."""
    cells = (read_cell(p) for p in sorted((Path(folder) / "cells").glob("*.json")))
    return [c for c in cells if c is not None]


def summarise(out_dir: str | Path, config: ValidateConfig) -> dict[str, object]:
    """Read every cell of the run and write ``results.csv``, ``summary.json`` and ``accuracy_vs_density.png``.

    The table has, per (density, allocation), the mean and standard deviation of test accuracy over seeds and
    the mean ``ln E[B]``; ``paired_ours_minus_uniform`` compares ours with uniform seed by seed per density.
    """
    out = Path(out_dir)
    cells = load_cells(out)
    rows = [c for c in cells if "test_accuracy" in c and c["criterion"] == config.criterion]
    for cell in rows:
        cell["effective_fraction"] = effective_fraction(cell)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda c: (c["density"], c["allocation"], c["seed"])))
    atomic_write_text(out / "results.csv", buffer.getvalue())
    groups = group_cells(rows)
    table = []
    for (density, rule), members in sorted(groups.items()):
        mean, std = mean_and_std([m["test_accuracy"] for m in members])
        fractions = [m["effective_fraction"] for m in members if m["effective_fraction"] is not None]
        table.append({"density": density, "allocation": rule, "seeds": len(members), "mean_accuracy": mean,
                      "std_accuracy": std, "ln_bound": statistics.fmean(m["ln_bound"] for m in members),
                      "effective_fraction": statistics.fmean(fractions) if fractions else None})
    paired = _paired(groups, "uniform", rows)
    versus = {rule: _paired(groups, rule, rows) for rule in sorted({c["allocation"] for c in rows} - {"ours"})}
    summary = {"config": {**run_identity(config), "densities": list(config.densities),
                          "allocations": list(config.allocations)},
               "label": config.label, "seeds": sorted({c["seed"] for c in rows}), "table": table,
               "paired_ours_minus_uniform": paired, "paired_ours_minus": versus,
               "unavailable": [c for c in cells if "unavailable" in c]}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    if table:
        title = f"{config.model} on {config.dataset}, {config.criterion}" + (f"\n{config.label}" if config.label else "")
        plot_accuracy(table, out / "accuracy_vs_density.png", title)
    return summary


def _paired(groups: dict, rule: str, rows: list[dict]) -> list[dict[str, object]]:
    """Per density, ours - ``rule`` over the seeds both have."""
    paired = []
    for density in sorted({c["density"] for c in rows}):
        comparison = paired_comparison(groups.get((density, "ours"), []), groups.get((density, rule), []))
        if comparison is not None:
            paired.append({"density": density, "pairs": comparison.pairs, "mean_difference": comparison.mean,
                           "ci95_low": comparison.low, "ci95_high": comparison.high, "ours_wins": comparison.wins,
                           "ties": comparison.ties})
    return paired
