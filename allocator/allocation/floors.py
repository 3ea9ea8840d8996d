"""Density floors for the convolutions the bound sees, and how much the bound sees each layer.

The bound is blind to conv pruning above a density of about 0.01 (conv.md: a conv's rank reaches the dimension
``D`` reaching it long before the conv is dense), so a solver maximising it alone pushes convs to the floor. A
floor keeps them at a stated minimum; ``bound_drop_nats`` says, per layer, whether the bound would notice less.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from allocator.errors import InvalidInputError
from allocator.formulation.objective import ExactObjective
from allocator.formulation.problem import AllocationProblem, Budget, Constraints
from allocator.network import Network


def conv_floors(network: Network, budget: Budget, constraints: Constraints,
                conv_floor: float | str | None) -> tuple[Constraints, dict[str, float]]:
    """``constraints`` with a ``min_density`` for every prunable conv the bound sees that has none of its own, and
    the floors added (name -> density, rounded down to a whole number of weights). ``conv_floor``: ``"uniform"`` (the budget's global density), a density in
    [0, 1], or ``None`` (no floor). A scalar ``min_density`` given by the user covers every layer: nothing is added.

    Raises:
        InvalidInputError: ``conv_floor`` is neither ``"uniform"``, ``None`` nor a density.
    """
    if conv_floor is None:
        return constraints, {}
    if conv_floor == "uniform":
        floor = budget.density
    elif isinstance(conv_floor, (int, float)) and not isinstance(conv_floor, bool) and 0.0 <= conv_floor <= 1.0:
        floor = float(conv_floor)
    else:
        raise InvalidInputError(f"conv floor is {conv_floor!r}; expected 'uniform', a density in [0, 1] or None")
    if isinstance(constraints.min_density, (int, float)) or floor == 0.0:
        return constraints, {}
    own = dict(constraints.min_density or {})
    pinned = set(constraints.pinned)
    # a whole number of weights at most the floor's share: floors never ask for more than the budget gives (a
    # floor below one weight adds nothing: min_kept already keeps one)
    added = {spec.name: math.floor(floor * spec.weights + 1e-9) / spec.weights for spec in network.layers
             if spec.conv is not None and spec.prunable and spec.name not in own and spec.name not in pinned
             and math.floor(floor * spec.weights + 1e-9) >= 1}
    if not added:
        return constraints, {}
    return replace(constraints, min_density={**own, **added}), added


def bound_drop_nats(problem: AllocationProblem, exact: ExactObjective, kept: Sequence[int],
                    deadline: float | None = None) -> tuple[float | None, ...]:
    """Per weight layer, ``ln E[B](kept) - ln E[B](kept with that layer's count halved)`` in nats (``None`` for a
    layer that is not prunable or not in the bound; ``nan`` for one the ``deadline``, a ``time.perf_counter()``
    value, left no time for)."""
    import time

    network = problem.network
    here = exact.of_kept(kept)
    in_bound = set(network.bound_layers)
    drops: list[float | None] = []
    for index, prunable in enumerate(network.prunable):
        if not prunable or index not in in_bound:
            drops.append(None)
            continue
        if deadline is not None and time.perf_counter() > deadline:
            drops.append(math.nan)
            continue
        halved = list(kept)
        halved[index] = kept[index] // 2
        drops.append(max(0.0, here - exact.of_kept(halved)))
    return tuple(drops)
