"""The allocation problem: a network, a budget of kept weights, side constraints, and decision blocks.

Decision variables are *blocks*: a free prunable layer, or a tied group of layers that share one density.
A block's value is an integer ``units``: for a single layer its kept count; for a tied group the target
kept total over its members, whose own counts are ``kept_from_density(units / W_group, w_i)``. Pinned
layers and non-prunable layers are fixed and outside the blocks.

All validation and every infeasibility that arithmetic can reveal happen in ``AllocationProblem.build``,
before any model is built or solved.
"""

from __future__ import annotations

import functools

import math
import operator
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from allocator.bound.rank import RankModel
from allocator.errors import InfeasibleError, InvalidInputError
from allocator.network import Network
from allocator.counts import kept_from_density

BUDGET_KINDS = ("density", "sparsity", "kept", "compression")


@dataclass(frozen=True)
class Budget:
    """The budget ``K``: the most kept weights over the prunable layers, and how the user gave it.

    ``compression`` follows ShrinkBench: all parameters (weights and one bias per unit) / non-zero
    parameters, with every bias and every non-prunable weight counted as non-zero.
    """

    kept: int
    given_as: str
    given_value: float
    prunable_weights: int

    @property
    def density(self) -> float:
        """Global density of the budget over the prunable weights."""
        return self.kept / self.prunable_weights


def make_budget(
    network: Network,
    *,
    density: float | None = None,
    sparsity: float | None = None,
    kept: int | None = None,
    compression: float | None = None,
) -> Budget:
    """The budget from exactly one of ``density``, ``sparsity``, ``kept`` or ``compression``.

    Raises:
        InvalidInputError: none or several given, or a value outside its range.
    """
    given = {k: v for k, v in dict(density=density, sparsity=sparsity, kept=kept, compression=compression).items()
             if v is not None}
    if len(given) != 1:
        raise InvalidInputError(
            f"give exactly one budget among {', '.join(BUDGET_KINDS)}; got {', '.join(given) or 'none'}"
        )
    (kind, value), = given.items()
    total = network.prunable_weights
    if total == 0:
        raise InvalidInputError("the network has no prunable layer; mark at least one layer prunable")
    if kind == "density":
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 < value <= 1.0):
            raise InvalidInputError(f"budget density is {value!r}; expected a fraction kept in (0, 1]")
        budget_kept = kept_from_density(float(value), total)
    elif kind == "sparsity":
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value < 1.0):
            raise InvalidInputError(f"budget sparsity is {value!r}; expected a fraction pruned in [0, 1)")
        budget_kept = kept_from_density(1.0 - float(value), total)
    elif kind == "kept":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= total:
            raise InvalidInputError(
                f"budget kept is {value!r}; expected an integer in [1, {total}] (the prunable weights)"
            )
        budget_kept = value
    else:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1.0):
            raise InvalidInputError(f"budget compression is {value!r}; expected a ratio >= 1 (all / non-zero)")
        all_parameters = network.all_parameters
        always_kept = all_parameters - total
        budget_kept = math.floor(all_parameters / float(value)) - always_kept
        if budget_kept < 1:
            raise InfeasibleError(
                f"compression {value!r} leaves {budget_kept} prunable weights: biases and non-prunable weights "
                f"alone are {always_kept} of {all_parameters} parameters (at most "
                f"{all_parameters / (always_kept + 1):.4g}x is reachable)"
            )
    if budget_kept < 1:
        raise InvalidInputError(f"budget {kind} {value!r} keeps no weight of {total}; keep at least one")
    return Budget(budget_kept, kind, float(value), total)


@dataclass(frozen=True)
class Constraints:
    """The user's side constraints; layer names are the network's (e.g. ``fc1.weight``).

    Attributes:
        min_density / max_density: a number for every prunable layer, or a mapping name -> density.
        pinned: name -> density fixed for that layer (its kept count by ``kept_from_density``).
        min_kept: the fewest kept weights in any prunable layer (1: no empty layer).
        min_kept_per_output_unit: also keep at least one weight per row (output unit) of every layer.
        tied: groups of layer names that share one density.
        flops_budget: most multiply-adds per example over the prunable layers (kept weight l costs
            ``network.flops_per_weight[l]``), or ``None``.
    """

    min_density: float | Mapping[str, float] | None = None
    max_density: float | Mapping[str, float] | None = None
    pinned: Mapping[str, float] = field(default_factory=dict)
    min_kept: int = 1
    min_kept_per_output_unit: bool = False
    tied: Sequence[Sequence[str]] = ()
    flops_budget: float | None = None


