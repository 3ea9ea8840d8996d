"""A certificate for the true objective: an upper bound on the best ``ln E[B]`` any allocation can reach.

Relax the budget ``sum_l x_l <= K`` (kept counts of the prunable layers) with a multiplier ``lambda >= 0`` and let
every layer choose its kept count afresh for each incoming dimension ``d``:

    U(L+1, d) = 1,
    U(l, d)   = max_i e^{-lambda a_i} sum_k P_{b_i}(k) h_l(min(d, k); U(l+1, .)),

where ``[a_i, b_i]`` are the intervals ``[g_i, g_{i+1} - 1]`` between consecutive points of a grid ``g`` from
``lo_l`` to ``hi_l`` and the last point ``[hi_l, hi_l]`` (so every integer kept count lies in one interval) and ``h_l`` is the recursion's inner sum (``allocator.bound.
recursion``). Claim: for every allocation ``x`` that meets the budget and the per-layer bounds,
``E[B](x) <= e^{lambda K} U(1, n0)``. Proof, by induction from the last layer, of
``U(l, d) >= e^{-lambda sum_{i >= l} x_i} N_x(l, d)``: ``h_l`` is a sum with non-negative coefficients, so it is
linear and non-decreasing in ``N(l+1, .)``; ``h_l(c)`` is non-decreasing in ``c``; the rank law ``P_x`` is
stochastically non-decreasing in ``x`` (binomial, dense, exact structural; the plain structural estimate with common
random numbers, whose every mask only grows), so for ``x_l`` in ``[a_i, b_i]``,
``e^{-lambda x_l} sum_k P_{x_l}(k) h(min(d, k)) <= e^{-lambda a_i} sum_k P_{b_i}(k) h(min(d, k))``. At ``l = 1``,
``E[B](x) = N_x(1, n0) <= e^{lambda sum x} U(1, n0) <= e^{lambda K} U(1, n0)``. So
``ln UB = min_lambda lambda K + ln U_lambda(1, n0)`` bounds every feasible allocation (with ties and the FLOPs cap
relaxed away, which only raises it), and ``ln UB - ln E[B](ours)`` is a proven gap in nats.

``ln UB(lambda)`` is convex, so a bracket and a search inside it find its minimum (on a chain by the slopes,
``_slope_search``; on a program by golden section): the recursion's steps are
linear with non-negative coefficients, so the componentwise maximum gives every state's best *adaptive policy* ``pi``
(a level per layer and incoming ``d``) at once, and ``U_lambda(1, n0) = max_pi sum_paths w_pi(path)
e^{-lambda c_pi(path)}`` over the paths of dimensions, ``c_pi`` the kept count the path pays. Each
``ln sum e^{affine(lambda)}`` is convex, a maximum of convex functions is convex, and ``lambda K`` is linear.

A layer's range is also capped by what the budget leaves after every other layer's minimum. The grid is where it
can be loose: each interval costs up to ``lambda (b_i - a_i)`` nats, so it is exact where the ranges are small
enough to list every integer; what remains is the duality gap of the relaxation (the budget is met on average over
the dimensions ``d``, not by one allocation).

A program (convs inside the bound) relaxes step by step the same way: a ReLU layer, ReLU + max-pool or cap holds
at most one weight layer. A residual step holds two (three with a 1x1 shortcut); its value is non-decreasing in
every one of their laws, so the relaxation chooses the first conv's level as above and gives the others their
highest law at the cost of their lowest count: ``U(s, d) = max_i e^{-lambda (a_i + sum_o lo_o)} N_s(d; P_{b_i},
P_{hi_o})`` bounds ``e^{-lambda (x_1 + sum_o x_o)} N_s(d; x)`` for every feasible ``x``. Exact when the skip's rank
reaches ``min(D_s, n_y)`` (the second conv then does not matter), looser otherwise. Conv laws are Monte-Carlo with common random numbers, so
each sampled mask only grows with the density and the law is stochastically non-decreasing, as the proof needs.

**Delayed information (chains).** Almost all that remains is the relaxation's adaptivity: a layer's level may follow
the dimension ``d`` that the path reaches it with, which one allocation cannot (measured on 20-12-12-4: the dual
with one level per layer meets the optimum within 1e-4 nats, the relaxation 0.010 above). The "fast informed bound"
of partially observable control (Hauskrecht, JAIR 13, 2000) delays that information by one layer: the level of
layer ``l + 1`` may follow ``(d, i)``, the dimension and interval of layer ``l``, not ``l + 1``'s own dimension:

    A(L+1, d, .) = 1,
    A(l, d, i)   = e^{-lambda a_i} max_{i'} sum_k P_{b_i}(k) h_l(min(d, k); A(l+1, ., i')),
    ln UB_1(lambda) = lambda K + ln max_i A(1, n0, i).

Claim: ``A(l, d, i_l) >= e^{-lambda sum_{j >= l} x_j} N_x(l, d)`` for every feasible ``x`` with ``x_l`` in interval
``i_l``. Induction: take ``i' = i_{l+1}`` in the max, then the steps of the proof above (``h_l`` linear and
non-decreasing in its argument vector, and in ``c`` because every ``A(l+1, ., i')`` is non-decreasing in the
dimension, by the same induction; ``a_i <= x_l``, ``P_{b_i}`` dominating ``P_{x_l}``). And
``ln UB_1 <= ln UB`` at every ``lambda``: a maximum outside the sum over next dimensions is at most the sum of the
maxima, by induction ``max_i A(l, ., i) <= U(l, .)``. Convex in ``lambda`` for the same reason as ``ln UB``. A vector
``A(l+1, ., i')`` below another everywhere is never the maximum (``h_l`` is monotone), so it is dropped: few remain.
Measured (784-100xD-10 at density 0.001, at the first bound's multiplier): gap 0.112 -> 0.034 nats at D = 5,
0.216 -> 0.096 at D = 10, 0.557 -> 0.414 at D = 50. Delaying two layers (state ``(d, i_l, i_{l+1})``) took D = 5
to 0.015 nats but cost 4.7 s against 0.07 s: not done.

**A relaxed decision diagram (chains).** Without any adaptivity the bound at ``lambda`` is the Lagrangian dual
``lambda K + max_x [ln N_x(1, n0) - lambda sum_l x_l]``, one allocation for every path. Keep, per layer, a set
``S_l`` of vectors on ``0..cols`` that *covers* every suffix: for every feasible ``x_l..x_L`` some ``V`` in ``S_l``
has ``V >= e^{-lambda sum_{j >= l} x_j} N_x(l, .)`` at every dimension. ``S_{L+1} = {1}`` covers. From ``S_{l+1}``
the candidates ``e^{-lambda a_i} sum_k P_{b_i}(k) h_l(min(., k); V)`` for every interval ``i`` and ``V`` in
``S_{l+1}`` cover layer ``l`` (the steps of the first proof, applied to one ``V`` at a time); so do they with the
intervals far from the answer (more than ``DIAGRAM_WINDOW`` from its kept count) taken only against the pointwise
maximum of ``S_{l+1}`` (``h_l`` is non-decreasing in its vector). ``S_l`` is then chosen from the candidates with
at most ``width`` members, by two operations that keep the cover: drop a candidate that a member bounds
everywhere; replace a member by its pointwise maximum with a candidate (a merge: done where it raises the member by
at most ``DIAGRAM_MERGE_NATS`` anywhere, and, once ``width`` members are held, for every candidate left, into the
member it exceeds least, ``max_d (c(d) - V(d))`` taken in float32; the choice only decides how tight the cover
is). Members are taken in the order of their value under the answer's own prefix (``sum_d R_l(d) V(d)``,
``R_l`` the adjoint row of ``allocator.bound.recursion``), so the paths that carry the answer keep vectors of their
own. (Session 7 folded the candidates left into one extra member, their pointwise maximum: at 784-100x100-10,
width 64, 0.042 nats against 0.018 for the nearest merge, in about the same time.) Then
``ln UB_D(lambda) = lambda K + max_{V in S_1} ln V(n0)`` bounds every feasible allocation. With ``width = 1`` it
is the state-adaptive bound; with no width limit, every integer a grid point and no far rows (``DIAGRAM_WINDOW``
unbounded) the dual itself. The relaxed decision diagrams of Bergman, Cire, van Hoeve & Hooker (*Decision Diagrams for Optimization*, 2016) merge
nodes the same way. The diagram's dual need not be least at the state-adaptive bound's multiplier, so the widest
diagram that fits is also evaluated along a compass search of steps of 0.25 % around it (any multiplier is valid),
scouted first at the narrowest width where the time allows (``_diagram_at``; given 30 s, D = 200 below went from 0.28
to 0.069 nats, session 9).
**Held structures (session 11; the code is in commit a327054f, removed as unused).** A diagram's choices at
``lambda_0`` (which member every candidate joins; a candidate bounded by a member joins it too) can be held and the
members recomputed at any other ``lambda`` as the pointwise maxima of the candidates that joined them: the cover
then holds at every ``lambda`` (the induction above uses only that each candidate lies below its member), so ``ln
UB_S(lambda)`` is a valid bound everywhere. It is convex in ``lambda``: each member is a maximum of terms
``e^{-lambda a} E[h(V)]`` with ``h`` linear with non-negative coefficients, so by induction ``ln V(d)`` is a maximum
of log-sums of exponentials of affine functions of ``lambda``. Its subgradient is ``K - C(n0)``, ``C`` the kept
count paid from a state on by the maximising candidates, carried as ``ln (V C)`` beside ``ln V`` (``(V C)`` of a
candidate ``= e^{-lambda a} E[h(V' C')] + a V``). Built diagrams are jagged in ``lambda`` (784-100x200-10, width
128: 0.0061, 0.0158, 0.0125, 0.0271 nats at 0.9915, 0.992, 0.9925, 0.993 times the first multiplier), a held one is
not. Session 11 tried minimising the held structure of the best build by its slopes, then building again at that
minimum, in place of ``_diagram_at``'s compass steps, and did not keep it: head to head (one run each, 784-100xD-10
at 0.001, 4/10/30 s) it equalled the compass at D = 20 and 50, lost at D = 100 given 4 s (0.0147 against 0.0000
nats: a held evaluation with its slope costs 0.8 of a build there, 1.1 s against 1.3 s, and gives no new structure)
and was 0.045 once and 0.069 once at D = 200 given 30 s against the compass's 0.069 and 0.025. A held evaluation
without its slope costs a third of a build. Every cover is at or above the dual ``lambda K + max_x [ln N_x(1, n0) -
lambda sum x]`` at its multiplier (some member bounds each allocation's own term), so the dual is the floor of every
diagram. At 784-100x200-10, 0.9925 times the first multiplier, widths 128 and 256 with ``DIAGRAM_WINDOW`` 4 or 8 all
give 0.0125 nats with the same slope +8.59 (the dual there, 6-60 s an evaluation), and 0.9915 gives 0.0061 at width
128: the dual's minimum at 200 layers lies below 0.01 nats, but reaching it takes width 128 (6-8 s an evaluation on
this project's machine) at a multiplier within about 0.05 % of the best, several such evaluations, more than the
default share holds.
Measured (784-100xD-10 at density 0.001, given 30 s, against the delayed relaxation; session 8): gap 0.035 ->
0.000 nats at D = 5 (the enumerated optimum), 0.096 -> 0.002 at D = 10, 0.23 -> 0.000 at D = 20, 0.41 -> 0.001 at
D = 50, 0.76 -> 0.000 at D = 100, 0.89 -> 0.28 at D = 200 (loose there: a wider diagram and a finer multiplier
both help; 0.9925 times the first multiplier took width 32 from 0.33 to 0.12 nats);
``experiments/bench_depth --sweep``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from allocator.bound.program import ln_step
from allocator.bound.recursion import ln_adjoint_of_layer, ln_expect_over_rank, ln_h_of_layer, ln_n_of_layer
from allocator.formulation.problem import AllocationProblem

MONOTONE_MODELS = ("binomial", "dense", "exact-structural")


def monotone_in_density(model) -> bool:
    """Whether ``model``'s rank laws are known to be stochastically non-decreasing in the density (so ``E[B]`` never
    falls as a layer keeps more): the closed forms, the exact structural law, and the plain structural estimate
    with common random numbers; not the stratified estimate, nor paper 1's ``P(0) = 0`` (its laws lose mass)."""
    return (model.name in MONOTONE_MODELS or (model.name == "structural" and not model.reduce_variance)) \
        and not model.paper_p0
