"""The rate-distortion (RD) allocation (Xu et al., ICCV 2023, "Efficient joint optimization of layer-adaptive
weight pruning in deep neural networks", RD_PRUNE), as per-layer kept counts.

For each prunable layer ``l`` alone and each menu level ``k`` (kept counts, log-spaced from 1 to the layer's weights,
plus the budget's uniform share; their linear 1 % grid is too coarse below density 0.01) prune ``l`` to its ``k``
largest ``|w|`` and record the output distortion ``D_l(k) = mean_x ||f(x) - f_{l,k}(x)||^2`` (logits) on a
calibration batch. Assuming the distortions add up, choose one level per layer minimising ``sum_l D_l(k_l)``
subject to ``sum_l k_l <= K``: a linear MIP over the menu (one binary per (layer, level); HiGHS), exact over the
menu like their dynamic programme. The weights the menu leaves unspent go to the layers in proportion to their
chosen counts (``counts.kept_from_targets``), so the total is exactly ``K``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from allocator.counts import kept_from_density, kept_from_targets
from allocator.errors import InvalidInputError, SolverError

DEFAULT_LEVELS = 40
CALIBRATION_SIZE = 1024


def distortion_curves(model: nn.Module, names: Sequence[str], inputs: torch.Tensor,
                      menus: Sequence[Sequence[int]]) -> list[list[float]]:
    """``D_l(k)`` for every layer of ``names`` and every kept count ``k`` of its menu (module docstring)."""
    parameters = dict(model.named_parameters())
    was_training = model.training
    model.eval()
    curves = []
    try:
        with torch.no_grad():
            reference = model(inputs)
            for name, menu in zip(names, menus):
                weight = parameters[name]
                original = weight.detach().clone()
                order = torch.argsort(original.abs().flatten().double(), descending=True, stable=True)
                curve = []
                for kept in menu:
                    mask = torch.zeros(original.numel(), dtype=torch.bool)
                    mask[order[:kept]] = True
                    weight.copy_(original * mask.view_as(original))
                    curve.append(float(((model(inputs) - reference) ** 2).sum(dim=1).mean()))
                weight.copy_(original)
                curves.append(curve)
    finally:
        model.train(was_training)
    return curves


def rd_kept(model: nn.Module, names: Sequence[str], budget: int, inputs: torch.Tensor,
            levels: int = DEFAULT_LEVELS) -> dict[str, int]:
    """Kept count per tensor of ``names`` summing to ``budget`` (module docstring); ``inputs`` is the calibration
    batch.

    Raises:
        InvalidInputError: an unknown tensor, or a budget below one weight per layer or above their total.
        SolverError: HiGHS failed.
    """
    parameters = dict(model.named_parameters())
    missing = [n for n in names if n not in parameters]
    if missing:
        raise InvalidInputError(f"rd: {missing[0]!r} is not a parameter of {type(model).__name__}")
    weights = [parameters[n].numel() for n in names]
    if not len(names) <= budget <= sum(weights):
        raise InvalidInputError(f"rd: budget {budget} is outside [{len(names)}, {sum(weights)}] (one weight per layer "
                                f"at least, all of them at most)")
    density = budget / sum(weights)
    menus = []
    for w in weights:
        values = {1, w, max(1, min(w, kept_from_density(density, w)))}
        values.update(int(round(v)) for v in np.geomspace(1, w, num=levels))
        menus.append(sorted(values))
    curves = distortion_curves(model, names, inputs, menus)
    chosen = _choose(menus, curves, budget)
    counts = kept_from_targets([k * budget / sum(chosen) for k in chosen], weights, budget, lower=chosen)
    return dict(zip(names, counts))


def _choose(menus: Sequence[Sequence[int]], curves: Sequence[Sequence[float]], budget: int) -> list[int]:
    import pyomo.environ as pyo

    from allocator.solver.highs import SolverOptions, Termination, solve

    pairs = [(l, v) for l, menu in enumerate(menus) for v in range(len(menu))]
    model = pyo.ConcreteModel(name="rd-allocation")
    model.x = pyo.Var(pairs, domain=pyo.Binary)
    model.one = pyo.Constraint(range(len(menus)), rule=lambda m, l: sum(m.x[l, v] for v in range(len(menus[l]))) == 1)
    model.budget = pyo.Constraint(expr=sum(menus[l][v] * model.x[l, v] for l, v in pairs) <= budget)
    model.objective = pyo.Objective(expr=sum(curves[l][v] * model.x[l, v] for l, v in pairs), sense=pyo.minimize)
    report = solve(model, SolverOptions(time_limit_s=60))
    if report.status not in (Termination.OPTIMAL, Termination.TIME_LIMIT) or report.objective != report.objective:
        raise SolverError(f"rd: HiGHS ended {report.status} on the allocation MIP")
    return [next(menus[l][v] for v in range(len(menus[l])) if pyo.value(model.x[l, v]) > 0.5)
            for l in range(len(menus))]


def measure_distortion(model: nn.Module, names: Sequence[str], inputs: torch.Tensor, levels: int = DEFAULT_LEVELS,
                       extra: Sequence[float] = (), seed: int = 0, source: str = ""):
    """The ``DistortionCurves`` of ``model`` (``allocator.formulation.distortion``): per tensor of ``names``,
    ``levels`` log-spaced kept counts from 1 to all its weights, plus each density of ``extra`` (e.g. the budgets'
    uniform shares), measured on ``inputs``."""
    from allocator.formulation.distortion import DistortionCurves

    parameters = dict(model.named_parameters())
    missing = [n for n in names if n not in parameters]
    if missing:
        raise InvalidInputError(f"distortion: {missing[0]!r} is not a parameter of {type(model).__name__}")
    menus = []
    for name in names:
        weights = parameters[name].numel()
        values = {1, weights} | {int(round(v)) for v in np.geomspace(1, weights, num=levels)}
        values |= {max(1, min(weights, kept_from_density(float(d), weights))) for d in extra}
        menus.append(sorted(values))
    curves = distortion_curves(model, names, inputs, menus)
    return DistortionCurves({n: (tuple(m), tuple(c)) for n, m, c in zip(names, menus, curves)}, int(inputs.shape[0]),
                            seed, source)
