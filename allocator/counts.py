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


def kept_from_targets(targets: list[float], weights: list[int], total: int,
                      lower: list[int] | None = None) -> list[int]:
    """Integer kept counts close to real ``targets`` (kept weights per tensor) that sum to exactly
    ``min(total, sum(weights))`` (and at least ``sum(lower)``), by largest remainder: floor every target (clipped
    to ``[lower, weights]``, ``lower`` 0 by default), then give one more weight to the tensors with the largest
    fractional parts (ties: lower index) until the total is reached; tensors already full are skipped, and if the
    floors exceed ``total`` the smallest fractional parts give one back first, never below ``lower``.

    Example:
        >>> kept_from_targets([0.6, 0.6, 1.8], [5, 5, 5], 3)
        [1, 0, 2]
        >>> kept_from_targets([0.6, 0.6, 1.8], [5, 5, 5], 3, lower=[0, 1, 0])
        [0, 1, 2]
    """
    if len(targets) != len(weights) or (lower is not None and len(lower) != len(weights)):
        raise InvalidInputError(f"{len(targets)} targets for {len(weights)} tensors")
    floor_of = [0] * len(weights) if lower is None else [int(v) for v in lower]
    clipped = [min(float(w), max(float(f), float(t))) for t, w, f in zip(targets, weights, floor_of)]
    kept = [math.floor(t) for t in clipped]
    goal = max(sum(floor_of), min(int(total), sum(weights)))
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
    while sum(kept) > goal:
        progressed = False
        for i in reversed(remainders):
            if sum(kept) <= goal:
                break
            if kept[i] > floor_of[i]:
                kept[i] -= 1
                progressed = True
        if not progressed:  # pragma: no cover - goal >= sum(lower) guarantees progress
            break
    return kept
