"""Exact polish with the true ``ln E[B]``, and exhaustive search over a grid (the test oracle).

- ``fill``: spend what the budget leaves, raising the least dense block first (water-filling towards
  uniform density), so the budget is always used up to the constraints.
- ``local_search``: move ``s`` units from a donor block to a receiver block while the exact objective
  improves; ``s`` runs over powers of two from large to 1. Each round screens every block's marginal
  gain (+s) and loss (-s), then tries the most promising pairs exactly.
- ``toward_uniform``: the tie-break. Among allocations within ``tolerance`` nats of the best found, move
  towards uniform density: a move goes from a denser block to a sparser one (in density) without
  overshooting, so the spread of densities strictly shrinks and the pass ends. Where the bound
  saturates (flat objective) this returns uniform, so the answer is unique and the budget is used.
  A move is tried exactly only when its two changes valued alone (one adjoint pass per round) lose
  at most ``FIRST_ORDER_SLACK_NATS`` beyond the tolerance: a heuristic filter (a tie it skips
  needs an interaction above 1e-3 nats between the two layers), never a change of value.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from allocator.formulation.objective import ExactObjective
from allocator.formulation.problem import AllocationProblem

IMPROVEMENT_NATS = 1e-12
#: Candidate moves are ranked by their screened score rounded to this many decimals (nats).
RANK_DECIMALS = 9


@dataclass
class SearchStats:
    """What a local search did; ``timed_out``: it stopped at the deadline, not at a local optimum."""

    moves: int = 0
    evaluations: int = 0
    timed_out: bool = False


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.perf_counter() > deadline


Report = Callable[[str], None]
REPORT_EVERY_S = 10.0


def _block_weights(problem: AllocationProblem) -> list[int]:
    return [sum(problem.network.weights[m] for m in block.members) for block in problem.blocks]


def fill(problem: AllocationProblem, units: Sequence[int]) -> list[int]:
    """Water-filling: raise every block to ``max(current, floor(t * weights))`` (capped at its max) for the
    largest common density ``t`` that stays feasible, then hand out what is left one block at a time,
    least dense first, each taking the most that stays feasible."""
    values = list(units)
    if not problem.blocks or not problem.is_feasible(values):
        return values
    weights = _block_weights(problem)

    def level(t: float) -> list[int]:
        return [min(b.hi, max(v, math.floor(t * w))) for b, v, w in zip(problem.blocks, values, weights)]

    low, high = 0.0, 1.0
    if problem.is_feasible(level(high)):
        low = high
    else:
        for _ in range(60):
            middle = (low + high) / 2
            if problem.is_feasible(level(middle)):
                low = middle
            else:
                high = middle
    values = level(low)
    for b in sorted(range(len(values)), key=lambda b: values[b] / weights[b]):
        top, bottom = problem.blocks[b].hi, values[b]
        while bottom < top:
            middle = (bottom + top + 1) // 2
            trial = values[:b] + [middle] + values[b + 1:]
            if problem.is_feasible(trial):
                bottom = middle
            else:
                top = middle - 1
        values[b] = bottom
    return values


def _move(values: Sequence[int], donor: int, receiver: int, step: int) -> list[int]:
    moved = list(values)
    moved[donor] -= step
    moved[receiver] += step
    return moved


def _screen(problem: AllocationProblem, objective: ExactObjective, values: Sequence[int], best: float, step: int
            ) -> tuple[list[float], list[float]]:
    """Each block's exact gain from ``+step`` units and loss from ``-step`` (``-inf`` / ``inf`` outside its range).

    On a chain whose blocks are single layers, all ``2 B`` values come from one adjoint pass
    (``ExactObjective.single_changes``: O(depth) in all); otherwise one evaluation each."""
    blocks = problem.blocks
    if all(not block.is_tied for block in blocks):
        kept = problem.kept_per_layer(values)
        changes = [(block.members[0], values[b] + sign * step) for b, block in enumerate(blocks) for sign in (1, -1)]
        changes = [(layer, value) if 0 <= value <= problem.network.weights[layer] else (layer, kept[layer])
                   for layer, value in changes]
        single_changes = getattr(objective, "single_changes", None)  # the bound's objective has it; data ones not
        screened = single_changes(kept, changes) if single_changes is not None else None
        if screened is not None:
            gains = [screened[2 * b] - best if values[b] + step <= block.hi else -math.inf
                     for b, block in enumerate(blocks)]
            losses = [best - screened[2 * b + 1] if values[b] - step >= block.lo else math.inf
                      for b, block in enumerate(blocks)]
            return gains, losses
    gains, losses = [], []
    for b, block in enumerate(blocks):
        up = _move(values, b, b, 0)
        up[b] += step
        down = _move(values, b, b, 0)
        down[b] -= step
        gains.append(objective.of_units(up) - best if up[b] <= block.hi else -math.inf)
        losses.append(best - objective.of_units(down) if down[b] >= block.lo else math.inf)
    return gains, losses


def top_pairs(gains: Sequence[float], losses: Sequence[float], count: int) -> list[tuple[float, int, int]]:
    """``sorted(((round(gains[r] - losses[d], RANK_DECIMALS), d, r) for d != r), reverse=True)[:count]`` without
    listing all pairs: a pair of the top ``count`` has its receiver among those whose gain is within the rounding of
    the ``count + 1``-th largest (else ``count`` pairs with the same donor and better receivers, at most one of them
    the donor itself, come first), and its donor likewise among the smallest losses; the rounded scores are
    monotone in each, so only ties within the rounding need the margin. Rounded: the screen's two ways of valuing a
    move agree to ~1e-14, not bitwise."""
    n = len(gains)
    margin = 2 * 10.0 ** -RANK_DECIMALS
    if n > count + 1:
        gain_cut = sorted(gains, reverse=True)[count] - margin
        loss_cut = sorted(losses)[count] + margin
        receivers = [r for r in range(n) if gains[r] >= gain_cut]
        donors = [d for d in range(n) if losses[d] <= loss_cut]
    else:
        receivers = donors = list(range(n))
    return heapq.nlargest(count, ((round(gains[r] - losses[d], RANK_DECIMALS), d, r)
                                  for d in donors for r in receivers if d != r))


def local_search(
    problem: AllocationProblem,
    objective: ExactObjective,
    units: Sequence[int],
    *,
    pairs_per_round: int = 6,
    max_rounds: int = 10_000,
    deadline: float | None = None,
    report: Report | None = None,
) -> tuple[list[int], float, SearchStats]:
    """Pairwise moves of ``s`` units while ``ln E[B]`` improves by more than 1e-12 nats (module docstring).

    ``deadline`` (a ``time.perf_counter()`` value): stop there with the best allocation so far (``timed_out``);
    ``report(text)`` hears how far it got every ``REPORT_EVERY_S`` seconds."""
    stats = SearchStats()
    last_report = time.perf_counter()
    values = list(units)
    best = objective.of_units(values)
    stats.evaluations += 1
    blocks = problem.blocks
    if len(blocks) < 2:
        return values, best, stats
    span = max(block.hi - block.lo for block in blocks)
    step = 1 << max(0, int(math.log2(max(1, span))))
    rounds = 0
    while step >= 1 and rounds < max_rounds:
        if _expired(deadline):
            stats.timed_out = True
            break
        if report is not None and time.perf_counter() - last_report > REPORT_EVERY_S:
            last_report = time.perf_counter()
            report(f"exact polish: {stats.moves} moves, {stats.evaluations} evaluations, step {step}, "
                   f"ln E[B] {best:.4f} nats")
        rounds += 1
        gains, losses = _screen(problem, objective, values, best, step)
        stats.evaluations += 2 * len(blocks)
        candidates = top_pairs(gains, losses, pairs_per_round)
        improved = False
        for score, donor, receiver in candidates:
            if not math.isfinite(score):
                break
            trial = _move(values, donor, receiver, step)
            if not problem.is_feasible(trial):
                continue
            value = objective.of_units(trial)
            stats.evaluations += 1
            if value > best + IMPROVEMENT_NATS:
                values, best, improved = trial, value, True
                stats.moves += 1
                break
        if not improved:
            step //= 2
    return values, best, stats


#: How far below the acceptance line a batch-evaluated move must be to be skipped without an exact evaluation:
#: far above the two evaluations' rounding difference (about 1e-12 relative), so the decisions are those of
#: evaluating every move exactly.
SCREEN_SLACK_NATS = 1e-6
#: The tie-break skips a move whose two changes, each valued alone (``_screen``), lose more than this beyond the
#: tolerance: only an interaction between the two layers larger than this could bring it back within the tolerance.
FIRST_ORDER_SLACK_NATS = 1e-3


def _pair_screen(problem: AllocationProblem, objective: ExactObjective, values: Sequence[int], step: int
                 ) -> dict[tuple[int, int], float] | None:
    """``ln E[B]`` of every ``step`` move between two blocks, keyed by block indices, from one batch
    (``ExactObjective.pair_moves``); ``None`` where blocks are tied or the objective has no batch form."""
    pair_moves = getattr(objective, "pair_moves", None)
    if pair_moves is None or any(block.is_tied for block in problem.blocks):
        return None
    layers = [block.members[0] for block in problem.blocks]
    moves = pair_moves(problem.kept_per_layer(values), step, layers)
    if moves is None:
        return None
    block_of = {layer: b for b, layer in enumerate(layers)}
    return {(block_of[d], block_of[r]): value for (d, r), value in moves.items()}


def toward_uniform(
    problem: AllocationProblem,
    objective: ExactObjective,
    units: Sequence[int],
    *,
    tolerance_nats: float = 1e-9,
    deadline: float | None = None,
) -> tuple[list[int], float]:
    """The tie-break of the module docstring; returns the units and their exact ``ln E[B]`` (at ``deadline``,
    what it has reached: every step keeps the value within ``tolerance_nats`` of the start)."""
    values = list(units)
    reference = objective.of_units(values)
    current = reference
    weights = _block_weights(problem)
    if len(values) < 2:
        return values, current
    step = 1 << max(0, int(math.log2(max(1, max(b.hi - b.lo for b in problem.blocks)))))
    # each block's +step / -step alone, where one adjoint pass gives them all (else 2B evaluations: no filter)
    cheap = getattr(objective, "single_changes", None) is not None and problem.network.is_chain and not any(
        block.is_tied for block in problem.blocks)
    while step >= 1 and not _expired(deadline):
        moved = False
        order = sorted(range(len(values)), key=lambda b: values[b] / weights[b])
        screened: dict[tuple[int, int], float] | None = None  # batch values, once exact trials keep failing
        rejected, batched = 0, False
        gains = losses = None  # screened after the first exact trial of the round fails (a flat bound needs none)
        for donor in reversed(order):
            for receiver in order:
                if donor == receiver:
                    continue
                after_donor = (values[donor] - step) / weights[donor]
                after_receiver = (values[receiver] + step) / weights[receiver]
                if after_donor < after_receiver:  # would overshoot: the spread must shrink
                    continue
                if gains is not None and losses is not None and (
                        current + gains[receiver] - losses[donor] < reference - tolerance_nats - FIRST_ORDER_SLACK_NATS):
                    continue  # the two changes alone lose far more than the tolerance (module docstring)
                trial = _move(values, donor, receiver, step)
                if not problem.is_feasible(trial):
                    continue
                if cheap and gains is None and rejected >= 1:
                    gains, losses = _screen(problem, objective, values, current, step)
                    if current + gains[receiver] - losses[donor] < reference - tolerance_nats - FIRST_ORDER_SLACK_NATS:
                        continue
                if not batched and rejected >= len(values):  # a sloped objective: many moves fail, so value
                    screened, batched = _pair_screen(problem, objective, values, step), True  # them all at once
                if screened is not None and (donor, receiver) in screened and (
                        screened[(donor, receiver)] < reference - tolerance_nats - SCREEN_SLACK_NATS):
                    continue  # the batch value is far below the line: the exact one is too
                value = objective.of_units(trial)
                rejected += 1
                if value >= reference - tolerance_nats:
                    values, current, moved = trial, value, True
                    break
            if moved:
                break
        if not moved:
            step //= 2
    return values, current


def exhaustive_search(
    problem: AllocationProblem,
    objective: ExactObjective,
    grids: Sequence[Sequence[int]] | None = None,
    *,
    limit: int = 2_000_000,
) -> tuple[list[int], float, int]:
    """The best allocation over a grid, by the exact objective: the oracle, and the solver for small menus.

    Every block but the last ranges over its grid (default: every integer in its range); the last takes
    what the budget leaves, clipped to its range (the objective never decreases with density, so spending
    the budget is optimal). Returns the best units, their ``ln E[B]`` and the number of points evaluated.

    Raises:
        ValueError: the grid has more than ``limit`` points.
    """
    blocks = problem.blocks
    if grids is None:
        grids = [range(block.lo, block.hi + 1) for block in blocks[:-1]]
    else:
        grids = list(grids)[: len(blocks) - 1]
    size = math.prod(len(g) for g in grids)
    if size > limit:
        raise ValueError(f"exhaustive grid has {size} points; the limit is {limit}")
    best_units: list[int] | None = None
    best = -math.inf
    points = 0
    weights = _block_weights(problem)
    last = blocks[-1]
    for head in itertools.product(*grids):
        values = list(head) + [last.lo]
        if not problem.is_feasible(values):
            continue
        values = _spend_on_last(problem, values, last.hi, weights[-1])
        value = objective.of_units(values)
        points += 1
        if best_units is None or value > best + IMPROVEMENT_NATS:
            best, best_units = value, values
    if best_units is None:
        raise ValueError("no point of the exhaustive grid is feasible")
    return best_units, best, points


def _spend_on_last(problem: AllocationProblem, values: list[int], high: int, weight: int) -> list[int]:
    """Give the last block the most units that keep the allocation feasible (binary search)."""
    low = values[-1]
    top = high
    while low < top:
        middle = (low + top + 1) // 2
        trial = values[:-1] + [middle]
        if problem.is_feasible(trial):
            low = middle
        else:
            top = middle - 1
    return values[:-1] + [low]


def grid_for(problem: AllocationProblem, levels: int) -> list[list[int]]:
    """A grid per block: every integer where the range is small, else ``levels`` log- and linear-spaced values."""
    grids = []
    for block in problem.blocks:
        if block.hi - block.lo + 1 <= levels:
            grids.append(list(range(block.lo, block.hi + 1)))
            continue
        log_part = np.geomspace(max(1, block.lo), block.hi, num=levels // 2)
        linear_part = np.linspace(block.lo, block.hi, num=levels - levels // 2)
        grids.append(sorted({int(round(v)) for v in np.concatenate((log_part, linear_part))}))
    return grids