#: The intervals' laws kept between multipliers, bytes (beyond it they are rebuilt per multiplier, in chunks).
STACK_BYTES = 256 * 2**20
#: A multiplier hint below this (nats per weight) is rounding noise of a saturated bound: not used.
HINT_FLOOR = 1e-9
#: The slope search's first bracketing step from the hint (a fraction of it; doubled at every step after).
BRACKET_FIRST_STEP = 0.05
#: Doublings of the bracket around a multiplier hint, and golden-section steps inside the bracket.
BRACKET_DOUBLINGS = 12
GOLDEN_STEPS = 10
#: Entries of one chunk of interval laws when they are not kept (about 16 MiB of float64).
CHUNK_ENTRIES = 2**21


class _OutOfTime(Exception):
    """The deadline passed inside one multiplier's evaluation (caught in ``lagrangian_upper_bound``)."""


#: The relaxations ``UpperBound.relaxation`` names (module docstring).
ADAPTIVE = "state-adaptive"
DELAYED = "one-layer-delayed information"
DIAGRAM = "decision-diagram"


@dataclass(frozen=True)
class UpperBound:
    """``ln_bound``: the proven upper bound (nats) at multiplier ``multiplier``; ``evaluations``: multipliers tried;
    ``relaxation``: which relaxation gave it (``ADAPTIVE``, ``DELAYED``, or ``DIAGRAM`` with its width: "decision-diagram (width 64)")."""

    ln_bound: float
    multiplier: float
    evaluations: int
    relaxation: str = ADAPTIVE


#: Around the allocation the bound is asked about, every integer within this many of its kept count is a grid point.
FOCUS_WINDOW = 64


def _grid(lo: int, hi: int, levels: int, focus: int | None = None) -> list[int]:
    """Every integer of ``[lo, hi]`` when there are at most ``levels``, else ``levels`` geometric points with both
    ends, plus every integer within ``FOCUS_WINDOW`` of ``focus`` (an interval ``[a, b]`` costs up to
    ``lambda (b - a)`` nats; near the answer the relaxation's choices lie, and there it then costs nothing)."""
    if hi - lo + 1 <= levels:
        return list(range(lo, hi + 1))
    points = {lo, hi}
    points.update(int(round(v)) for v in np.geomspace(max(lo, 1), hi, num=levels))
    if focus is not None:
        points.update(range(max(lo, focus - FOCUS_WINDOW), min(hi, focus + FOCUS_WINDOW) + 1))
    return sorted(p for p in points if lo <= p <= hi)


def _intervals(grid: Sequence[int]) -> list[tuple[int, int]]:
    """The intervals ``[a_i, b_i]`` that cover ``[grid[0], grid[-1]]``: ``[g_i, g_{i+1} - 1]`` for consecutive grid
    points and the last point alone. Each costs up to ``lambda (b_i - a_i)`` nats, so none where the grid lists every
    integer (an interval ``[g_i, g_{i+1}]`` would cost ``lambda`` per layer even there)."""
    return [(low, high - 1) for low, high in zip(grid[:-1], grid[1:])] + [(grid[-1], grid[-1])]


