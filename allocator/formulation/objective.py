"""The exact objective ``ln E[B]`` and the MIP's surrogate, both as plain numeric evaluators.

Surrogate (rank-capped product form, allocation.md): with ``k_l`` the expected rank of layer ``l`` at its
kept count, ``m_0 = n0`` and ``m_l = min(m_{l-1}, k_l, n_l)``,

    surrogate = sum_l F_l(m_l),   F_l(t) = ln S(n_l, t) = ln sum_{j<=t} C(n_l, j),

with ``F_l`` linearly interpolated between the breakpoints of ``breakpoints`` (every integer up to 8,
then 15 % apart): the MIP's chord cuts give exactly this, since ``F_l`` is concave on the integers. The MIP of ``allocator.formulation.mip`` optimises this same
function; ``surrogate_value`` evaluates it directly so the two can be compared.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

from allocator.formulation.problem import AllocationProblem
from allocator.bound.engine import at_least_one_region
from allocator.bound.rank import RankLaw
from allocator.bound.program import ln_program_suffix
from allocator.bound.recursion import (ln_adjoint_of_layer, ln_expect_over_rank, ln_h_of_layer, ln_n_of_layer,
                                       ln_pairing, ln_partial_binomial_sums, ln_tail_of)


#: The surrogate's breakpoints: every integer up to ``BREAKPOINTS_DENSE_BELOW``, then ``BREAKPOINTS_RATIO`` apart.
#: Fewer chords make a shorter LP for HiGHS, whose time at depth is mostly the LP work of proving the surrogate
#: optimal: against every integer up to 32 then 5 % apart (57 chords per layer of width 100, 104 for 1000), this
#: grid (28 and 44) took HiGHS from 12.7 to 3.9 s on 784-100x200-10 at density 0.001 and from 3.7 to 2.3 s on
#: 3072-1000x50-10 at 0.0001, with the same final ln E[B] on all ten cases of ``experiments/bench_depth`` (one run
#: each, 2026-12-04). The price: the chords sit further below ``F`` (at most 0.17 nats per layer for width 100,
#: 1.8 for 1000, against 0.03 and 0.24), which only the MIP sees; the exact polish and the certificate work on
#: ``ln E[B]`` itself.
BREAKPOINTS_DENSE_BELOW = 8
BREAKPOINTS_RATIO = 1.15


def breakpoints(cap: int, dense_below: int = BREAKPOINTS_DENSE_BELOW, ratio: float = BREAKPOINTS_RATIO) -> np.ndarray:
    """Integer breakpoints in ``[0, cap]`` for the piecewise-linear ``F``: every integer up to
    ``dense_below``, then a geometric progression of ``ratio`` (44 points for ``cap = 1000``)."""
    points = set(range(min(cap, dense_below) + 1))
    value = float(dense_below)
    while value < cap:
        value *= ratio
        points.add(min(cap, int(round(value))))
    points.add(cap)
    return np.array(sorted(points))


def surrogate_piece(width: int, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints ``t`` and values ``F(t)`` of layer width ``width`` on ``[0, cap]``: the chords between
    consecutive breakpoints define the piecewise-linear surrogate (below the concave ``F``, equal at the
    breakpoints)."""
    points = breakpoints(cap)
    return points, ln_partial_binomial_sums(width)[points]


def interpolate(points: np.ndarray, values: np.ndarray, t: float) -> float:
    """The piecewise-linear function through ``(points, values)`` at real ``t``."""
    return float(np.interp(t, points, values))


#: Bytes the exact objective's caches (suffix arrays ``N(l, .)`` and rank laws) may hold together, by default.
DEFAULT_CACHE_BYTES = 256 * 2**20


