"""Conversions between densities and kept counts: the only place where a fraction is rounded to a count."""

from __future__ import annotations

import math

from allocator.errors import InvalidInputError


def kept_from_density(density: float, weights: int) -> int:
    """The kept count that density ``density`` stands for in a tensor of ``weights`` weights.

    ``kept = round(density * weights)``, halves rounded to even, clipped to ``[0, weights]``. Every part of
    the package that turns a fraction into a count calls this.

    Example:
        >>> kept_from_density(0.001, 78400)
        78
        >>> kept_from_density(1.0, 10)
        10
    """
    if not math.isfinite(density) or not 0.0 <= density <= 1.0:
        raise InvalidInputError(f"density is {density!r}; densities must lie in [0, 1]")
    return min(weights, max(0, round(density * weights)))


def density_from_kept(kept: int, weights: int) -> float:
    """``kept / weights``: the density is derived from the count, never the other way round."""
    return kept / weights


def kept_from_targets(targets: list[float], weights: list[int], total: int) -> list[int]:
    """Integer kept counts close to real ``targets`` (kept weights per tensor) that sum to exactly
    ``min(total, sum(weights))``, by largest remainder: floor every target (clipped to ``[0, weights]``),
    then give one more weight to the tensors with the largest fractional parts (ties: lower index) until the
    total is reached; tensors already full are skipped, and if the floors exceed ``total`` the smallest
    fractional parts give one back first.

    Example:
        >>> kept_from_targets([0.6, 0.6, 1.8], [5, 5, 5], 3)
        [1, 0, 2]
    """
    if len(targets) != len(weights):
        raise InvalidInputError(f"{len(targets)} targets for {len(weights)} tensors")
    clipped = [min(float(w), max(0.0, float(t))) for t, w in zip(targets, weights)]
    kept = [math.floor(t) for t in clipped]
    goal = min(int(total), sum(weights))
    remainders = sorted(range(len(kept)), key=lambda i: (-(clipped[i] - kept[i]), i))
    while sum(kept) < goal:
        progressed = False
        for i in remainders:
            if sum(kept) >= goal:
                break
            if kept[i] < weights[i]:
                kept[i] += 1
                progressed = True
        if not progressed:  # pragma: no cover - goal <= sum(weights) guarantees progress
            break
    for i in reversed(remainders):
        if sum(kept) <= goal:
            break
        if kept[i] > 0:
            kept[i] -= 1
    return kept
