"""The symbolic model: a linear MIP over per-block menu levels maximising the rank-capped product surrogate.

Sets: blocks ``b`` (a free layer or a tied group) with menu levels ``v`` (kept counts); bound layers ``i``.
Variables and constraints, with ``u_{b,v}`` the block's units at level ``v`` and ``r_{i,v}`` the expected rank
of layer ``i`` there:

    x[b, v] in {0, 1},             sum_v x[b, v] = 1                          (one level per block)
    sum_{b,v} kept(b, v) x[b, v] <= K - kept of pinned layers                (budget)
    sum_{b,v} flops(b, v) x[b, v] <= FLOPs budget - pinned FLOPs             (optional)
    k[i] = sum_v r_{i,v} x[b(i), v]  (or the constant rank of a fixed layer)
    0 <= m[i] <= min(n0, n_1, ..., n_i),   m[i] <= m[i-1] (m[-1] = n0),   m[i] <= k[i]
    z[i] <= F_i(t_a) + slope_a (m[i] - t_a)    for consecutive breakpoints t_a < t_{a+1}   (chords of F_i)
    maximise sum_i z[i]

``F_i(t) = ln S(n_i, t)`` is concave on the integers, so the chords give its piecewise-linear interpolation
through the breakpoints of ``objective.breakpoints`` and the optimum equals ``objective.surrogate_value`` at the chosen levels (tests hold the two equal).
Since the objective increases in every ``m[i]``, ``m[i]`` settles at ``min(m[i-1], k[i], n_i)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from allocator.formulation.objective import ExactObjective, surrogate_piece
from allocator.formulation.program_surrogate import add_program_surrogate
from allocator.formulation.problem import AllocationProblem, Block
from allocator.counts import kept_from_density


@dataclass
class BuiltModel:
    """The pyomo model and the maps back from its variables to the problem."""

    model: object
    menus: tuple[tuple[int, ...], ...]
    binaries: int
    chord_constraints: int

    def chosen_levels(self) -> tuple[int, ...]:
        """The menu index of the level chosen in each block (from the loaded solution)."""
        model = self.model
        chosen = []
        for b, menu in enumerate(self.menus):
            values = [model.x[b, v].value or 0.0 for v in range(len(menu))]  # type: ignore[attr-defined]
            chosen.append(int(np.argmax(values)))
        return tuple(chosen)

    def chosen_units(self) -> tuple[int, ...]:
        """The units of each block at the chosen levels."""
        return tuple(menu[v] for menu, v in zip(self.menus, self.chosen_levels()))

    def exclude(self, levels: Sequence[int]) -> None:
        """A no-good cut: forbid this exact combination of levels in later solves."""
        model = self.model
        model.no_good.add(  # type: ignore[attr-defined]
            sum(model.x[b, v] for b, v in enumerate(levels)) <= len(levels) - 1  # type: ignore[attr-defined]
        )


#: Menu levels per block by default, and the binaries the default menu aims at in all (each menu also holds its
#: block's bounds and uniform level, and the floor of ``MIN_LEVELS`` holds past 100 blocks): past 10 blocks the
#: levels shrink (to at least ``MIN_LEVELS``), because HiGHS time grows with depth x levels while the exact polish,
#: which moves single weights, makes up what a coarser menu misses (measured: 784-100x100-10 at density 0.001 gives
#: the same ln E[B] from 5, 20 and 100 levels, with HiGHS at 2.9, 5.9 and 11.5 s; 3072-1000x50-10 at 0.0001 the same
#: from 10, 20 and 40 levels, HiGHS 3.7, 3.3 and 13.4 s).
DEFAULT_LEVELS = 100
MENU_BINARIES = 1000
MIN_LEVELS = 10


def default_levels(blocks: int) -> int:
    """``min(DEFAULT_LEVELS, MENU_BINARIES // blocks)``, at least ``MIN_LEVELS``."""
    return max(MIN_LEVELS, min(DEFAULT_LEVELS, MENU_BINARIES // max(1, blocks)))


def block_menu(problem: AllocationProblem, block: Block, levels: int) -> tuple[int, ...]:
    """Menu of units for ``block``: ``levels`` log-spaced values over its affordable range, plus its bounds
    and its uniform level (the budget's global density applied to the block)."""
    others_lo = sum(
        problem.kept_per_layer([b.lo for b in problem.blocks])[m]
        for other in problem.blocks if other is not block for m in other.members
    )
    affordable = problem.budget.kept - problem.fixed_prunable_kept - others_lo
    high = min(block.hi, max(block.lo, affordable))
    low = block.lo
    weights = sum(problem.network.weights[m] for m in block.members)
    uniform = kept_from_density(problem.budget.density, weights)
    values = {low, high, min(high, max(low, uniform))}
    if high > low:
        values.update(int(round(v)) for v in np.geomspace(max(low, 1), high, num=max(2, levels)))
    return tuple(sorted(v for v in values if low <= v <= high))


def build_model(problem: AllocationProblem, objective: ExactObjective, levels: int) -> BuiltModel:
    """The pyomo model of the module docstring, with ``levels`` log-spaced menu levels per block."""
    import pyomo.environ as pyo

    network = problem.network
    menus = tuple(block_menu(problem, block, levels) for block in problem.blocks)
    block_of = {member: b for b, block in enumerate(problem.blocks) for member in block.members}
    fixed = problem.fixed_kept

    model = pyo.ConcreteModel(name="layerwise-allocation")
    pairs = [(b, v) for b, menu in enumerate(menus) for v in range(len(menu))]
    model.x = pyo.Var(pairs, domain=pyo.Binary)
    model.one_level = pyo.Constraint(
        range(len(menus)), rule=lambda m, b: sum(m.x[b, v] for v in range(len(menus[b]))) == 1
    )
    level_kept = {
        (b, v): problem.member_kept(problem.blocks[b], menus[b][v]) for b, v in pairs
    }
    free_budget = problem.budget.kept - problem.fixed_prunable_kept
    model.budget = pyo.Constraint(expr=sum(sum(level_kept[p]) * model.x[p] for p in pairs) <= free_budget)
    if problem.constraints.flops_budget is not None:
        flops = network.flops_per_weight
        fixed_flops = sum(f * k for f, k, p in zip(flops, fixed, network.prunable) if p and k is not None)
        level_flops = {
            p: sum(flops[m] * k for m, k in zip(problem.blocks[p[0]].members, level_kept[p])) for p in pairs
        }
        model.flops = pyo.Constraint(
            expr=sum(level_flops[p] * model.x[p] for p in pairs) <= problem.constraints.flops_budget - fixed_flops
        )

    if not network.is_chain:
        def rank_of(layer: int):
            if layer in block_of:
                b = block_of[layer]
                position = problem.blocks[b].members.index(layer)
                return sum(objective.expected_rank(layer, level_kept[(b, v)][position]) * model.x[b, v]
                           for v in range(len(menus[b])))
            return objective.expected_rank(layer, fixed[layer])  # type: ignore[arg-type]

        expression, chords = add_program_surrogate(model, network, rank_of)
        return _finish(model, objective, expression, menus, pairs, level_kept, chords)
    layers = list(network.bound_layers)
    caps = []
    cap = network.input_width
    for layer in layers:
        cap = min(cap, network.widths[layer])
        caps.append(cap)
    model.m = pyo.Var(range(len(layers)), domain=pyo.NonNegativeReals, bounds=lambda m, i: (0, caps[i]))
    model.z = pyo.Var(range(len(layers)), domain=pyo.Reals)
    model.carry = pyo.ConstraintList()
    model.rank_cap = pyo.ConstraintList()
    model.chords = pyo.ConstraintList()
    chords = 0
    for i, layer in enumerate(layers):
        if i > 0:
            model.carry.add(model.m[i] <= model.m[i - 1])
        if layer in block_of:
            b = block_of[layer]
            position = problem.blocks[b].members.index(layer)
            rank = sum(
                objective.expected_rank(layer, level_kept[(b, v)][position]) * model.x[b, v]
                for v in range(len(menus[b]))
            )
            model.rank_cap.add(model.m[i] <= rank)
        else:
            model.rank_cap.add(model.m[i] <= objective.expected_rank(layer, fixed[layer]))  # type: ignore[arg-type]
        points, values = surrogate_piece(network.widths[layer], caps[i])
        if caps[i] == 0:
            model.chords.add(model.z[i] <= float(values[0]))
            chords += 1
        for a in range(len(points) - 1):
            slope = float((values[a + 1] - values[a]) / (points[a + 1] - points[a]))
            model.chords.add(model.z[i] <= float(values[a]) + slope * (model.m[i] - int(points[a])))
            chords += 1
    return _finish(model, objective, sum(model.z[i] for i in range(len(layers))), menus, pairs, level_kept, chords)


def _finish(model, objective, surrogate, menus, pairs, level_kept, chords: int) -> BuiltModel:
    """The objective: the bound's surrogate, or a data objective's own linear terms over the levels
    (``objective.mip_terms``) with, when it is guarded, the surrogate held at ``objective.surrogate_floor`` or more
    (``allocator.formulation.distortion``)."""
    import pyomo.environ as pyo

    terms = getattr(objective, "mip_terms", None)
    if terms is None:
        model.objective = pyo.Objective(expr=surrogate, sense=pyo.maximize)
    else:
        values = terms(menus, level_kept)
        model.objective = pyo.Objective(expr=sum(values[p] * model.x[p] for p in pairs), sense=pyo.maximize)
        floor = getattr(objective, "surrogate_floor", None)
        if floor is not None:
            model.guard = pyo.Constraint(expr=surrogate >= floor)
    model.no_good = pyo.ConstraintList()
    return BuiltModel(model, menus, len(pairs), chords)