@dataclass(frozen=True)
class Relaxation:
    """``ln UB(lambda)`` of the module docstring: call it as ``f(lambda, slopes=None)`` (``slopes``: a list that
    receives a subgradient at ``lambda``, on a chain; a program appends nothing). On a chain also ``at_zero()``
    (``ln UB(0)`` in one recursion) and ``delayed(lambda)`` (``ln UB_1``, the delayed relaxation); ``None`` on a
    program. ``diagram(lambda, width)``: ``ln UB_D``, the relaxed decision diagram (chains with a ``focus``).
    ``move_deadline(t)``: every later evaluation stops at ``t`` instead (the diagram's extension past the share)."""

    evaluate: Callable[..., float]
    at_zero: Callable[[], float] | None
    delayed: Callable[[float], float] | None
    diagram: Callable[[float, int], float] | None = None
    move_deadline: Callable[[float | None], None] | None = None

    def __call__(self, multiplier: float, slopes: list | None = None) -> float:
        return self.evaluate(multiplier, slopes)




def relaxation(problem: AllocationProblem, levels: int = 200, deadline: float | None = None,
               focus: Sequence[int] | None = None) -> Relaxation | None:
    """The ``Relaxation`` of ``problem``, or ``None`` for a rank model not known to be stochastically monotone. Past
    ``deadline`` an evaluation raises ``_OutOfTime``. ``levels`` and ``focus``: the grid (``_grid``)."""
    model = problem.rank_model
    if not monotone_in_density(model):
        return None
    network = problem.network
    specs = network.layers
    bound_layers = list(network.bound_layers)
    ranges = []
    for layer in range(network.n_weight_layers):
        if not network.prunable[layer]:
            ranges.append((network.weights[layer], network.weights[layer]))
        elif problem.fixed_kept[layer] is not None:
            ranges.append((problem.fixed_kept[layer], problem.fixed_kept[layer]))
        else:
            ranges.append((problem.member_lo[layer], problem.member_hi[layer]))
    # no feasible allocation keeps more in a prunable layer than the budget leaves after every other one's minimum
    floor_total = sum(lo for (lo, _), p in zip(ranges, network.prunable) if p)
    ranges = [(lo, min(hi, problem.budget.kept - (floor_total - lo))) if p else (lo, hi)
              for (lo, hi), p in zip(ranges, network.prunable)]
    grids = [_grid(lo, hi, levels, None if focus is None else focus[layer]) for layer, (lo, hi) in enumerate(ranges)]
    # prunable layers outside the bound still spend at least their floors of the budget: every relaxation charges them
    outside_floor = sum(ranges[layer][0] for layer in range(network.n_weight_layers)
                        if network.prunable[layer] and layer not in bound_layers)
    laws: dict[tuple[int, int], np.ndarray] = {}

    def ln_pmf(layer: int, kept: int) -> np.ndarray:
        key = (layer, kept)
        if key not in laws:
            laws[key] = model.law_for(specs[layer], kept / specs[layer].weights, cap=network.rank_caps[layer]).ln_pmf
        return laws[key]

    budget = problem.budget.kept

    def ln_ub_program(multiplier: float) -> float:
        """The same relaxation step by step: each step holds at most one weight layer (module docstring's proof
        applies to ReLU + max-pool too: its factor is non-decreasing in ``c`` and linear in ``N(s+1, .)``)."""
        program, domains = network.bound_program, network.domains
        ln_next = np.zeros(domains[len(program)] + 1)
        for s in range(len(program) - 1, -1, -1):
            step = program[s]
            if not step.layers():
                ln_next = ln_step(step, domains[s], ln_next, lambda _: None)  # type: ignore[arg-type,return-value]
                continue
            extra_cost = 0.0
            layer = step.layers()[0]
            others = step.layers()[1:]  # a residual step's second conv (and 1x1 shortcut): at their highest law,
            for other in others:        # costing their lowest count (module docstring)
                extra_cost += multiplier * ranges[other][0] if network.prunable[other] else 0.0
            grid = grids[layer]
            best = None
            intervals = _intervals(grid)
            for low, high in intervals:
                if deadline is not None and time.perf_counter() >= deadline:
                    raise _OutOfTime
                candidate = ln_step(step, domains[s], ln_next,
                                    lambda l, h=high: ln_pmf(l, h) if l == layer else ln_pmf(l, ranges[l][1]))
                if network.prunable[layer]:
                    candidate = candidate - multiplier * low
                best = candidate if best is None else np.maximum(best, candidate)
            ln_next = best - extra_cost
        value = float(ln_next[min(network.input_width, ln_next.size - 1)])
        value -= multiplier * outside_floor
        return multiplier * budget + value

    stacks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    stacked_bytes = [0]

    def interval_rows(layer: int) -> tuple[list[int], list[int]]:
        grid = grids[layer]
        intervals = _intervals(grid)
        return [low for low, _ in intervals], [high for _, high in intervals]

    def stacked(layer: int, rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The laws ``P_{b_i}`` of a layer's intervals as rows, their tails ``sum_{k>=c} P(k)`` and the ``a_i``; kept
        for the next multiplier while they fit in ``STACK_BYTES``."""
        if layer in stacks:
            pmfs, tails, lows = stacks[layer]
            return pmfs[rows], tails[rows], lows[rows]
        lows, highs = interval_rows(layer)
        pmfs = np.vstack([model.law_for(specs[layer], high / specs[layer].weights,
                                        cap=network.rank_caps[layer]).ln_pmf for high in highs[rows]])
        tails = np.logaddexp.accumulate(pmfs[:, ::-1], axis=1)[:, ::-1]
        chosen = np.asarray(lows[rows], dtype=float)
        if rows == slice(None) and stacked_bytes[0] + 2 * pmfs.nbytes <= STACK_BYTES:
            stacks[layer] = (pmfs, tails, chosen)
            stacked_bytes[0] += 2 * pmfs.nbytes
        return pmfs, tails, chosen

    def backward_positions():
        """The chain's bound layers from the last: ``(position, layer, cols, m, intervals, chunk)`` with ``cols`` the
        incoming width, ``m = min(width, cols)`` and ``chunk`` the rows of interval laws taken at once; raises
        ``_OutOfTime`` past the deadline before each layer."""
        widths = [network.widths[l] for l in bound_layers]
        for position in range(len(bound_layers) - 1, -1, -1):
            if deadline is not None and time.perf_counter() >= deadline:
                raise _OutOfTime
            layer = bound_layers[position]
            cols = network.input_width if position == 0 else widths[position - 1]
            m = min(widths[position], cols)
            count = len(interval_rows(layer)[0])
            yield position, layer, cols, m, count, count if layer in stacks else max(1, CHUNK_ENTRIES // (m + 1))

    def ln_ub(multiplier: float, slopes: list | None = None) -> float:
        """All intervals of a layer at once: ``h_l`` depends on ``U(l+1, .)`` only, so it is computed once per layer
        and the expectation over each interval's law is a row of one array (``recursion.ln_expect_over_rank``).

        With ``slopes`` (a list), a subgradient of ``ln UB`` at ``multiplier`` is appended to it: ``K - C(1, n0)``
        with ``C(l, d)`` the kept count the maximising policy pays from layer ``l`` on, averaged over the paths with
        their weights (``C(l, d) = a_* + [A_* (U C)](d) / [A_* U](d)`` with ``*`` the chosen interval at ``(l, d)``),
        minus the floors of prunable layers outside the bound: the derivative of the active piece of a maximum of
        convex functions (module docstring), so ``ln UB(mu) >= ln UB(lambda) + slope (mu - lambda)`` for every mu."""
        if not network.is_chain:
            return ln_ub_program(multiplier)
        widths = [network.widths[l] for l in bound_layers]
        ln_next = np.zeros(widths[-1] + 1)
        kept_for_slopes = []  # per position: U(l + 1, .), the chosen rows and the values (the slope's second pass)
        for position, layer, cols, m, count, chunk in backward_positions():
            ln_h = ln_h_of_layer(widths[position], m, ln_next)
            best = np.full(m + 1, -np.inf)
            chosen = np.zeros(m + 1, dtype=int)
            for start in range(0, count, chunk):
                if start and deadline is not None and time.perf_counter() >= deadline:
                    raise _OutOfTime
                rows = slice(None) if chunk >= count else slice(start, start + chunk)
                pmfs, tails, lows = stacked(layer, rows)
                values = _expect_rows(pmfs, tails, ln_h)
                if network.prunable[layer]:
                    values = values - multiplier * lows[:, None]
                top = values.max(axis=0)
                cheapest = (values >= top - SLOPE_TIE_NATS).argmax(axis=0)  # rows run from the cheapest up
                chosen = np.where(top > best + SLOPE_TIE_NATS, cheapest + start, chosen)  # earlier chunks: cheaper
                best = np.maximum(best, top)
            if slopes is not None:
                kept_for_slopes.append((position, layer, cols, m, ln_next, chosen, best))
            ln_next = np.concatenate((best, np.full(cols - m, best[-1])))
        value = float(ln_next[network.input_width])
        value -= multiplier * outside_floor
        if slopes is not None:  # the value stands even when the deadline cuts the slope's pass short
            ln_cost_next = np.full(widths[-1] + 1, -np.inf)  # ln C(l + 1, .): nothing is paid after the last layer
            for position, layer, cols, m, ln_after, chosen, best in kept_for_slopes:
                if deadline is not None and time.perf_counter() >= deadline:
                    return multiplier * budget + value
                ln_cost = np.full(m + 1, -np.inf)
                ln_h_cost = ln_h_of_layer(widths[position], m, ln_after + ln_cost_next)  # h of U C: linear in it
                all_lows = interval_rows(layer)[0]
                for row in np.unique(chosen):
                    pmf, _, _ = stacked(layer, slice(int(row), int(row) + 1))
                    paid = float(all_lows[row]) if network.prunable[layer] else 0.0
                    where = chosen == row
                    raw = best[where] + (multiplier * paid if network.prunable[layer] else 0.0)
                    later = ln_expect_over_rank(pmf[0], ln_h_cost)[where] - raw
                    ln_cost[where] = np.logaddexp(math.log(paid) if paid > 0 else -np.inf, later)
                ln_cost_next = np.concatenate((ln_cost, np.full(cols - m, ln_cost[-1])))
            slopes.append(budget - outside_floor - math.exp(float(ln_cost_next[network.input_width])))
        return multiplier * budget + value

    def delayed(multiplier: float) -> float:
        """``ln UB_1(lambda)`` of the module docstring (chains): per layer the vectors ``A(l, ., i)`` not dominated
        by another, each next one's ``h_l`` computed once and every interval's law applied to it."""
        widths = [network.widths[l] for l in bound_layers]
        options = [np.zeros(widths[-1] + 1)]
        for position, layer, cols, m, count, chunk in backward_positions():
            ln_hs = [ln_h_of_layer(widths[position], m, option) for option in options]
            vectors = []
            for start in range(0, count, chunk):
                rows = slice(None) if chunk >= count else slice(start, start + chunk)
                pmfs, tails, lows = stacked(layer, rows)
                best = np.full((pmfs.shape[0], m + 1), -np.inf)
                for ln_h in ln_hs:
                    if deadline is not None and time.perf_counter() >= deadline:
                        raise _OutOfTime
                    best = np.maximum(best, _expect_rows(pmfs, tails, ln_h))
                if network.prunable[layer]:
                    best = best - multiplier * lows[:, None]
                vectors += [np.concatenate((row, np.full(cols - m, row[-1]))) for row in best]
            options = _undominated(vectors)
        value = max(float(option[network.input_width]) for option in options)
        value -= multiplier * outside_floor
        return multiplier * budget + value

    def diagram(multiplier: float, width: int) -> float:
        """``ln UB_D(lambda)`` of the module docstring (chains, with ``focus``): the relaxed decision diagram of at
        most ``width`` vectors per layer."""
        assert focus is not None
        widths = [network.widths[l] for l in bound_layers]
        references = _answer_rows(position_count=len(bound_layers))
        members = np.zeros((1, widths[-1] + 1))
        for position, layer, cols, m, count, chunk in backward_positions():
            pmfs, tails, lows = stacked(layer, slice(None))
            highs = np.asarray(interval_rows(layer)[1])
            costs = multiplier * lows if network.prunable[layer] else np.zeros_like(lows)
            ln_hs = np.vstack([ln_h_of_layer(widths[position], m, member) for member in members])
            if members.shape[0] > 1:
                near = np.abs(highs - focus[layer]) <= DIAGRAM_WINDOW
                far = ~near
                parts = [_expect_many(pmfs[near], tails[near], ln_hs) - costs[near][None, :, None]]
                if far.any():
                    ln_h_top = ln_h_of_layer(widths[position], m, members.max(axis=0))[None, :]
                    parts.append(_expect_many(pmfs[far], tails[far], ln_h_top) - costs[far][None, :, None])
                candidates = np.vstack([part.reshape(-1, m + 1) for part in parts])
            else:
                candidates = (_expect_many(pmfs, tails, ln_hs) - costs[None, :, None]).reshape(-1, m + 1)
            if position == 0:
                value = float(candidates[:, min(network.input_width, m)].max())
                break
            if deadline is not None and time.perf_counter() >= deadline:
                raise _OutOfTime
            reference = references[position]
            folded = np.concatenate((reference[:m], [np.logaddexp.reduce(reference[m:])]))
            chosen = _cover(candidates, width, folded, DIAGRAM_MERGE_NATS, deadline)
            members = np.concatenate((chosen, np.repeat(chosen[:, -1:], cols - m, axis=1)), axis=1)
        value -= multiplier * outside_floor
        return multiplier * budget + value

    answer_rows: list[list[np.ndarray]] = []

    def _answer_rows(position_count: int) -> list[np.ndarray]:
        """The adjoint rows ``R_l`` of the answer (``focus``) at every position, computed once."""
        if not answer_rows:
            row = np.full(network.input_width + 1, -np.inf)
            row[network.input_width] = 0.0
            rows = []
            for position in range(position_count):
                layer = bound_layers[position]
                rows.append(row)
                cols = network.input_width if position == 0 else network.widths[bound_layers[position - 1]]
                row = ln_adjoint_of_layer(network.widths[layer], cols, ln_pmf(layer, focus[layer]), row)
            answer_rows.append(rows)
        return answer_rows[0]

    def evaluate(multiplier: float, slopes: list | None = None) -> float:
        return ln_ub(multiplier, slopes) if network.is_chain else ln_ub_program(multiplier)

    def at_zero() -> float:
        """``ln UB(0)`` of a chain in one recursion: at ``lambda = 0`` every state's best interval is the top one
        (``[hi, hi]``: its law dominates every other stochastically and ``h`` never decreases), so the relaxation
        is the bound with every layer at its highest count. Cheap where a full evaluation is not (wide layers)."""
        widths = [network.widths[l] for l in bound_layers]
        ln_next = np.zeros(widths[-1] + 1)
        for position in range(len(bound_layers) - 1, -1, -1):
            if deadline is not None and time.perf_counter() >= deadline:
                raise _OutOfTime
            layer = bound_layers[position]
            cols = network.input_width if position == 0 else widths[position - 1]
            ln_next = ln_n_of_layer(widths[position], cols, ln_pmf(layer, ranges[layer][1]), ln_next)
        return float(ln_next[network.input_width])

    def move_deadline(moved: float | None) -> None:
        nonlocal deadline
        deadline = moved

    chain = network.is_chain
    return Relaxation(evaluate, at_zero if chain else None, delayed if chain else None,
                      diagram if chain and focus is not None else None, move_deadline)


def _expect_rows(ln_pmfs: np.ndarray, ln_tails: np.ndarray, ln_h: np.ndarray) -> np.ndarray:
    """``ln sum_k P_i(k) h(min(d, k))`` for every row ``i`` of ``ln_pmfs`` and ``d = 0..m`` (``ln_tails``: the rows'
    ``ln sum_{k >= d} P_i(k)``): ``recursion.ln_expect_over_rank`` for many laws at once."""
    return _expect_many(ln_pmfs, ln_tails, ln_h[None, :])[0]


def _undominated(vectors: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The vectors no other one bounds from above everywhere (of equal ones, one), largest maximum first."""
    kept: list[np.ndarray] = []
    stack = None
    for vector in sorted(vectors, key=lambda v: -float(v.max())):
        if stack is not None and bool(np.any(np.all(stack >= vector, axis=1))):
            continue
        kept.append(vector)
        stack = vector[None, :] if stack is None else np.vstack((stack, vector))
    return kept


#: The diagram's intervals within this many kept weights of the answer's count are taken against every member;
#: the others against the members' pointwise maximum only (module docstring).
DIAGRAM_WINDOW = 4
#: A candidate that raises a member by at most this much anywhere (nats) is merged into it.
DIAGRAM_MERGE_NATS = 3e-4
#: The diagram's widths tried in turn while the deadline allows (each a valid bound; the least is kept).
DIAGRAM_WIDTHS = (16, 32, 64, 128, 256)
#: Candidates compared with the members at once.
DIAGRAM_CHUNK = 64


def _expect_many(ln_pmfs: np.ndarray, ln_tails: np.ndarray, ln_hs: np.ndarray) -> np.ndarray:
    """``_expect_rows`` for every ``ln h`` of ``ln_hs`` (shape ``(J, m + 1)``) at once: shape ``(J, rows, m + 1)``."""
    weighted = np.logaddexp.accumulate(ln_pmfs[None, :, :] + ln_hs[:, None, :], axis=2)
    below = np.concatenate((np.full(weighted.shape[:2] + (1,), -np.inf), weighted[:, :, :-1]), axis=2)
    return np.logaddexp(below, ln_hs[:, None, :] + ln_tails[None, :, :])


def _excess(candidates: np.ndarray, members: np.ndarray, deadline: float | None = None) -> np.ndarray:
    """``max_d (c(d) - v(d))`` for every member ``v`` (rows) and candidate ``c`` (columns); both finite (``_cover``
    raises ``-inf`` to ``LN_NOTHING``). Members taken a block at a time so that no difference array exceeds
    ``EXCESS_ENTRIES`` (wide layers: 256 members x 64 candidates x 20,001 dimensions would be 2.6 GB) unless one
    member against every candidate does (callers pass candidates in chunks); raises ``_OutOfTime`` past
    ``deadline``, checked per block."""
    block = max(1, EXCESS_ENTRIES // max(1, candidates.shape[0] * candidates.shape[1]))
    if members.shape[0] <= block:
        return (candidates[None, :, :] - members[:, None, :]).max(axis=2)
    parts = []
    for start in range(0, members.shape[0], block):
        if deadline is not None and time.perf_counter() >= deadline:
            raise _OutOfTime
        parts.append((candidates[None, :, :] - members[start:start + block, None, :]).max(axis=2))
    return np.concatenate(parts, axis=0)


def _rough(vectors: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``vectors - offset`` (an offset per dimension, so that the values lie near 0) in float32, raised to ``-1e30``,
    for choosing where a candidate merges: the choice only decides how tight the cover is (a merge is a pointwise
    maximum, valid whatever the choice), so half the bytes of float64 serve."""
    shifted = vectors - offset[None, :]
    np.maximum(shifted, -1e30, out=shifted)
    with np.errstate(over="ignore"):  # a finite value over a dimension no member reaches: inf, chosen arbitrarily
        return shifted.astype(np.float32)


#: The most entries of one difference array in ``_excess`` (16 MiB of float64).
EXCESS_ENTRIES = 2**21


#: ``-inf`` (nothing) raised to a finite log so that differences stay defined: ``e^{-1e300}`` is 0 in floats, and a
#: larger vector only loosens a cover.
LN_NOTHING = -1e300


def _cover(candidates: np.ndarray, width: int, ln_reference: np.ndarray, merge_nats: float,
           deadline: float | None = None) -> np.ndarray:
    """At most ``width`` vectors that cover ``candidates`` (each candidate at or below one of them everywhere): the
    module docstring's choice, members in the order of ``ln sum_d R(d) V(d)`` with ``R = e^{ln_reference}``, then
    every candidate left over merged into the member it exceeds least (chosen in float32: ``_rough``). Raises
    ``_OutOfTime`` past ``deadline`` (checked per chunk of candidates and per block of members)."""
    if candidates.shape[0] <= width:
        return candidates
    candidates = np.maximum(candidates, LN_NOTHING)
    scores = _ln_sum_exp_rows(candidates + ln_reference[None, :])
    order = np.argsort(-scores, kind="stable")
    held = np.empty((width, candidates.shape[1]))  # the members so far: held[:count]
    count = 0
    placed = np.zeros(candidates.shape[0], dtype=bool)
    position = 0
    while count < width and position < order.size:
        chunk = order[position:position + DIAGRAM_CHUNK]
        position += DIAGRAM_CHUNK
        # excess over the members held when the chunk starts; a merge only lowers it, so it stays an upper bound
        if deadline is not None and time.perf_counter() >= deadline:
            raise _OutOfTime
        stale = _excess(candidates[chunk], held[:count]) if count else np.full((0, chunk.size), np.inf)
        if count:  # bounded by a member already: placed at once
            bounded = stale.min(axis=0) <= 0
            placed[chunk[bounded]] = True
            chunk, stale = chunk[~bounded], stale[:, ~bounded]
        pair = _excess(candidates[chunk], candidates[chunk])  # [i, j]: j's excess over i, for members made here
        made: list[int] = []  # chunk positions of the members made from this chunk (slots before, before + 1, ...)
        for j, index in enumerate(chunk):
            if count >= width:
                break
            vector = candidates[index]
            excess = np.concatenate((stale[:, j], pair[made, j])) if made else stale[:, j]
            if excess.size:
                nearest = int(excess.argmin())
                if excess[nearest] <= 0:  # bounded already
                    placed[index] = True
                    continue
                if excess[nearest] <= merge_nats:
                    held[nearest] = np.maximum(held[nearest], vector)
                    placed[index] = True
                    continue
            held[count] = vector
            count += 1
            made.append(j)
            placed[index] = True
    members = held[:count]
    rest = candidates[~placed]
    if rest.shape[0] == 0:
        return members
    # every candidate left over is merged into the member it exceeds least (by the members as they stand once all
    # are chosen; a merge raises a member, so a later candidate only needs to lie below it): each then lies below
    # the member it joined
    if deadline is not None and time.perf_counter() >= deadline:
        raise _OutOfTime
    offset = members.max(axis=0)  # excess is the same after taking a per-dimension offset from both
    rough_members = _rough(members, offset)
    rows = max(1, EXCESS_ENTRIES // (members.shape[0] * members.shape[1]))  # leftovers taken at once
    nearest = np.concatenate([_excess(_rough(rest[start:start + rows], offset), rough_members, deadline).argmin(axis=0)
                              for start in range(0, rest.shape[0], rows)])
    order = np.argsort(nearest, kind="stable")
    groups, starts = np.unique(nearest[order], return_index=True)
    merged = members.copy()
    merged[groups] = np.maximum(merged[groups], np.maximum.reduceat(rest[order], starts, axis=0))
    return merged


def _ln_sum_exp_rows(values: np.ndarray) -> np.ndarray:
    """``ln sum_d e^{values[:, d]}`` per row, from each row's maximum (rows of ``-inf`` give ``-inf``): what
    ``scipy.special.logsumexp(values, axis=1)`` gives (equal on 1000 x 101 rows of ``_cover``'s kind), in 3.0 ms
    against its 8.0 and ``np.logaddexp.reduce``'s logarithm per entry; ``_cover`` calls it once per layer."""
    top = values.max(axis=1)
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(values - shift[:, None]).sum(axis=1)) + shift


def lagrangian_upper_bound(problem: AllocationProblem, levels: int = 200,
                           deadline: float | None = None, focus: Sequence[int] | None = None,
                           multiplier_hint: float | None = None, delayed: bool = True,
                           target: float | None = None, extended_deadline: float | None = None,
                           support: tuple[float, float] | None = None) -> UpperBound | None:
    """The module docstring's bound, minimised over ``lambda`` (``None`` for a rank model that is not known to be
    stochastically monotone in the density, such as the stratified structural estimate). The search over
    ``lambda`` stops at ``deadline`` (a ``time.perf_counter()`` value) with the best multiplier so far (every
    multiplier gives a valid bound, later ones only a tighter one); ``None`` when not one finished. ``focus``: kept
    counts per weight layer (the answer) around which the grid lists every integer (``_grid``). ``multiplier_hint``:
    where to look for the best ``lambda`` first (the answer's marginal nats per kept weight: at the optimum of the
    relaxation every layer's marginal value equals ``lambda``); without it a grid from 1e-6 to 20. ``delayed``: on a chain,
    then (with a ``focus``) the relaxed decision diagram at the best multiplier, else the delayed relaxation (module
    docstring), the lower returned; ``delayed=False`` turns both off; not tried
    when the first bound is within ``SLOPE_TOLERANCE_NATS`` of ``target`` (the answer's ``ln E[B]``: nothing to gain).
    ``extended_deadline`` (later than ``deadline``): the diagram's search goes on up to it while its gap to ``target``
    is above ``GOAL_NATS`` but within ``REACH_NATS`` (``_diagram_at``). ``support``: the answer's supporting
    multipliers ``(g, q)`` (``allocation.api._supporting_multipliers``), where the diagram's search starts instead of
    at the first bound's multiplier."""
    if deadline is not None and time.perf_counter() >= deadline:
        return None
    value_of = relaxation(problem, levels, deadline, focus)
    if value_of is None:
        return None
    chain = problem.network.is_chain
    tried: dict[float, float] = {}
    slope_at: dict[float, float] = {}

    if chain:  # a first bound in one recursion, so that one stands even when a full evaluation cannot finish
        try:
            tried[0.0] = value_of.at_zero()
        except _OutOfTime:
            return None

    def evaluate(multiplier: float) -> float:
        if multiplier not in tried or (chain and multiplier not in slope_at):
            slopes: list | None = [] if chain else None
            try:
                tried[multiplier] = value_of(multiplier, slopes)
            except _OutOfTime:
                return math.inf
            if slopes:
                slope_at[multiplier] = slopes[0]
        return tried[multiplier]

    hinted = multiplier_hint is not None and math.isfinite(multiplier_hint) and multiplier_hint > HINT_FLOOR
    supported = _supported_start(support)
    if chain:  # coarser where the diagram follows: it searches the multiplier again around this one
        coarse = delayed and focus is not None and value_of.diagram is not None
        if coarse and supported is not None:  # one evaluation where the diagram starts: the fallback bound
            evaluate(supported[0])
        else:
            _slope_search(evaluate, tried, slope_at, float(multiplier_hint) if hinted else None,
                          DIAGRAM_FIRST_TOLERANCE_NATS if coarse else SLOPE_TOLERANCE_NATS)
    else:
        _golden_search(evaluate, tried, float(multiplier_hint) if hinted else None)
    if not tried:
        return None
    best = min(tried, key=tried.get)
    first = UpperBound(tried[best], best, len(tried))

    if not (chain and delayed and _delayed_fits(problem, levels, focus)):
        return first
    if target is not None and first.ln_bound - target <= SLOPE_TOLERANCE_NATS:
        return first
    if value_of.diagram is not None:
        found = _diagram_at(value_of.diagram, first, target, deadline, extended_deadline, value_of.move_deadline,
                            support)
        if value_of.move_deadline is not None:
            value_of.move_deadline(deadline)
        if found is not first:
            return found  # else no diagram finished in time: the delayed relaxation may still fit
    tighter = _delayed_at(value_of.delayed, best)
    if tighter is None or tighter >= first.ln_bound:
        return first
    return UpperBound(tighter, best, len(tried) + 1, DELAYED)


#: A doubled width costs about this many times the last one (measured 2.0-3.5 at 20-100 layers of 100, 3.8 on
#: 10,000-wide ones: after two widths the last doubling's own ratio is used where larger): a width whose
#: estimate does not fit before the deadline is not started.
DIAGRAM_GROWTH = 2.5


#: The multiplier search of the diagram: compass searches, steps of ``DIAGRAM_STEP`` times the multiplier (halved
#: when neither side is lower, down to ``DIAGRAM_MIN_STEP``). The diagram's least bound sits within about 1 % of the
#: first multiplier and is sharp (784-100x100-10 at 0.001, width 64: 0.0220 nats at it, 0.0067 at 1.0025 times it,
#: 0.0345 at 0.9975; 784-100x200-10, width 64: 0.33 at it, 0.060 at 0.9925, 0.56 at 0.985), so a golden section over
#: +-5 % or +-2 % spent its few affordable steps too far out. Its place hardly moves with the width (784-100x200-10:
#: 0.9925 at widths 16, 32 and 64; 784-100x100-10: 1.005 at width 16, 1.0025 at 64), while the bound falls steeply
#: with the width once there (784-100x200-10 at 0.9925: 0.20, 0.094, 0.060, 0.0125 nats at widths 16-128). So the
#: search first scouts at the narrowest width (at most ``DIAGRAM_SCOUT_STEPS`` rounds, down to a step of
#: ``DIAGRAM_SCOUT_MIN_STEP``, i.e. whole steps only; 1.2 s an evaluation at 200 layers, against 9 s at width 128),
#: then widens there, then goes on at the widest width that helped (``DIAGRAM_SEARCH_STEPS`` rounds in all). The
#: scout runs only where the time left holds ``DIAGRAM_SCOUT_ROOM`` times the first width-16 evaluation (about 6 for
#: the scout, 2 + 4 for widths 32 and 64): where it ran regardless, the default share's short time went to it and
#: the gap rose (784-100x50-10: 0.0166 -> 0.062 nats, 784-100x100-10: 0.000 -> 0.047 in one run).
DIAGRAM_STEP = 0.0025
DIAGRAM_MIN_STEP = 1e-5
DIAGRAM_SEARCH_STEPS = 12
DIAGRAM_SCOUT_STEPS = 8
DIAGRAM_SCOUT_MIN_STEP = DIAGRAM_STEP
DIAGRAM_SCOUT_ROOM = 12.0
#: A doubled width whose bound at the same multiplier moves by at most this (nats) ends the widening: there the width
#: is not what holds the bound up (784-100x50-10 at 0.001, 1.0025 times the first multiplier: 0.0230 nats at widths
#: 64, 128 and 256 alike, the last two 1.5 and 3.8 s that the multiplier's search then lacked).
DIAGRAM_SAME_NATS = 1e-9
#: The issue's goal for the certificate's gap, nats, and the gap beyond which the diagram's search does not go on past
#: its share (``_diagram_at``'s ``extended_deadline``): 784-100x50-10 at 0.001 had 0.0166 nats after its default
#: share (1.2 s for the diagram), 0.0013 given 6.5 s. Session 12 had 0.1: 784-100x200-10 (0.33 nats after the share)
#: and 3072-1000x50-10 at 0.0001 (0.81) were then beyond it. Since the search starts at the answer's supporting
#: multipliers (session 15), 784-100x200-10 has 0.18-0.20 after the share and 0.0017 given 16 s (width 128), so the
#: reach is 0.5; 3072-1000x50-10 at 0.0001 (0.60 after the share, 0.22 given 10 s, width 32) stays beyond it.
GOAL_NATS = 0.01
REACH_NATS = 0.5
#: The widest width built past the share (``_diagram_at``): 784-100x100-10 at 0.001 had width 64 at the first
#: multiplier (0.0147 nats) when the share ended, then width 128 there gave 0.0085 in 2.8 s, where one compass step
#: at width 64 (1.2 s) gave 0.0000; with no widening at all past the share, 784-100x50-10 (whose share ends after
#: width 16) stayed at width 16: 0.0564 nats in 2 of 3 runs, against 0.0077 with width 64. Session 15: 128, since
#: 784-100x200-10 needs width 128 at its supporting multipliers (0.082 nats at width 64, 0.0017 at 128).
DIAGRAM_EXTENSION_WIDEST = 128


def _diagram_at(diagram: Callable[[float, int], float], first: UpperBound, target: float | None,
                deadline: float | None = None, extended_deadline: float | None = None,
                move_deadline: Callable[[float | None], None] | None = None,
                support: tuple[float, float] | None = None) -> UpperBound:
    """The relaxed decision diagram around ``first``'s multiplier (nothing at a multiplier of 0, where no diagram can
    beat ``first``; the diagram's dual need not be least where the state-adaptive one is, and every multiplier gives a
    valid bound, so the search needs no convexity):

    1. a compass search of the multiplier at the narrowest width ``DIAGRAM_WIDTHS[0]`` from ``first``'s (the scout),
       where the time left after its first evaluation holds ``DIAGRAM_SCOUT_ROOM`` times that evaluation;
    2. at the scout's multiplier the wider widths in turn (widening stops after two doublings without a gain);
    3. the compass search again from there at the width that gave the least bound; where a step there no longer
       fits, at half that width, and so on.

    Each evaluation only where its estimate fits before ``deadline``, until the bound is within
    ``SLOPE_TOLERANCE_NATS`` of ``target``: the least bound found, or ``first`` where none is lower. While the gap
    ``found - target`` is above ``GOAL_NATS`` and at most ``REACH_NATS``, ``extended_deadline`` (where later) stands
    for ``deadline``: evaluations go on past the share where the goal looks near, and stop at the share where the
    gap already meets it or is far from it (``move_deadline``: the relaxation's own deadline, set to the one that
    stands before each evaluation). The extension widens up to ``DIAGRAM_EXTENSION_WIDEST`` only and otherwise goes
    to the multiplier's search."""
    found = first
    evaluations = first.evaluations
    seconds = {0: 0.0}
    values: dict[int, dict[float, float]] = {width: {} for width in DIAGRAM_WIDTHS}

    def close_enough() -> bool:
        return target is not None and found.ln_bound - target <= SLOPE_TOLERANCE_NATS

    def limit() -> float | None:
        near = target is not None and GOAL_NATS < found.ln_bound - target <= REACH_NATS
        return extended_deadline if near and extended_deadline is not None and deadline is not None else deadline

    def fits(estimate: float, share_only: bool = False) -> bool:
        standing = deadline if share_only else limit()
        return standing is None or time.perf_counter() + estimate <= standing

    def at(multiplier: float, width: int, estimate: float, share_only: bool = False) -> float:
        """The diagram's bound, raising ``_OutOfTime`` where it is close enough already or ``estimate`` does not fit
        (before ``deadline`` itself where ``share_only``)."""
        nonlocal found, evaluations
        if multiplier not in values[width]:
            if close_enough() or not fits(estimate, share_only):
                raise _OutOfTime
            if move_deadline is not None:
                move_deadline(deadline if share_only else limit())
            started = time.perf_counter()
            value = diagram(multiplier, width)  # raises _OutOfTime past the deadline
            seconds[width] = time.perf_counter() - started
            evaluations += 1
            values[width][multiplier] = value
            if value < found.ln_bound:
                found = UpperBound(value, multiplier, evaluations, f"{DIAGRAM} (width {width})")
        return values[width][multiplier]

    def compass(width: int, rounds: int, least_step: float) -> None:
        """Up to ``rounds`` rounds at ``width`` from ``state``'s centre: a step each way (the last direction that
        helped first), moving to the first lower one, else halving the step (stopping below ``least_step``).
        ``state`` (centre, step, direction, rounds used here) follows it, also when ``_OutOfTime`` cuts it short."""
        state[3] = 0
        while state[3] < rounds and state[1] >= least_step:
            state[3] += 1
            center, step, direction = state[0], state[1], state[2]
            here = at(center, width, seconds.get(width, 0.0))
            for sign in (direction, -direction):
                if at(center * (1 + sign * step), width, seconds.get(width, 0.0)) < here:
                    state[0], state[2] = center * (1 + sign * step), sign
                    break
            else:
                state[1] = step / 2

    if first.multiplier <= 0:
        return first  # at lambda = 0 every layer at its top count: the diagram's dual is that bound too
    narrowest = DIAGRAM_WIDTHS[0]
    supported = _supported_start(support)
    start, first_step = supported if supported is not None else (first.multiplier, DIAGRAM_STEP)
    state: list = [start, first_step, 1.0, 0]
    try:  # 1. the scout, where the time left holds it and widening to 64 after it; its first evaluation is not
        # estimated (nothing measured yet). Not where the answer's supporting multipliers say where to look.
        at(start, narrowest, 0.0)
        if supported is None and fits(DIAGRAM_SCOUT_ROOM * seconds[narrowest]):
            compass(narrowest, DIAGRAM_SCOUT_STEPS, DIAGRAM_SCOUT_MIN_STEP)
    except _OutOfTime:
        pass
    if not values[narrowest]:
        return found
    center = state[0]
    # 2. widening at the scout's multiplier
    best_width, best_value = narrowest, values[narrowest].get(center, math.inf)
    widest = narrowest
    for width in DIAGRAM_WIDTHS[1:]:
        growth = DIAGRAM_GROWTH if widest // 2 not in seconds or not seconds[widest // 2] else \
            max(DIAGRAM_GROWTH, seconds[widest] / seconds[widest // 2])  # the last doubling's own ratio
        try:
            # past the share, up to DIAGRAM_EXTENSION_WIDEST only: the extension goes to the multiplier's search
            value = at(center, width, growth * seconds[widest], share_only=width > DIAGRAM_EXTENSION_WIDEST)
        except _OutOfTime:
            break
        widest = width
        if value < best_value - SLOPE_TOLERANCE_NATS:
            best_width, best_value = width, value
        elif width >= 4 * best_width or abs(value - values[width // 2].get(center, math.inf)) <= DIAGRAM_SAME_NATS:
            break  # two doublings without a gain, or one without any change: widening no longer pays here
    # 3. the compass search at the width that gave the least bound; where a step there no longer fits, at half that
    # width, and so on (any width's bound is valid, and at depth the multiplier can matter more than the width)
    state[1] = first_step
    rounds = DIAGRAM_SEARCH_STEPS
    for width in [w for w in reversed(DIAGRAM_WIDTHS) if w <= best_width and values[w]]:
        try:
            compass(width, rounds, DIAGRAM_MIN_STEP)
            break
        except _OutOfTime:
            if close_enough():
                break
            rounds -= state[3]
    return found


def _supported_start(support: tuple[float, float] | None) -> tuple[float, float] | None:
    """Where the diagram's compass search starts from the answer's supporting multipliers ``(g, q)``: their midpoint,
    with a first step of half their distance as a fraction of it (between ``DIAGRAM_MIN_STEP`` and
    ``DIAGRAM_STEP``), so that its first steps land on ``g`` and ``q``; ``None`` without them or where the
    midpoint is not above ``HINT_FLOOR``. ``g > q`` (the answer is not optimal under single moves) still gives a
    start: any multiplier gives a valid bound."""
    if support is None or not all(math.isfinite(v) for v in support):
        return None
    low, high = sorted(support)
    center = 0.5 * (low + high)
    if center <= HINT_FLOOR:
        return None
    return center, min(DIAGRAM_STEP, max(DIAGRAM_MIN_STEP, 0.5 * (high - low) / center))


#: Entries (intervals x dimensions over the layers) above which the delayed relaxation is not tried: its vectors are
#: held whole per layer.
DELAYED_ENTRIES = 2**23


def _delayed_fits(problem: AllocationProblem, levels: int, focus: Sequence[int] | None) -> bool:
    """Whether one layer's interval vectors for the delayed relaxation stay under ``DELAYED_ENTRIES``."""
    network = problem.network
    extra = 2 * FOCUS_WINDOW + 1 if focus is not None else 0
    widest = max((network.input_width if p == 0 else network.widths[network.bound_layers[p - 1]]) + 1
                 for p in range(len(network.bound_layers)))
    return (levels + extra + 1) * widest <= DELAYED_ENTRIES


def _delayed_at(delayed: Callable[[float], float], multiplier: float) -> float | None:
    """``ln UB_1`` at ``multiplier`` (the first bound's: an evaluation costs about 12 of the first relaxation's, 0.87
    s against 0.07 s at 100 layers of 100, and a search around it moved 784-100x5-10's gap only from 0.0354 to
    0.0342 nats); ``None`` when the deadline passes first."""
    try:
        return delayed(multiplier)
    except _OutOfTime:
        return None


#: Rows within this of a state's best value count as tied for the slope: the cheapest of them is charged (at a
#: saturated bound many counts reach the same value up to rounding; charging any other gives a slope below the
#: largest subgradient there). The value itself is always the exact maximum.
SLOPE_TIE_NATS = 1e-9
#: Slope steps inside the bracket, and the stop: the best bound within this of the tangents' lower bound on the
#: minimum over the bracket (a convex function lies above each tangent).
SLOPE_STEPS = 12
SLOPE_TOLERANCE_NATS = 1e-4
#: The same stop for the first bound where the relaxed decision diagram follows (its own search of the multiplier,
#: a compass search of steps of ``DIAGRAM_STEP``, starts from this one): 784-100x200-10 at 0.001 took 10
#: evaluations (4.3 s) at 1e-4, 7 at this.
DIAGRAM_FIRST_TOLERANCE_NATS = 0.01
#: Multipliers of the search without a hint: 0 and a geometric grid.
UNHINTED_GRID = (0.0,) + tuple(float(v) for v in np.geomspace(1e-6, 20.0, 10))


def _slope_search(evaluate: Callable[[float], float], tried: dict[float, float], slope_at: dict[float, float],
                  start: float | None, tolerance_nats: float = SLOPE_TOLERANCE_NATS) -> None:
    """Minimise the convex ``ln UB(lambda)`` over ``lambda >= 0`` with subgradients: bracket the minimum by steps
    of 5 %, 10 %, 20 %, ... of the multiplier from ``start`` (the best grid point without one; ``lambda = 0`` is
    tried once the step reaches 100 %) until a negative and a positive slope enclose it, then step to where the tangents at the bracket's ends cross, until the best value is within
    ``tolerance_nats`` of the tangents' lower bound. A slope 0, or a slope >= 0 at ``lambda = 0``, ends it
    at a minimum. Stops quietly where an evaluation runs out of time (``evaluate`` returns inf, no slope)."""
    if start is None:
        evaluate(0.0)  # a saturated or slack budget: the bound rises from 0, which one evaluation shows
        if slope_at.get(0.0, -1.0) >= 0 or 0.0 not in slope_at:
            return
        for multiplier in UNHINTED_GRID:
            evaluate(multiplier)
        start = min(slope_at, key=tried.get)
    evaluate(start)
    step = BRACKET_FIRST_STEP  # a good hint sits within a few % of the minimum: grow the step from there
    for _ in range(4 * BRACKET_DOUBLINGS):
        if start not in slope_at:
            return
        if any(g == 0 for g in slope_at.values()) or slope_at.get(0.0, -1.0) >= 0:
            return  # a minimum: a flat point, or the function rises from lambda = 0
        falling = [m for m, g in slope_at.items() if g < 0]
        rising = [m for m, g in slope_at.items() if g > 0]
        if falling and rising:
            break
        if rising:
            lowest = min(rising)
            start = 0.0 if step >= 1.0 and 0.0 not in slope_at else lowest / (1.0 + step)  # the minimum may be 0
        else:
            highest = max(falling)
            start = highest * (1.0 + step) if highest > 0 else HINT_FLOOR * 1e3
        step *= 2
        evaluate(start)
    else:
        return
    low = max(m for m, g in slope_at.items() if g < 0)
    high = min(m for m, g in slope_at.items() if g > 0)
    for _ in range(SLOPE_STEPS):
        f_low, f_high, g_low, g_high = tried[low], tried[high], slope_at[low], slope_at[high]
        crossing = (f_high - f_low + g_low * low - g_high * high) / (g_low - g_high)
        if min(tried.values()) - (f_low + g_low * (crossing - low)) <= tolerance_nats:
            return
        crossing = min(max(crossing, low + 0.01 * (high - low)), high - 0.01 * (high - low))
        evaluate(crossing)
        if crossing not in slope_at or slope_at[crossing] == 0:
            return
        if slope_at[crossing] < 0:
            low = crossing
        else:
            high = crossing


def _golden_search(evaluate: Callable[[float], float], tried: dict[float, float], start: float | None) -> None:
    """The same minimum without slopes (programs): bracket from ``start`` by doubling, then golden section."""
    if start is not None:
        low, middle, high = start / 2, start, start * 2
        for _ in range(BRACKET_DOUBLINGS):
            if evaluate(low) < evaluate(middle):
                low, middle, high = low / 2, low, middle
            elif evaluate(high) < evaluate(middle):
                low, middle, high = middle, high, high * 2
            else:
                break
        else:
            low = 0.0 if evaluate(low) < evaluate(middle) else low  # still falling towards 0: include it
        if not tried:
            return
    else:
        for multiplier in UNHINTED_GRID:
            evaluate(multiplier)
        if not tried:
            return
        best = min(tried, key=tried.get)
        low, high = max(0.0, best / 4.0), (best * 4.0 if best > 0 else 1e-6)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(GOLDEN_STEPS):  # golden-section refinement inside the bracket (any multiplier is valid)
        a = high - ratio * (high - low)
        b = low + ratio * (high - low)
        if evaluate(a) < evaluate(b):
            high = b
        else:
            low = a
