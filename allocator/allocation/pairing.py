"""The exact integer optimum of ``ln E[B]`` on a chain by meet in the middle: every whole-budget allocation valued
once, each layer step computed once per prefix or suffix.

On a chain the bound factors at any position ``p`` (``allocator.bound.recursion``: ``R_p`` the adjoint row of the
layers before ``p``, ``N(p, .)`` the recursion's array of the layers from ``p`` on):

    E[B](u) = sum_d R_p(d; u_prefix) N(p, d; u_suffix).

Write a block's units as ``u_b = lo_b + x_b`` with ``0 <= x_b <= hi_b - lo_b``. ``ln E[B]`` never falls when a kept
count rises (a monotone rank model; ``plan`` checks), and the budget's room covers it (``AllocationProblem``
checks), so some optimum spends the whole budget: ``sum_b x_b = S``, the budget's spare over the floors. Every prefix
of offset sum ``s`` pairs with every suffix of sum ``S - s``; ``Plan.allocations`` of them in all. Each prefix row
and suffix array costs one layer step from its parent's, so the work is (prefixes + suffixes) steps plus one
log-sum-exp pairing per allocation, against one full evaluation per allocation for ``exhaustive_search``.

Only for chains whose blocks are single layers with no FLOPs budget (``plan`` returns ``None`` otherwise).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from allocator.bound.recursion import ln_adjoint_of_layer, ln_n_of_layer
from allocator.formulation.objective import ExactObjective
from allocator.formulation.problem import AllocationProblem
from allocator.formulation.upper_bound import monotone_in_density

#: Spares (budget minus the floors, in kept weights) above this are not planned: the counts' tables grow with it.
MAX_SPARE = 20_000
#: More blocks, or more whole-budget allocations, are not planned (far beyond any time share the solver gives it).
MAX_BLOCKS = 12
MAX_ALLOCATIONS = 10**9
#: The prefix rows and suffix arrays held at once (the suffixes twice: grouped by sum for the pairing), bytes.
MAX_BYTES = 128 * 2**20
#: Measured costs on this project's 2-core machine (784-100x5-10; wide layers checked up to 4000): one layer step
#: on a dimension of ``w + 1`` entries costs about ``STEP_SECONDS + STEP_SECONDS_PER_ENTRY * (w + 1)``, one pairing
#: ``PAIR_SECONDS_PER_ENTRY`` per entry.
STEP_SECONDS = 15e-6
STEP_SECONDS_PER_ENTRY = 0.15e-6
PAIR_SECONDS_PER_ENTRY = 20e-9


@dataclass(frozen=True)
class Plan:
    """Where to split (blocks ``0..split-1`` on the prefix side) and what it will cost."""

    split: int
    allocations: int  # whole-budget allocations, all valued
    steps: int  # layer steps for every prefix row and suffix array
    laws: int  # distinct rank laws it needs (one per block and kept count)
    held_bytes: int  # prefix rows and suffix arrays (twice) at once
    seconds: float  # estimate: the steps and pairings at the measured costs (new rank laws not counted: ``laws``)


def _running_ways(ranges: Sequence[int], spare: int) -> list[np.ndarray]:
    """``ways[k][s]`` for ``k = 1..len(ranges)``: the offset tuples ``0 <= x_b <= ranges[b]`` of the first ``k``
    blocks with ``sum x_b = s``, ``s = 0..spare`` (Python integers: counts can pass 2**63); one pass, O(k spare)."""
    ways = np.zeros(spare + 1, dtype=object)
    ways[0] = 1
    table = []
    for top in ranges:
        running = np.cumsum(ways)  # ways'(s) = sum_{x=0}^{min(top, s)} ways(s - x), by prefix sums
        shifted = np.concatenate((np.zeros(min(top, spare) + 1, dtype=object), running))[: spare + 1]
        ways = running - shifted
        table.append(ways)
    return table


def plan(problem: AllocationProblem, max_bytes: int = MAX_BYTES) -> Plan | None:
    """The cheapest split for ``problem``, or ``None`` where the pairing does not apply (module docstring: also a rank
    model not known to be monotone in the density), would value more than ``MAX_ALLOCATIONS`` allocations or hold
    more than ``max_bytes``. The caller adds ``laws`` times what one new rank law costs it (Monte-Carlo laws cost
    ~1e4 times the binomial's)."""
    network, blocks = problem.network, problem.blocks
    if (not 2 <= len(blocks) <= MAX_BLOCKS or not network.is_chain or problem.constraints.flops_budget is not None
            or any(block.is_tied or len(block.members) != 1 for block in blocks)
            or not monotone_in_density(problem.rank_model)):
        return None
    layers = list(network.bound_layers)
    if sorted(layers) != list(range(network.n_weight_layers)):
        return None
    position = {layer: p for p, layer in enumerate(layers)}
    if [position[b.members[0]] for b in blocks] != sorted(position[b.members[0]] for b in blocks):
        return None
    spare = problem.budget.kept - problem.fixed_prunable_kept - sum(block.lo for block in blocks)
    if spare < 0 or spare > MAX_SPARE:
        return None
    ranges = [min(block.hi - block.lo, spare) for block in blocks]
    forward = _running_ways(ranges, spare)
    allocations = int(forward[-1][spare])
    if allocations > MAX_ALLOCATIONS:
        return None
    backward = _running_ways(ranges[::-1], spare)
    prefix_tuples = [int(sum(ways)) for ways in forward]  # of the first k blocks, sum at most spare
    suffix_tuples = [int(sum(ways)) for ways in backward]  # of the last k blocks
    fixed_steps = len(layers) - len(blocks)

    def step_seconds(layer: int) -> float:  # a step runs over the layer's width and the one before
        before = network.input_width if position[layer] == 0 else network.widths[layers[position[layer] - 1]]
        return STEP_SECONDS + STEP_SECONDS_PER_ENTRY * (max(network.widths[layer], before) + 1)

    block_step = [step_seconds(block.members[0]) for block in blocks]
    widest_step = max(step_seconds(layer) for layer in layers)
    laws = sum(r + 1 for r in ranges)
    best: Plan | None = None
    for split in range(1, len(blocks)):
        at = position[blocks[split].members[0]]
        width = network.input_width if at == 0 else network.widths[layers[at - 1]]
        prefix, suffix = prefix_tuples[:split], suffix_tuples[: len(blocks) - split]
        steps = sum(prefix) + sum(suffix) + fixed_steps * max(prefix[-1], suffix[-1])  # a fixed layer: one per tuple
        step_time = (sum(c * t for c, t in zip(prefix, block_step[:split]))
                     + sum(c * t for c, t in zip(suffix, block_step[::-1]))
                     + fixed_steps * max(prefix[-1], suffix[-1]) * widest_step)
        held_bytes = (prefix[-1] + 2 * suffix[-1]) * (width + 1) * 8
        seconds = step_time + allocations * (width + 1) * PAIR_SECONDS_PER_ENTRY
        candidate = Plan(split, allocations, steps, laws, held_bytes, seconds)
        if held_bytes <= max_bytes and (best is None or candidate.seconds < best.seconds):
            best = candidate
    return best


def integer_optimum(problem: AllocationProblem, exact: ExactObjective, chosen: Plan,
                    deadline: float | None = None) -> tuple[list[int], float, int] | None:
    """The best whole-budget allocation by the pairing of ``chosen`` (block units), its ``ln E[B]`` from ``exact``
    and the number of allocations valued; ``None`` if ``deadline`` (``time.perf_counter()``) passed first."""
    network, blocks = problem.network, problem.blocks
    layers = list(network.bound_layers)
    block_at = {layer: b for b, block in enumerate(blocks) for layer in block.members}
    spare = problem.budget.kept - problem.fixed_prunable_kept - sum(block.lo for block in blocks)
    split_at = layers.index(blocks[chosen.split].members[0])
    widths = [network.widths[layer] for layer in layers]
    cols = [network.input_width] + widths[:-1]

    def law(position: int, kept: int) -> np.ndarray:
        return exact.law(layers[position], kept).ln_pmf

    def expired() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    Entry = tuple[tuple[int, ...], int, np.ndarray]  # (offsets of the side's blocks, their sum, its array)

    def grow(entries: list[Entry], position: int, step: Callable[[int, int, np.ndarray, np.ndarray], np.ndarray],
             before: bool) -> list[Entry] | None:
        """Every entry taken through the layer at ``position`` by ``step`` (one child per offset of a block's
        layer, the entry itself for a fixed layer); ``before``: the new offset goes first (suffixes grow upward)."""
        b = block_at.get(layers[position])
        if b is None:
            kept = problem.fixed_kept[layers[position]]
            return [(o, s, step(widths[position], cols[position], law(position, kept), a)) for o, s, a in entries]
        grown: list[Entry] = []
        for offsets, total, array in entries:
            for x in range(min(blocks[b].hi - blocks[b].lo, spare - total) + 1):
                child = step(widths[position], cols[position], law(position, blocks[b].lo + x), array)
                grown.append(((x,) + offsets if before else offsets + (x,), total + x, child))
                if expired():
                    return None
        return grown

    suffixes: list[Entry] | None = [((), 0, np.zeros(widths[-1] + 1))]  # ln N(split_at, .), deepest layer first
    for position in range(len(layers) - 1, split_at - 1, -1):
        suffixes = grow(suffixes, position, ln_n_of_layer, before=True)
        if suffixes is None:
            return None
    row = np.full(network.input_width + 1, -np.inf)
    row[network.input_width] = 0.0
    prefixes: list[Entry] | None = [((), 0, row)]  # the adjoint rows R_split_at
    for position in range(split_at):
        prefixes = grow(prefixes, position, ln_adjoint_of_layer, before=False)
        if prefixes is None:
            return None
    groups: dict[int, list[int]] = {}
    for index, (_, total, _) in enumerate(suffixes):
        groups.setdefault(total, []).append(index)
    stacked = {total: np.stack([suffixes[i][2] for i in members]) for total, members in groups.items()}
    best_value, best_offsets, valued = -np.inf, None, 0
    for offsets, total, vector in prefixes:
        partners = groups.get(spare - total)
        if not partners:
            continue
        summed = stacked[spare - total] + vector[None, :]
        top = summed.max(axis=1)
        finite = np.isfinite(top)
        values = np.full(len(partners), -np.inf)
        values[finite] = top[finite] + np.log(np.exp(summed[finite] - top[finite, None]).sum(axis=1))
        j = int(np.argmax(values))
        valued += len(partners)
        if values[j] > best_value:
            best_value, best_offsets = float(values[j]), offsets + suffixes[partners[j]][0]
        if expired():
            return None
    if best_offsets is None:
        return None
    units = [block.lo + x for block, x in zip(blocks, best_offsets)]
    return units, exact.of_units(units), valued
