"""Statistics the studies' reports share: multiple-comparison corrections and the bound's association with
accuracy within a density (issue 14's item 2).

- ``holm``: Holm-Bonferroni adjusted p-values (family-wise error).
- ``benjamini_hochberg``: Benjamini-Hochberg adjusted p-values (false discovery rate), ``p_(i) m / i`` made monotone
  from the largest down and capped at 1.
- ``paired_t_p_value``: the paired t-test every report uses (the sign test where the differences do not vary).
- ``within_group_correlation``: Pearson's correlation of ``x`` and ``y`` after removing each group's mean from both
  (the partial correlation given the group as a categorical factor: what the bound says about accuracy at a fixed
  density, not through density); ``ranks=True`` first turns both into ranks within each group (Spearman-like).
"""

from __future__ import annotations

import math
import statistics
from typing import Hashable, Sequence

import numpy as np


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (``nan`` stays ``nan`` and does not count).

    Example:
        >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (``nan`` stays ``nan`` and does not count).

    Example:
        >>> [round(p, 4) for p in benjamini_hochberg([0.01, 0.04, 0.03, 0.5])]
        [0.04, 0.0533, 0.0533, 0.5]
    """
    indexed = sorted(((p, i) for i, p in enumerate(p_values) if not math.isnan(p)), reverse=True)
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 1.0
    for position, (p, i) in enumerate(indexed):
        rank = m - position  # 1-based rank of p among the m, smallest first
        running = min(running, p * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values)


def within_group_correlation(x: Sequence[float], y: Sequence[float], groups: Sequence[Hashable],
                             ranks: bool = False) -> float:
    """Correlation of ``x`` and ``y`` with every group's mean removed from both (module docstring); ``nan`` when
    nothing varies within the groups."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    labels = list(groups)
    if not (len(x) == len(y) == len(labels)):
        raise ValueError(f"{len(x)} x, {len(y)} y and {len(labels)} group labels")
    centred_x, centred_y = np.empty_like(x), np.empty_like(y)
    for label in set(labels):
        members = np.array([g == label for g in labels])
        gx, gy = x[members], y[members]
        if ranks:
            gx, gy = _ranks(gx), _ranks(gy)
        centred_x[members], centred_y[members] = gx - gx.mean(), gy - gy.mean()
    scale = math.sqrt(float((centred_x ** 2).sum() * (centred_y ** 2).sum()))
    return float((centred_x * centred_y).sum() / scale) if scale > 0 else math.nan


def paired_t_p_value(differences: Sequence[float]) -> float:
    """Two-sided paired t-test p-value of mean difference 0 (``nan`` with fewer than 2 pairs; 1 when all are 0).
    Equal non-zero differences have no spread for a t-test: the exact two-sided sign test's ``2 / 2^n`` instead."""
    if len(differences) < 2:
        return math.nan
    spread = statistics.stdev(differences)
    if spread == 0:
        return 1.0 if statistics.fmean(differences) == 0 else min(1.0, 2.0 * 0.5 ** len(differences))
    from scipy import stats

    t = statistics.fmean(differences) / (spread / math.sqrt(len(differences)))
    return float(2 * stats.t.sf(abs(t), len(differences) - 1))