@dataclass(frozen=True)
class Block:
    """One decision: a free layer or a tied group. ``units`` ranges over ``[lo, hi]``."""

    members: tuple[int, ...]
    lo: int
    hi: int

    @property
    def is_tied(self) -> bool:
        return len(self.members) > 1


@dataclass(frozen=True)
class AllocationProblem:
    """A validated problem. Build it with ``AllocationProblem.build``."""

    network: Network
    budget: Budget
    rank_model: RankModel
    constraints: Constraints
    blocks: tuple[Block, ...]
    fixed_kept: tuple[int | None, ...]  # per weight layer: the kept count of a fixed layer, None if in a block
    member_lo: tuple[int, ...]  # per weight layer: the least kept count its constraints allow
    member_hi: tuple[int, ...]

    # ------------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls, network: Network, budget: Budget, rank_model: RankModel, constraints: Constraints | None = None
    ) -> "AllocationProblem":
        """Validate everything and derive the blocks.

        Raises:
            InvalidInputError: unknown layer names, densities outside (0, 1], bad group definitions.
            InfeasibleError: the constraints cannot hold together with the budget; the message names which.
        """
        constraints = constraints or Constraints()
        names = network.names
        prunable_names = [n for n, p in zip(names, network.prunable) if p]
        index = {n: i for i, n in enumerate(names)}

        def check_name(name: str, what: str) -> int:
            if name not in index or not network.prunable[index[name]]:
                raise InvalidInputError(
                    f"{what} names layer {name!r}, which is not a prunable layer; accepted: {', '.join(prunable_names)}"
                )
            return index[name]

        def per_layer(value: float | Mapping[str, float] | None, what: str, default: float) -> list[float]:
            result = [default] * network.n_weight_layers
            if value is None:
                return result
            items = value.items() if isinstance(value, Mapping) else ((n, value) for n in prunable_names)
            for name, density in items:
                layer = check_name(name, what)
                if not isinstance(density, (int, float)) or not math.isfinite(density) or not 0.0 < density <= 1.0:
                    raise InvalidInputError(f"{what} of {name} is {density!r}; densities must lie in (0, 1]")
                result[layer] = float(density)
            return result

        flops_budget = constraints.flops_budget
        if flops_budget is not None and (
            isinstance(flops_budget, bool) or not isinstance(flops_budget, (int, float)) or math.isnan(flops_budget)
            or flops_budget < 0
        ):
            raise InvalidInputError(f"FLOPs budget is {flops_budget!r}; expected a number >= 0 (multiply-adds)")
        if isinstance(constraints.min_kept, bool) or not isinstance(constraints.min_kept, int) or constraints.min_kept < 0:
            raise InvalidInputError(f"min_kept is {constraints.min_kept!r}; expected an integer >= 0")
        min_density = per_layer(constraints.min_density, "min density", 0.0)
        max_density = per_layer(constraints.max_density, "max density", 1.0)
        pinned = per_layer(dict(constraints.pinned), "pin", math.nan) if constraints.pinned else [math.nan] * len(names)

        lo: list[int] = []
        hi: list[int] = []
        for layer, (name, (rows, _), weights) in enumerate(zip(names, network.shapes, network.weights)):
            if not network.prunable[layer]:
                lo.append(weights)
                hi.append(weights)
                continue
            low = max(constraints.min_kept, math.ceil(min_density[layer] * weights - 1e-9))
            if constraints.min_kept_per_output_unit:
                low = max(low, rows)
            high = math.floor(max_density[layer] * weights + 1e-9)
            if low > weights:
                raise InfeasibleError(
                    f"layer {name} has {weights} weights but its minimum is {low} kept (min_kept / min density / "
                    f"one per output unit)"
                )
            if low > high:
                raise InfeasibleError(
                    f"layer {name}: minimum {low} kept exceeds maximum {high} kept (min/max density "
                    f"{min_density[layer]:g}/{max_density[layer]:g} of {weights} weights)"
                )
            if not math.isnan(pinned[layer]):
                kept = kept_from_density(pinned[layer], weights)
                if not low <= kept <= high:
                    raise InfeasibleError(
                        f"pin of {name} at density {pinned[layer]:g} ({kept} kept) violates its bounds [{low}, {high}] kept"
                    )
                low = high = kept
            lo.append(low)
            hi.append(high)

        # Tied groups.
        seen: dict[int, int] = {}
        groups: list[tuple[int, ...]] = []
        for group_index, group in enumerate(constraints.tied):
            members = tuple(check_name(n, "tied group") for n in group)
            if len(members) < 2 or len(set(members)) != len(members):
                raise InvalidInputError(f"tied group {list(group)!r} needs two or more distinct layers")
            for member in members:
                if member in seen:
                    raise InvalidInputError(f"layer {names[member]!r} is in two tied groups; a layer ties at most once")
                seen[member] = group_index
            if any(not math.isnan(pinned[m]) for m in members):
                raise InvalidInputError(
                    f"tied group {list(group)!r} contains pinned layers; a pinned layer cannot also be tied: untie "
                    f"it, or bound the group with --min-density/--max-density instead"
                )
            groups.append(members)

        blocks: list[Block] = []
        fixed: list[int | None] = [None] * len(names)
        for layer in range(len(names)):
            if not network.prunable[layer]:
                fixed[layer] = network.weights[layer]
            elif not math.isnan(pinned[layer]):
                fixed[layer] = lo[layer]
            elif layer not in seen:
                blocks.append(Block((layer,), lo[layer], hi[layer]))
        for members in groups:
            total = sum(network.weights[m] for m in members)
            group_lo = _tied_units_bound(network, members, lo, hi, total, lower=True)
            group_hi = _tied_units_bound(network, members, lo, hi, total, lower=False)
            if group_lo > group_hi:
                raise InfeasibleError(
                    f"tied group {[names[m] for m in members]!r}: no shared density meets every member's min/max "
                    f"density and min kept"
                )
            blocks.append(Block(members, group_lo, group_hi))

        problem = cls(network, budget, rank_model, constraints, tuple(blocks), tuple(fixed), tuple(lo), tuple(hi))
        problem._check_budget_feasible()
        return problem

    # ------------------------------------------------------------------------------------------
    def member_kept(self, block: Block, units: int) -> tuple[int, ...]:
        """Kept count of each member of ``block`` at ``units``."""
        if not block.is_tied:
            return (units,)
        weights = [self.network.weights[m] for m in block.members]
        density = units / sum(weights)
        return tuple(kept_from_density(min(1.0, density), w) for w in weights)

    @functools.cached_property
    def _single_members(self) -> tuple[int, ...] | None:
        """The layer of each block when no block is tied (the fast path of ``kept_per_layer``), else ``None``."""
        if any(block.is_tied for block in self.blocks):
            return None
        return tuple(block.members[0] for block in self.blocks)

    @functools.cached_property
    def _fixed_ints(self) -> tuple[int | None, ...]:
        """``fixed_kept`` as Python integers (``None`` kept)."""
        return tuple(None if k is None else int(k) for k in self.fixed_kept)

    @functools.cached_property
    def _fast_feasibility(self) -> tuple[tuple[int, ...], tuple[int, ...], int] | None:
        """``(lows, highs, budget left)`` when no block is tied, every block's layer is prunable and there is no
        FLOPs budget: then ``units`` is feasible iff ``lows <= units <= highs`` entrywise and ``sum(units) <= budget
        left`` (the budget less the pinned prunable layers' counts), which ``is_feasible`` checks at C speed (the
        polish calls it some 15,000 times at 100 layers). ``None`` otherwise."""
        single = self._single_members
        if single is None or self.constraints.flops_budget is not None or \
                not all(self.network.prunable[m] for m in single):
            return None
        return (tuple(b.lo for b in self.blocks), tuple(b.hi for b in self.blocks),
                self.budget.kept - self.fixed_prunable_kept)

    def kept_per_layer(self, units: Sequence[int]) -> tuple[int, ...]:
        """Kept count of every weight layer (non-prunable layers at all their weights) for block ``units``."""
        single = self._single_members
        if single is not None:
            kept = list(self._fixed_ints)
            for member, value in zip(single, map(int, units)):
                kept[member] = value
            return tuple(kept)  # type: ignore[arg-type]
        kept = list(self.fixed_kept)
        for block, value in zip(self.blocks, units):
            for member, count in zip(block.members, self.member_kept(block, value)):
                kept[member] = count
        return tuple(int(k) for k in kept)  # type: ignore[arg-type]

    def prunable_kept(self, kept: Sequence[int]) -> int:
        """Kept total over the prunable layers: the quantity the budget bounds."""
        return sum(k for k, p in zip(kept, self.network.prunable) if p)

    def flops(self, kept: Sequence[int]) -> float:
        """Multiply-adds per example over the prunable layers."""
        return sum(f * k for f, k, p in zip(self.network.flops_per_weight, kept, self.network.prunable) if p)

    def is_feasible(self, units: Sequence[int]) -> bool:
        """Every block within its range, the budget and the optional FLOPs budget respected."""
        fast = self._fast_feasibility
        if fast is not None:
            lows, highs, left = fast
            return (len(units) == len(lows) and all(map(operator.le, lows, units))
                    and all(map(operator.le, units, highs)) and sum(units) <= left)
        if any(not b.lo <= u <= b.hi for b, u in zip(self.blocks, units)):
            return False
        kept = self.kept_per_layer(units)
        if self.prunable_kept(kept) > self.budget.kept:
            return False
        budget = self.constraints.flops_budget
        return budget is None or self.flops(kept) <= budget + 1e-9

    @property
    def fixed_prunable_kept(self) -> int:
        """Kept weights of the pinned prunable layers."""
        return sum(k for k, p in zip(self.fixed_kept, self.network.prunable) if p and k is not None)

    def _check_budget_feasible(self) -> None:
        names = self.network.names
        lowest = self.kept_per_layer([b.lo for b in self.blocks])
        need = self.prunable_kept(lowest)
        if need > self.budget.kept:
            pins = self.fixed_prunable_kept
            detail = f"pinned layers keep {pins}; " if pins else ""
            raise InfeasibleError(
                f"budget of {self.budget.kept} kept weights is below what the constraints require: {detail}"
                f"per-layer minimums (min_kept={self.constraints.min_kept}, min densities, pins) need {need}"
            )
        highest = self.kept_per_layer([b.hi for b in self.blocks])
        room = self.prunable_kept(highest)
        if room < self.budget.kept:
            raise InfeasibleError(
                f"budget of {self.budget.kept} kept weights cannot be used: max densities and pins allow at most "
                f"{room} kept over {', '.join(n for n, p in zip(names, self.network.prunable) if p)}"
            )
        if self.constraints.flops_budget is not None:
            floor = self.flops(lowest)
            if floor > self.constraints.flops_budget:
                raise InfeasibleError(
                    f"FLOPs budget {self.constraints.flops_budget:g} is below the {floor:g} multiply-adds the "
                    f"per-layer minimums need"
                )


def _tied_units_bound(
    network: Network, members: Sequence[int], lo: Sequence[int], hi: Sequence[int], total: int, *, lower: bool
) -> int:
    """The least (``lower``) or greatest group total whose shared density keeps every member in [lo, hi].

    Each member's count ``kept_from_density(units / total, w)`` never decreases as ``units`` grows, so
    "every member >= its lo" holds from some units on and "every member <= its hi" up to some units: two
    binary searches over ``[0, total]`` find the ends. Returns ``total + 1`` or ``-1`` when no total fits.
    """

    def counts(units: int) -> list[int]:
        return [kept_from_density(min(1.0, units / total), network.weights[m]) for m in members]

    def first(predicate) -> int:  # least units in [0, total] with predicate true (total + 1 if none)
        low, high = 0, total + 1
        while low < high:
            middle = (low + high) // 2
            if predicate(middle):
                high = middle
            else:
                low = middle + 1
        return low

    above_lo = first(lambda u: all(c >= lo[m] for c, m in zip(counts(u), members)))
    beyond_hi = first(lambda u: any(c > hi[m] for c, m in zip(counts(u), members)))
    if above_lo >= beyond_hi:
        return total + 1 if lower else -1
    return above_lo if lower else beyond_hi - 1
