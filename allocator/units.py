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
