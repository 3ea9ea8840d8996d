"""The saturation density: the global density above which uniform pruning leaves the bound at its dense value.

``d* = min { d : ln E[B](uniform at d) >= ln E[B](dense) - tolerance }``, by bisection on ``d`` (the uniform bound
is non-decreasing in the density). At budgets at or above ``d*`` every allocation the bound can tell apart is
equally good (the bound has no opinion) and the solver's answer is its tie-break towards uniform.
"""

from __future__ import annotations

from allocator.bound.engine import ln_expected_bound
from allocator.bound.rank import RankModel
from allocator.network import Network

SATURATION_TOLERANCE_NATS = 1e-9


def saturation_density(network: Network, model: RankModel, tolerance_nats: float = SATURATION_TOLERANCE_NATS,
                       steps: int = 32, deadline: float | None = None) -> float | None:
    """``d*`` of the module docstring; ``steps`` halvings of ``ln d`` over ``[1e-12, 1]`` (32: ``d*`` to a relative
    ``2e-8``). ``None`` when ``deadline`` (a ``time.perf_counter()`` value) passes first."""
    import time

    def uniform(density: float) -> float:
        return ln_expected_bound(network, [density if p else 1.0 for p in network.prunable], model)

    dense = uniform(1.0)
    low, high = 1e-12, 1.0  # low: unsaturated (for any network with a prunable layer in the bound), high: saturated
    if uniform(low) >= dense - tolerance_nats:
        return low
    for _ in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            return None
        middle = (low * high) ** 0.5
        if uniform(middle) >= dense - tolerance_nats:
            high = middle
        else:
            low = middle
    return high
