"""The records ``allocate`` returns: an ``Allocation`` with one ``LayerAllocation`` per weight layer and the
``BaselineResult`` of every rule compared under the same budget."""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from enum import StrEnum

from allocator.bound.rank import RankModel
from allocator.formulation.problem import Budget, Constraints
from allocator.network import Network
from allocator.solver.highs import MipReport


class AllocationStatus(StrEnum):
    """What an allocation's search ended with (the MIP's termination, or ``fixed`` when nothing was decided)."""

    OPTIMAL = "optimal"  # the MIP proved its surrogate optimal over the menu
    TIME_LIMIT = "time_limit"  # the MIP stopped at its time limit: the best found, not proven
    NO_SOLUTION = "time_limit_no_solution"  # the MIP found nothing in time: the polish started from uniform
    INFEASIBLE = "infeasible"  # no menu combination fits: the polish started from constrained uniform
    FIXED = "fixed"  # every prunable layer is pinned


@dataclass(frozen=True)
class LayerAllocation:
    """One weight layer of an allocation."""

    name: str
    rows: int
    cols: int
    weights: int
    kept: int
    prunable: bool
    pinned: bool
    tied_group: int | None

    @property
    def density(self) -> float:
        """``kept / weights``."""
        return self.kept / self.weights

    @property
    def sparsity(self) -> float:
        """``1 - density``."""
        return 1.0 - self.density


@dataclass(frozen=True)
class BaselineResult:
    """A baseline under the same budget and constraints as ours: its kept counts and exact ``ln E[B]``, or why it
    is unavailable. ``repaired``: the rule's raw counts broke a constraint and were repaired
    (``allocator.allocation.repair``); ``raw_kept`` / ``raw_ln_bound``: those raw counts, when asked for."""

    name: str
    description: str
    kept: tuple[int, ...] | None
    ln_bound: float | None
    unavailable: str | None = None
    repaired: bool = False
    raw_kept: tuple[int, ...] | None = None
    raw_ln_bound: float | None = None


#: A layer the bound "sees": halving its kept count costs more than this many nats of ln E[B].
SEES_NATS = 1e-6


@dataclass(frozen=True)
class Allocation:
    """The answer: an integer kept count per weight layer, its exact bound, and how it was found.

    Attributes:
        layers: per weight layer, in network order (non-prunable layers at all their weights).
        ln_bound: exact ``ln E[B]`` (nats) of this allocation under ``rank_model``.
        surrogate_value: the MIP's surrogate at this allocation (nats).
        status: an ``AllocationStatus``.
        certificate: in words, what was proven and what was not.
        mip: the MIP report (status, gap, objective, bound, times); ``None`` when no MIP ran.
        baselines: name -> ``BaselineResult``, computed under the same budget.
    """

    network: Network
    budget: Budget
    rank_model: RankModel
    constraints: Constraints
    layers: tuple[LayerAllocation, ...]
    ln_bound: float
    surrogate_value: float
    status: AllocationStatus
    certificate: str
    mip: MipReport | None
    polish: dict[str, object]
    solve_seconds: float
    baselines: dict[str, BaselineResult] = field(default_factory=dict)
    ln_bound_standard_error: float | None = None  # a Monte-Carlo rank model's standard error of ln_bound (nats)
    stability: dict[str, object] | None = None  # Monte-Carlo: ours against the baselines on fresh masks
    upper_bound: dict[str, object] | None = None  # a proven upper bound on the best ln E[B] and ours' gap to it
    saturation_density: float | None = None  # global density above which uniform's bound is the dense bound
    bound_drop_nats: tuple[float | None, ...] | None = None  # per layer: ln E[B] lost when its kept count is halved
    floors: dict[str, float] | None = None  # density floors the solver applied by default (conv layers), by layer
    objective: dict[str, object] | None = None  # a data objective's name, distortion, guard (None: the bound)

    def bound_sees(self, index: int) -> bool | None:
        """Whether the bound is sensitive to layer ``index`` at this allocation: halving its kept count lowers
        ``ln E[B]`` by more than ``SEES_NATS`` (``None`` for a layer that is not prunable or not in the bound)."""
        if self.bound_drop_nats is None or self.bound_drop_nats[index] is None:
            return None
        if math.isnan(self.bound_drop_nats[index]):  # the time limit left no time to check
            return None
        return self.bound_drop_nats[index] > SEES_NATS

    @property
    def kept(self) -> tuple[int, ...]:
        """Kept count per weight layer."""
        return tuple(layer.kept for layer in self.layers)

    @property
    def densities(self) -> tuple[float, ...]:
        """Density per weight layer, derived from the kept counts."""
        return tuple(layer.density for layer in self.layers)

    @property
    def kept_total(self) -> int:
        """Kept weights over the prunable layers (what the budget bounds)."""
        return sum(layer.kept for layer in self.layers if layer.prunable)
