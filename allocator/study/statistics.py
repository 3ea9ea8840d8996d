"""Statistics of study cells, without torch: grouping, per-group summaries and paired comparisons over seeds.

A *cell* is one JSON record of a study (``seed``, ``density``, ``allocation``, ``test_accuracy``, ...). Cells of
the same ``(density, allocation)`` over different seeds form a group; two rules at one density are compared on
the seeds they share (paired), by the mean of ``a - b`` and its two-sided Student-t interval.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

Cell = Mapping[str, object]


def group_cells(cells: Iterable[Cell], keys: Sequence[str] = ("density", "allocation")) -> dict[tuple, list[Cell]]:
    """Cells grouped by the values of ``keys``, in first-seen order within each group."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(tuple(cell[k] for k in keys), []).append(cell)
    return groups


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def paired_interval(differences: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its two-sided Student-t interval at ``level`` (nan ends for one pair).

    ``mean +- t_{(1+level)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation of the ``n``
    differences.

    Example:
        >>> mean, low, high = paired_interval([1.0, 2.0, 3.0])
        >>> round(mean, 6), round(low, 4), round(high, 4)
        (2.0, -0.4841, 4.4841)
    """
    from scipy import stats

    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    return mean, float(mean - half), float(mean + half)


@dataclass(frozen=True)
class PairedComparison:
    """``a - b`` over the seeds both have: mean, interval, and how often ``a`` won, lost or tied."""

    pairs: int
    mean: float
    low: float
    high: float
    wins: int
    losses: int
    ties: int
    seeds: tuple[int, ...]


def paired_comparison(a: Iterable[Cell], b: Iterable[Cell], metric: str = "test_accuracy") -> PairedComparison | None:
    """Compare two groups of cells seed by seed on ``metric``; ``None`` when they share no seed."""
    by_seed_a = {c["seed"]: float(c[metric]) for c in a}  # type: ignore[arg-type]
    by_seed_b = {c["seed"]: float(c[metric]) for c in b}  # type: ignore[arg-type]
    seeds = tuple(sorted(set(by_seed_a) & set(by_seed_b)))  # type: ignore[type-var]
    if not seeds:
        return None
    differences = [by_seed_a[s] - by_seed_b[s] for s in seeds]
    mean, low, high = paired_interval(differences)
    return PairedComparison(len(seeds), mean, low, high, sum(d > 0 for d in differences),
                            sum(d < 0 for d in differences), sum(d == 0 for d in differences), seeds)  # type: ignore[arg-type]
