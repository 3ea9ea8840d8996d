"""Variance reduction for the structural rank law: the exact law of the non-empty lines, and only the deficiency
sampled.

For a ``rows x cols`` mask with ``T = min(rows, cols)``, the structural rank is ``R - Delta``: ``R`` the number of
non-empty lines of the shorter side, whose law is exactly ``Binomial(T, Q)``, ``Q = 1 - (1 - density)^other`` (the
binomial rank model), and ``Delta >= 0`` the deficiency, which is small and concentrated. Sampling ``R`` is what
makes the plain estimate noisy: ``E[B]`` grows steeply with the rank, so its value rides on the rare masks with many
non-empty lines. The stratified estimate takes ``R``'s law exactly and estimates only ``Delta`` given ``R``:

    P(rank = k) = sum_r P(R = r) P(Delta = r - k | R = r),

with ``P(Delta | R = r)`` the empirical law of the deficiency over the samples whose ``R`` is nearest ``r`` (the
nearest strata pooled until they hold at least ``POOL`` samples; strata never observed borrow the nearest observed
ones). It is exact where the deficiency is always 0, and its error is the error of ``Delta``'s law alone. The pool
grows with the samples (``max(POOL, S / POOL_FRACTION)``), so the estimate's variance falls as ``1/S``; pooling
neighbouring strata is also its bias: on 784-100-100-10 at density 0.001 the means with pools of ``S/8`` and
``S/4`` differ by 0.1 nats (119.17 and 119.27 at 1,024 masks; the binomial upper bound is 119.80, the plain
frequencies 114.3 at 64 masks and 120.2 at 2,048, both far noisier).
"""

from __future__ import annotations

import math

import numpy as np

POOL = 16
POOL_FRACTION = 8


def stratified_ln_pmf(ln_support_pmf: np.ndarray, ranks: np.ndarray, supports: np.ndarray) -> np.ndarray:
    """``ln P(rank = k)`` for ``k = 0..T`` from the exact ``ln P(R = r)`` and the sampled ``(rank, R)`` pairs."""
    size = ln_support_pmf.size
    out = np.full(size, -np.inf)
    deficiency = supports - ranks
    observed = np.unique(supports)
    pool = max(POOL, len(ranks) // POOL_FRACTION)
    pools: dict[tuple[int, ...], np.ndarray] = {}
    for r in range(size):
        if not math.isfinite(ln_support_pmf[r]):
            continue
        order = observed[np.argsort(np.abs(observed - r), kind="stable")]
        chosen: list[int] = []
        count = 0
        for stratum in order:
            chosen.append(int(stratum))
            count += int(np.count_nonzero(supports == stratum))
            if count >= pool:
                break
        key = tuple(sorted(chosen))
        if key not in pools:
            members = np.isin(supports, chosen)
            pools[key] = np.bincount(deficiency[members])
        histogram = pools[key]
        total = histogram.sum()
        for delta in np.nonzero(histogram)[0]:
            k = max(0, r - int(delta))
            out[k] = np.logaddexp(out[k], ln_support_pmf[r] + math.log(histogram[delta] / total))
    return out
