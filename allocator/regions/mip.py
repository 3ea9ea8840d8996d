"""Counting linear regions on a slice with a MIP (HiGHS through pyomo): the cross-check of the geometric count.

Variables: the slice point ``p = (a, b)`` inside the valid polygon; per hidden neuron its pre-activation
``g``, its output ``h = ReLU(g)`` and a binary ``z`` (1: active); a margin ``f``. With interval bounds
``L <= g <= U`` over the polygon (exact for layer 1, propagated by interval arithmetic after):

    h >= g,   h >= 0,   h <= g - L (1 - z),   h <= U z                    (ReLU, big-M)
    g >= f - (1 - z)(f_max - L),   g <= -f + z (U + f_max)                (margin f on every neuron)
    maximise f

A pattern with optimum ``f > margin_tolerance`` has a full-dimensional region (every neuron strictly on its
side in an open set). It is counted and cut off by a no-good cut on ``z``; HiGHS through pyomo has no lazy
callbacks, so the model is re-solved until the best margin is not positive. Neurons that cannot change sign
on the slice (``L >= 0`` or ``U <= 0``, a zero row, ...) are fixed and carry no margin. Small networks only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from allocator.solver.highs import SolverOptions, Termination, solve
from allocator.errors import InvalidInputError, SolverError
from allocator.regions.geometry import Slice

F_MAX = 1.0


def interval_bounds(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], region: Slice):
    """Per layer, bounds ``(L, U)`` of the pre-activations over the slice polygon."""
    vertices = region.origin[None, :] + region.polygon @ region.basis.T  # polygon corners in input space
    first = vertices @ np.asarray(weights[0], dtype=np.float64).T + biases[0]
    bounds = [(first.min(axis=0), first.max(axis=0))]
    for w, b in zip(weights[1:], biases[1:]):
        low, high = np.maximum(bounds[-1][0], 0), np.maximum(bounds[-1][1], 0)
        w = np.asarray(w, dtype=np.float64)
        positive, negative = np.maximum(w, 0), np.minimum(w, 0)
        bounds.append((positive @ low + negative @ high + b, positive @ high + negative @ low + b))
    return bounds


def count_regions_mip(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    region: Slice,
    *,
    margin_tolerance: float = 1e-7,
    max_regions: int = 5000,
    options: SolverOptions | None = None,
) -> tuple[int, list[tuple[tuple[bool, ...], ...]]]:
    """Number of full-dimensional activation patterns on the slice, and the patterns found.

    Raises:
        InvalidInputError: more than ``max_regions`` regions (this method is for small networks).
        SolverError: HiGHS failed.
    """
    import pyomo.environ as pyo

    # Presolve on: these models have only short rows (the stall that keeps it off for the allocation MIP is
    # one long dense budget row), and HiGHS 1.16 without presolve ends some of them with "error".
    options = options or SolverOptions(time_limit_s=60.0, presolve="on")
    bounds = interval_bounds(weights, biases, region)
    model = pyo.ConcreteModel()
    model.p = pyo.Var(range(2), domain=pyo.Reals)
    model.f = pyo.Var(bounds=(0.0, F_MAX))
    model.cons = pyo.ConstraintList()
    polygon = region.polygon
    for i in range(len(polygon)):  # counter-clockwise: the inside is left of every edge
        start, edge = polygon[i], polygon[(i + 1) % len(polygon)] - polygon[i]
        model.cons.add(edge[0] * (model.p[1] - start[1]) - edge[1] * (model.p[0] - start[0]) >= 0)
    previous = None  # expressions of the previous layer's outputs
    z_vars = []
    fixed: list[list[bool | None]] = []
    for layer, (w, b) in enumerate(zip(weights, biases)):
        w = np.asarray(w, dtype=np.float64)
        low, high = bounds[layer]
        h = pyo.Var(range(len(b)), domain=pyo.NonNegativeReals)
        z = pyo.Var(range(len(b)), domain=pyo.Binary)
        model.add_component(f"h{layer}", h)
        model.add_component(f"z{layer}", z)
        layer_fixed: list[bool | None] = []
        outputs = []
        for j in range(len(b)):
            if layer == 0:
                direction = w[j] @ region.basis
                g = float(w[j] @ region.origin + b[j]) + direction[0] * model.p[0] + direction[1] * model.p[1]
                constant = not np.any(direction)
            else:
                g = float(b[j]) + sum(float(w[j, k]) * previous[k] for k in np.nonzero(w[j])[0])
                constant = not np.any(w[j])
            if constant or low[j] >= 0 or high[j] <= 0:
                active = bool(low[j] > 0) if not constant else bool(b[j] + (w[j] @ region.origin if layer == 0 else 0) > 0)
                layer_fixed.append(active)
                z[j].fix(int(active))
                model.cons.add(h[j] == (g if active else 0.0))
                outputs.append(h[j])
                continue
            layer_fixed.append(None)
            model.cons.add(h[j] >= g)
            model.cons.add(h[j] <= g - float(low[j]) * (1 - z[j]))
            model.cons.add(h[j] <= float(high[j]) * z[j])
            model.cons.add(g >= model.f - (1 - z[j]) * (F_MAX - float(low[j])))
            model.cons.add(g <= -model.f + z[j] * (float(high[j]) + F_MAX))
            outputs.append(h[j])
        previous = outputs
        z_vars.append(z)
        fixed.append(layer_fixed)
    model.objective = pyo.Objective(expr=model.f, sense=pyo.maximize)
    model.cuts = pyo.ConstraintList()
    free = [(layer, j) for layer, row in enumerate(fixed) for j, value in enumerate(row) if value is None]
    patterns = []
    while True:
        report = solve(model, options)
        if report.status != Termination.OPTIMAL:
            if report.status == Termination.INFEASIBLE:
                break
            raise SolverError(f"HiGHS ended with {report.status} while enumerating regions")
        if report.objective <= margin_tolerance:
            break
        pattern = tuple(
            tuple(bool(round(z_vars[layer][j].value)) if fixed[layer][j] is None else bool(fixed[layer][j])
                  for j in range(len(fixed[layer])))
            for layer in range(len(fixed))
        )
        patterns.append(pattern)
        if len(patterns) > max_regions:
            raise InvalidInputError(f"more than {max_regions} regions: use the geometric count for networks this size")
        if not free:
            break
        model.cuts.add(sum((1 - z_vars[l][j]) if pattern[l][j] else z_vars[l][j] for l, j in free) >= 1)
    return len(patterns), patterns
