"""Baselines under the same constraints as ours: one documented repair of a rule's raw counts.

A rule (uniform, ER, ERK, a rival) gives raw kept counts ``r_l`` for the budget ``K``; they may break the side
constraints (``min_kept``, min/max densities, one weight per unit, pins, ties, the FLOPs cap): uniform at a tiny
budget rounds layers to 0 although ``min_kept`` is 1. ``repair`` keeps the rule's proportions and the budget:

1. Work on the problem's blocks (a free layer, or a tied group that shares one density; pinned layers are fixed):
   block ``b`` has the rule's density ``delta_b = sum_{l in b} r_l / W_b`` and bounds ``[lo_b, hi_b]`` in kept
   weights (from every per-layer constraint).
2. Scale the rule's proportions and clip at the bounds: ``u_b(t) = clip(t * delta_b * W_b, lo_b, hi_b)``, with
   ``t`` the scale (bisection) at which ``sum_b u_b(t)`` is the free budget ``K - kept of the pinned layers``. So a
   layer that breaks a bound is fixed at it and the rest is re-spread in the rule's proportions.
3. Round by largest remainder to integers that sum to that budget, within the bounds.
4. If the FLOPs cap is broken, lower the budget spent to the largest total whose repaired counts meet it.

A rule whose raw counts already meet every constraint is left exactly as it is.
"""

from __future__ import annotations

from typing import Sequence

from allocator.counts import kept_from_targets
from allocator.formulation.problem import AllocationProblem


def meets_constraints(problem: AllocationProblem, kept: Sequence[int]) -> bool:
    """Whether kept counts per weight layer satisfy every constraint of ``problem`` (pins, per-layer bounds, ties,
    the budget and the FLOPs cap)."""
    for layer, count in enumerate(kept):
        fixed = problem.fixed_kept[layer]
        if fixed is not None and count != fixed:
            return False
    for block in problem.blocks:
        units = sum(kept[m] for m in block.members)
        if not block.lo <= units <= block.hi:
            return False
        if block.is_tied and problem.member_kept(block, units) != tuple(kept[m] for m in block.members):
            return False
        if any(not problem.member_lo[m] <= kept[m] <= problem.member_hi[m] for m in block.members):
            return False
    if problem.prunable_kept(kept) > problem.budget.kept:
        return False
    cap = problem.constraints.flops_budget
    return cap is None or problem.flops(kept) <= cap + 1e-9


def _block_weights(problem: AllocationProblem) -> list[int]:
    return [sum(problem.network.weights[m] for m in block.members) for block in problem.blocks]


def _scaled_units(problem: AllocationProblem, shares: Sequence[float], total: int) -> list[int]:
    """Integer block units in the proportions ``shares`` (kept weights per unit of scale), clipped to the blocks'
    bounds, summing to ``total`` where the bounds allow (steps 2 and 3 of the module docstring)."""
    blocks = problem.blocks
    lo = [b.lo for b in blocks]
    hi = [b.hi for b in blocks]

    def targets(t: float) -> list[float]:
        return [min(h, max(l, t * s)) for l, h, s in zip(lo, hi, shares)]

    low, high = 0.0, 1.0
    while sum(targets(high)) < total and high < 1e300:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2
        if sum(targets(middle)) < total:
            low = middle
        else:
            high = middle
    return kept_from_targets(targets(high), hi, total, lower=lo)  # the one rounding helper, within the bounds


def repair(problem: AllocationProblem, raw_kept: Sequence[int]) -> tuple[int, ...]:
    """Kept counts per weight layer that meet every constraint of ``problem``, in ``raw_kept``'s proportions
    (module docstring); ``raw_kept`` itself when it already does."""
    if meets_constraints(problem, raw_kept):
        return tuple(raw_kept)
    weights = _block_weights(problem)
    densities = [sum(raw_kept[m] for m in b.members) / w for b, w in zip(problem.blocks, weights)]
    if not any(d > 0 for d in densities):  # the rule kept nothing: spread evenly
        densities = [1.0] * len(weights)
    shares = [d * w for d, w in zip(densities, weights)]
    free = problem.budget.kept - problem.fixed_prunable_kept

    def counts(total: int) -> tuple[int, ...]:
        units = _scaled_units(problem, shares, total)
        kept = problem.kept_per_layer(units)
        while problem.prunable_kept(kept) > problem.budget.kept:  # a tied group's rounding went over the budget
            b = max((b for b in range(len(units)) if units[b] > problem.blocks[b].lo), key=lambda b: units[b])
            units[b] -= 1
            kept = problem.kept_per_layer(units)
        return kept

    kept = counts(free)
    cap = problem.constraints.flops_budget
    if cap is not None and problem.flops(kept) > cap + 1e-9:  # step 4: the largest total that meets the cap
        low, high = sum(b.lo for b in problem.blocks), free
        while low < high:
            middle = (low + high + 1) // 2
            if problem.flops(counts(middle)) <= cap + 1e-9:
                low = middle
            else:
                high = middle - 1
        kept = counts(low)
    return kept
