"""The MIP's surrogate for a *program* (convs, pools, residual blocks): the chain's rank-capped product form, step
by step.

With ``m`` the carried dimension entering a step (``n0`` at the start), ``k_l`` a layer's expected rank
(``E[min(rank, D_s)]``) at its kept count, ``F_n(t) = ln S_n(t)`` and ``G(t) = min(ln S_M(t), u ln(w + 1))``:

    Relu(n):              c = min(m, k, n),        term F_n(c),                   m' = c
    ReluMaxPool(u, w):    c = min(m, k),           term G(c),                     m' = min(c, u)
    Cap(u):                                                                       m' = min(m, u)
    Residual(n_h, n_y):   c1 = min(m, k1),         term F_{n_h}(c1)
                          c2 = min(m, n_y, k1 + r, k2 + r),   term F_{n_y}(c2),   m' = c2

(``r`` the skip's rank: fixed, or the 1x1 shortcut's expected rank; ``min(k1, k2) + r`` is written as two caps).
Each term is concave on the integers, so its chords through ``objective.breakpoints`` give the piecewise-linear
interpolation used both by ``program_surrogate_value`` and by the MIP (``add_program_surrogate``): the MIP's
optimum equals the value at the levels it chose (tests hold the two equal). The sum of the terms is the chain
surrogate's analogue; the exact ``ln E[B]`` of ``allocator.bound.program`` decides in the polish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from allocator.bound.program import ln_partial_binomial_sums
from allocator.formulation.objective import breakpoints, interpolate
from allocator.network import Cap, Network, Relu, ReluMaxPool


@dataclass(frozen=True)
class _Piece:
    points: np.ndarray
    values: np.ndarray


def _binomial_piece(width: int, cap: int) -> _Piece:
    points = breakpoints(cap)
    return _Piece(points, ln_partial_binomial_sums(width, cap)[points])


def _pool_piece(windows: int, window_size: int, cap: int) -> _Piece:
    points = breakpoints(cap)
    ln_s = ln_partial_binomial_sums(windows * math.comb(window_size + 1, 2), cap)
    return _Piece(points, np.minimum(ln_s[points], windows * math.log(window_size + 1)))


def _pieces(network: Network) -> list[tuple[_Piece, ...]]:
    """The terms' breakpoints and values, per step (empty for a cap)."""
    plans: list[tuple[_Piece, ...]] = []
    for step, domain in zip(network.bound_program, network.domains):
        if isinstance(step, Relu):
            plans.append((_binomial_piece(step.width, min(domain, step.width)),))
        elif isinstance(step, ReluMaxPool):
            plans.append((_pool_piece(step.windows, step.window_size, min(domain, step.width)),))
        elif isinstance(step, Cap):
            plans.append(())
        else:
            plans.append((_binomial_piece(step.first_width, min(domain, step.first_width)),
                          _binomial_piece(step.width, min(domain, step.width))))
    return plans


def program_surrogate_value(network: Network, expected_rank: Callable[[int], float]) -> float:
    """The surrogate (module docstring) with ``expected_rank(layer)`` at the allocation being evaluated."""
    carried = float(network.input_width)
    total = 0.0
    for step, pieces in zip(network.bound_program, _pieces(network)):
        if isinstance(step, Relu):
            carried = min(carried, expected_rank(step.layer), float(step.width))
            total += interpolate(pieces[0].points, pieces[0].values, carried)
        elif isinstance(step, ReluMaxPool):
            c = min(carried, expected_rank(step.layer), float(step.width))
            total += interpolate(pieces[0].points, pieces[0].values, c)
            carried = min(c, float(step.windows))
        elif isinstance(step, Cap):
            carried = min(carried, float(step.outputs))
        else:
            k1, k2 = expected_rank(step.first), expected_rank(step.second)
            skip = float(step.shortcut_rank) if step.shortcut_rank is not None else expected_rank(step.shortcut_layer)
            c1 = min(carried, k1, float(step.first_width))
            total += interpolate(pieces[0].points, pieces[0].values, c1)
            carried = min(carried, float(step.width), k1 + skip, k2 + skip)
            total += interpolate(pieces[1].points, pieces[1].values, carried)
    return total


def add_program_surrogate(model, network: Network, rank_of: Callable[[int], object]) -> tuple[object, int]:
    """Variables and constraints of the surrogate on pyomo ``model`` with ``rank_of(layer)`` the expected rank as a
    linear expression (or a number); returns ``(objective expression, chords added)``."""
    import pyomo.environ as pyo

    program, domains = network.bound_program, network.domains
    plans = _pieces(network)
    terms = [(s, t) for s, pieces in enumerate(plans) for t in range(len(pieces))]
    model.c = pyo.Var(terms, domain=pyo.NonNegativeReals,
                      bounds=lambda m, s, t: (0, float(plans[s][t].points[-1])))
    model.z = pyo.Var(terms, domain=pyo.Reals)
    model.m = pyo.Var(range(len(program)), domain=pyo.NonNegativeReals,
                      bounds=lambda m, s: (0, float(domains[s + 1])))
    model.caps = pyo.ConstraintList()
    model.chords = pyo.ConstraintList()
    chords = 0
    for s, step in enumerate(program):
        previous = float(network.input_width) if s == 0 else model.m[s - 1]
        if isinstance(step, Relu):
            model.caps.add(model.c[s, 0] <= previous)
            model.caps.add(model.c[s, 0] <= rank_of(step.layer))
            model.caps.add(model.m[s] <= model.c[s, 0])
        elif isinstance(step, ReluMaxPool):
            model.caps.add(model.c[s, 0] <= previous)
            model.caps.add(model.c[s, 0] <= rank_of(step.layer))
            model.caps.add(model.m[s] <= model.c[s, 0])  # and m <= windows, by its bounds
        elif isinstance(step, Cap):
            model.caps.add(model.m[s] <= previous)
        else:
            skip = step.shortcut_rank if step.shortcut_rank is not None else rank_of(step.shortcut_layer)
            model.caps.add(model.c[s, 0] <= previous)
            model.caps.add(model.c[s, 0] <= rank_of(step.first))
            model.caps.add(model.c[s, 1] <= previous)
            model.caps.add(model.c[s, 1] <= rank_of(step.first) + skip)
            model.caps.add(model.c[s, 1] <= rank_of(step.second) + skip)
            model.caps.add(model.m[s] <= model.c[s, 1])
        for t, piece in enumerate(plans[s]):
            points, values = piece.points, piece.values
            if points.size == 1:
                model.chords.add(model.z[s, t] <= float(values[0]))
                chords += 1
            for a in range(points.size - 1):
                slope = float((values[a + 1] - values[a]) / (points[a + 1] - points[a]))
                model.chords.add(model.z[s, t] <= float(values[a]) + slope * (model.c[s, t] - int(points[a])))
                chords += 1
    return sum(model.z[term] for term in terms), chords