class ByteLimitedCache:
    """A least-recently-used mapping whose values' ``nbytes`` add up to at most ``limit_bytes`` (one value larger
    than the limit is not kept at all). ``peak_bytes`` is the most it ever held."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = int(limit_bytes)
        self.bytes = 0
        self.peak_bytes = 0
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value[0] if value is not None else None

    def put(self, key, value, nbytes: int) -> None:
        if nbytes > self.limit_bytes:
            return
        if key in self._items:
            self.bytes -= self._items.pop(key)[1]
        self._items[key] = (value, nbytes)
        self.bytes += nbytes
        while self.bytes > self.limit_bytes:
            _, (_, freed) = self._items.popitem(last=False)
            self.bytes -= freed
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def __len__(self) -> int:
        return len(self._items)


class ExactObjective:
    """``ln E[B]`` of a kept-count vector; rank laws and suffix arrays cached within ``cache_bytes`` together."""

    def __init__(self, problem: AllocationProblem, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.problem = problem
        network = problem.network
        self._layers = network.bound_layers
        self._specs = network.layers
        self._widths = [network.widths[i] for i in self._layers]
        self._caps = network.rank_caps
        self.cache = ByteLimitedCache(cache_bytes)
        self.evaluations = 0

    def law(self, layer: int, kept: int) -> RankLaw:
        """The rank law of weight layer ``layer`` with ``kept`` weights kept."""
        key = ("law", layer, kept)
        law = self.cache.get(key)
        if law is None:
            spec = self._specs[layer]
            law = self.problem.rank_model.law_for(spec, kept / spec.weights, cap=self._caps[layer])
            self.cache.put(key, law, law.ln_pmf.nbytes)
        return law

    def tail(self, layer: int, kept: int) -> np.ndarray:
        """``recursion.ln_tail_of`` of ``law(layer, kept)``, computed once per law (every recursion step needs it)."""
        key = ("tail", layer, kept)
        tail = self.cache.get(key)
        if tail is None:
            tail = ln_tail_of(self.law(layer, kept).ln_pmf)
            self.cache.put(key, tail, tail.nbytes)
        return tail

    def of_kept(self, kept: Sequence[int]) -> float:
        """``ln E[B]`` (nats) with weight layer ``l`` keeping ``kept[l]`` weights.

        The recursion runs from the last layer to the first; the array ``N(l, .)`` depends only on the
        kept counts of layers ``l..L``, so it is cached under that suffix (least recently used first out, within
        the cache's bytes) and a change to shallow layers reuses the deeper work.
        """
        self.evaluations += 1
        network = self.problem.network
        if not network.is_chain:
            return self._of_kept_program(kept)
        key_kept = tuple(kept[layer] for layer in self._layers)
        ln_next = np.zeros(self._widths[-1] + 1)
        start = len(self._layers)
        for position in range(1, len(self._layers) + 1):  # the longest cached suffix
            cached = self.cache.get(("suffix",) + key_kept[position - 1:])
            if cached is not None:
                ln_next, start = cached, position - 1
                break
        for position in range(start - 1, -1, -1):
            layer = self._layers[position]
            cols = network.input_width if position == 0 else self._widths[position - 1]
            ln_next = ln_n_of_layer(self._widths[position], cols, self.law(layer, kept[layer]).ln_pmf, ln_next,
                                    self.tail(layer, kept[layer]))
            self.cache.put(("suffix",) + key_kept[position:], ln_next, ln_next.nbytes)
        return at_least_one_region(float(ln_next[network.input_width]), self.problem.rank_model)

    def _suffixes(self, kept: Sequence[int]) -> list[np.ndarray]:
        """``ln N(p, .)`` for bound positions ``p = 0..P`` (``N(P, .) = 1``) of ``kept``, through the suffix cache."""
        network = self.problem.network
        key_kept = tuple(kept[layer] for layer in self._layers)
        suffixes: list[np.ndarray] = [np.zeros(0)] * len(self._layers) + [np.zeros(self._widths[-1] + 1)]
        for position in range(len(self._layers) - 1, -1, -1):
            key = ("suffix",) + key_kept[position:]
            cached = self.cache.get(key)
            if cached is None:
                layer = self._layers[position]
                cols = network.input_width if position == 0 else self._widths[position - 1]
                cached = ln_n_of_layer(self._widths[position], cols, self.law(layer, kept[layer]).ln_pmf,
                                       suffixes[position + 1], self.tail(layer, kept[layer]))
                self.cache.put(key, cached, cached.nbytes)
            suffixes[position] = cached
        return suffixes

    def single_changes(self, kept: Sequence[int], changes: Sequence[tuple[int, int]]) -> list[float] | None:
        """``ln E[B]`` (nats) of ``kept`` with weight layer ``layer`` alone set to ``value``, for each
        ``(layer, value)`` of ``changes``; ``None`` for a program (there: ``of_kept`` per change).

        One pass down the layers gives the adjoint rows ``R_p`` (``recursion.ln_adjoint_of_layer``: ``E[B] =
        R_p . N(p, .)`` at every position ``p``); a change at position ``p`` is then ``R_p . N~(p, .)`` with
        ``N~(p, .)`` one forward step from the unchanged ``N(p + 1, .)``: O(width) per change instead of O(depth).
        """
        network = self.problem.network
        if not network.is_chain:
            return None
        self.evaluations += 1
        suffixes = self._suffixes(kept)
        position_of = {layer: position for position, layer in enumerate(self._layers)}
        wanted = max((position_of.get(layer, -1) for layer, _ in changes), default=-1)
        rows = self._adjoint_rows(kept, wanted + 1)
        base = at_least_one_region(float(suffixes[0][network.input_width]), self.problem.rank_model)
        values = []
        inner: dict[int, np.ndarray] = {}  # ln h at a position depends on the deeper suffix only: once per position
        for layer, value in changes:
            position = position_of.get(layer)
            if position is None or value == kept[layer]:
                values.append(base)
                continue
            cols = network.input_width if position == 0 else self._widths[position - 1]
            ln_pmf = self.law(layer, value).ln_pmf
            if position not in inner:
                inner[position] = ln_h_of_layer(self._widths[position], ln_pmf.size - 1, suffixes[position + 1])
            changed = ln_expect_over_rank(ln_pmf, inner[position], self.tail(layer, value))
            changed = np.concatenate((changed, np.full(cols + 1 - changed.size, changed[-1])))
            values.append(at_least_one_region(ln_pairing(rows[position], changed), self.problem.rank_model))
        return values

    def _adjoint_rows(self, kept: Sequence[int], depth: int) -> list[np.ndarray]:
        """The adjoint rows ``R_p`` for positions ``p = 0..depth - 1`` (``single_changes``)."""
        network = self.problem.network
        row = np.full(network.input_width + 1, -np.inf)
        row[network.input_width] = 0.0
        rows = []
        for position in range(depth):
            rows.append(row)
            if position < depth - 1:
                layer = self._layers[position]
                cols = network.input_width if position == 0 else self._widths[position - 1]
                row = ln_adjoint_of_layer(self._widths[position], cols, self.law(layer, kept[layer]).ln_pmf, row,
                                          self.tail(layer, kept[layer]))
        return rows

    def pair_moves(self, kept: Sequence[int], step: int, layers: Sequence[int]
                   ) -> dict[tuple[int, int], float] | None:
        """``ln E[B]`` after moving ``step`` kept weights from layer ``d`` to layer ``r``, for every ordered pair of
        distinct ``layers`` whose counts stay within ``[0, weights]``, keyed ``(d, r)``; ``None`` for a program or a
        layer outside the bound (there: one ``of_kept`` per move).

        For positions ``p < q``: ``E = R_p . T~_p (T_{p+1} .. T_{q-1}) T~_q N(q + 1, .)``. For each deeper position
        ``q`` the two changed vectors ``T~_q N(q + 1, .)`` (``-step``, ``+step``) are carried up through the unchanged
        steps, and at every shallower layer of ``layers`` paired with ``R_p`` after its own change: O(depth) steps per
        ``q``, O(depth^2) for all pairs, instead of O(depth) per pair.
        """
        network = self.problem.network
        if not network.is_chain:
            return None
        position_of = {layer: position for position, layer in enumerate(self._layers)}
        if any(layer not in position_of for layer in layers):
            return None
        self.evaluations += 1
        weights = network.weights
        suffixes = self._suffixes(kept)
        ordered = sorted(set(layers), key=position_of.get)
        if len(ordered) < 2:
            return {}
        rows = self._adjoint_rows(kept, position_of[ordered[-1]] + 1)

        def forward(position: int, count: int, vector: np.ndarray) -> np.ndarray:
            layer = self._layers[position]
            cols = network.input_width if position == 0 else self._widths[position - 1]
            return ln_n_of_layer(self._widths[position], cols, self.law(layer, count).ln_pmf, vector,
                                 self.tail(layer, count))

        def value(position: int, vector: np.ndarray) -> float:
            return at_least_one_region(ln_pairing(rows[position], vector), self.problem.rank_model)

        moves: dict[tuple[int, int], float] = {}
        for index, deep in enumerate(ordered[1:], start=1):
            q = position_of[deep]
            lower = kept[deep] - step >= 0
            upper = kept[deep] + step <= weights[deep]
            donated = forward(q, kept[deep] - step, suffixes[q + 1]) if lower else None   # deep gives
            received = forward(q, kept[deep] + step, suffixes[q + 1]) if upper else None  # deep takes
            shallow = set(ordered[:index])
            lowest = position_of[ordered[0]]
            for p in range(q - 1, lowest - 1, -1):
                layer = self._layers[p]
                if layer in shallow:
                    if donated is not None and kept[layer] + step <= weights[layer]:
                        moves[(deep, layer)] = value(p, forward(p, kept[layer] + step, donated))
                    if received is not None and kept[layer] - step >= 0:
                        moves[(layer, deep)] = value(p, forward(p, kept[layer] - step, received))
                if p > lowest:
                    donated = None if donated is None else forward(p, kept[layer], donated)
                    received = None if received is None else forward(p, kept[layer], received)
        return moves

    def _of_kept_program(self, kept: Sequence[int]) -> float:
        """The program's ``ln E[B]``, ``ln N_s`` cached under the kept counts of the layers of steps ``s..`` (the
        same suffix reuse as the chain)."""
        network = self.problem.network
        program, domains = network.bound_program, network.domains
        keys = [tuple(kept[layer] for step in program[s:] for layer in step.layers()) for s in range(len(program))]
        start, ln_tail = len(program), None
        for s in range(1, len(program)):
            cached = self.cache.get(("program",) + keys[s])
            if cached is not None:
                start, ln_tail = s, cached
                break

        def remember(s: int, ln_n: np.ndarray) -> None:
            self.cache.put(("program",) + keys[s], ln_n, ln_n.nbytes)

        ln_n = ln_program_suffix(program, domains, lambda layer: self.law(layer, kept[layer]).ln_pmf, 0, start,
                                 ln_tail, remember)
        return at_least_one_region(float(ln_n[min(network.input_width, ln_n.size - 1)]), self.problem.rank_model)

    def of_units(self, units: Sequence[int]) -> float:
        """``ln E[B]`` of block values ``units``."""
        return self.of_kept(self.problem.kept_per_layer(units))

    def expected_rank(self, layer: int, kept: int) -> float:
        """``E[rank W_l]`` at ``kept`` weights: the ``k_l`` of the surrogate."""
        return self.law(layer, kept).mean()


def surrogate_value(objective: ExactObjective, kept: Sequence[int]) -> float:
    """The rank-capped product form at ``kept`` (module docstring), evaluated numerically; for a program, its
    step-by-step form (``allocator.formulation.program_surrogate``)."""
    network = objective.problem.network
    if not network.is_chain:
        from allocator.formulation.program_surrogate import program_surrogate_value

        return program_surrogate_value(network, lambda layer: objective.expected_rank(layer, kept[layer]))
    carried = float(network.input_width)
    cap = network.input_width
    total = 0.0
    for layer in network.bound_layers:
        width = network.widths[layer]
        cap = min(cap, width)
        carried = min(carried, objective.expected_rank(layer, kept[layer]), float(width))
        total += interpolate(*surrogate_piece(width, cap), carried)
    return total
