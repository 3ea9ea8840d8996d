"""PNG plots of study results (matplotlib, imported only when plotting)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from allocator.plotting import pyplot, save_figure


def plot_accuracy(table: Sequence[dict], path: Path, title: str) -> None:
    """Accuracy (mean and spread over seeds) and ln E[B] against density, one line per allocation."""
    figure, (left, right) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    for rule in sorted({row["allocation"] for row in table}):
        rows = sorted((r for r in table if r["allocation"] == rule), key=lambda r: r["density"])
        x = [r["density"] for r in rows]
        left.errorbar(x, [100 * r["mean_accuracy"] for r in rows], yerr=[100 * r["std_accuracy"] for r in rows],
                      marker="o", capsize=3, label=rule)
        right.plot(x, [r["ln_bound"] for r in rows], marker="o", label=rule)
    for axis, label in ((left, "test accuracy (%), mean ± std over seeds"), (right, "ln E[B] (nats)")):
        axis.set_xscale("log")
        axis.set_xlabel("global density (fraction of prunable weights kept)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)
