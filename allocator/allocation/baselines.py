"""Baseline allocations as a named registry; each maps a problem to a kept count per weight layer.

Baselines use the same budget ``K`` over the same prunable weights as ours (their counts are rounded
together so the total is exactly ``K``) and ignore the side constraints (they are the references users compare against). Rules that need trained weights (global
magnitude, LAMP) register from the torch side with ``register_baseline``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from allocator.formulation.problem import AllocationProblem
from allocator.registry import Registry
from allocator.counts import kept_from_targets


class BaselineUnavailable(Exception):
    """The rule cannot produce an allocation for this problem; the message says why."""


@dataclass(frozen=True)
class BaselineRule:
    name: str
    description: str
    kept: Callable[[AllocationProblem], tuple[int, ...]]


_REGISTRY: Registry[BaselineRule] = Registry("baseline")


def register_baseline(name: str, description: str) -> Callable:
    """Decorator: register ``function(problem) -> kept per weight layer`` under ``name``."""
    return _REGISTRY.decorator(name, lambda function: BaselineRule(name, description, function))


def baseline_names() -> tuple[str, ...]:
    """Registered baseline names, in registration order."""
    return _REGISTRY.names()


def get_baseline(name: str) -> BaselineRule:
    """The rule ``name``; raises ``InvalidInputError`` listing the registered names otherwise."""
    return _REGISTRY.get(name)


def _with_densities(problem: AllocationProblem, densities: dict[int, float]) -> tuple[int, ...]:
    """Kept counts for per-layer target densities, rounded together (largest remainder) so that the prunable
    total is exactly the budget, or everything when the densities cannot spend it."""
    network = problem.network
    layers = _prunable(problem)
    weights = [network.weights[i] for i in layers]
    targets = [min(1.0, densities[i]) * w for i, w in zip(layers, weights)]
    counts = dict(zip(layers, kept_from_targets(targets, weights, min(problem.budget.kept, round(sum(targets))))))
    return tuple(counts.get(i, w) for i, w in enumerate(network.weights))


def _prunable(problem: AllocationProblem) -> list[int]:
    return [i for i, p in enumerate(problem.network.prunable) if p]


@register_baseline("uniform", "every prunable layer at the budget's global density")
def uniform(problem: AllocationProblem) -> tuple[int, ...]:
    return _with_densities(problem, {i: problem.budget.density for i in _prunable(problem)})


@register_baseline(
    "uniform-gale", "uniform, with the first prunable layer dense and the last kept at >= 20 % (Gale et al. 2019)"
)
def uniform_gale(problem: AllocationProblem) -> tuple[int, ...]:
    layers = _prunable(problem)
    weights = problem.network.weights
    if len(layers) < 2:
        raise BaselineUnavailable("needs two or more prunable layers")
    first, last, middle = layers[0], layers[-1], layers[1:-1]
    budget = problem.budget.kept
    floor = weights[first] + 0.2 * weights[last]
    if budget < floor:
        raise BaselineUnavailable(
            f"budget {budget} kept is below the {floor:.0f} that a dense first layer and a 20 % last layer need"
        )
    middle_weights = sum(weights[i] for i in middle)
    if middle_weights == 0:
        last_density = min(1.0, (budget - weights[first]) / weights[last])
        density = 0.0
    else:
        density = (budget - floor) / middle_weights
        last_density = 0.2
        if density > 0.2:  # the last layer follows the others above 20 %
            density = (budget - weights[first]) / (middle_weights + weights[last])
            last_density = density
    densities = {i: min(1.0, density) for i in middle}
    densities[first] = 1.0
    densities[last] = last_density
    return _with_densities(problem, densities)


def _erdos_renyi(problem: AllocationProblem, *, kernel_aware: bool) -> tuple[int, ...]:
    """Density ``eps * s_l``, capped at 1 with the excess re-spread over the others (RigL's rule).

    ``s_l = (out + in) / (out * in)`` over the weight tensor's output and input channels (ER), or, kernel-aware,
    ``s_l = sum(shape) / prod(shape)`` over its whole shape ``(out, in, *kernel)`` (ERK); the two agree on linear
    layers. ``eps`` spends the budget: ``sum_l eps s_l w_l = K`` over the layers not already dense.
    """
    layers = _prunable(problem)
    specs = problem.network.layers
    weights = problem.network.weights
    scale = {}
    for i in layers:
        shape = specs[i].tensor_shape
        scale[i] = sum(shape) / math.prod(shape) if kernel_aware else (shape[0] + shape[1]) / (shape[0] * shape[1])
    dense: set[int] = set()
    for _ in range(len(layers) + 1):
        free = [i for i in layers if i not in dense]
        remaining = problem.budget.kept - sum(weights[i] for i in dense)
        if not free:
            break
        epsilon = remaining / sum(scale[i] * weights[i] for i in free)
        saturated = {i for i in free if epsilon * scale[i] > 1.0}
        if not saturated:
            break
        dense |= saturated
    densities = {i: 1.0 if i in dense else epsilon * scale[i] for i in layers}
    return _with_densities(problem, densities)


@register_baseline("er", "Erdos-Renyi (RigL): density proportional to (rows + cols) / (rows * cols)")
def er(problem: AllocationProblem) -> tuple[int, ...]:
    return _erdos_renyi(problem, kernel_aware=False)


@register_baseline(
    "erk", "Erdos-Renyi-Kernel (RigL): as ER with kernel sizes in the sums; equal to ER for linear layers"
)
def erk(problem: AllocationProblem) -> tuple[int, ...]:
    return _erdos_renyi(problem, kernel_aware=True)


@register_baseline(
    "igq", "IGQ, ideal gas quotas (Vysogorets et al. 2023): kept_l = N_l / (1 + F N_l), F set so the total is the budget"
)
def igq(problem: AllocationProblem) -> tuple[int, ...]:
    """``kept_l = N_l / (1 + F N_l)`` with ``N_l`` the layer's weights and ``F >= 0`` found by bisection so that
    ``sum_l kept_l = K``; as ``F`` grows every layer tends to ``1 / F`` kept (equal counts at extreme sparsity)."""
    layers = _prunable(problem)
    weights = problem.network.weights
    budget = problem.budget.kept

    def total(f: float) -> float:
        return sum(weights[i] / (1.0 + f * weights[i]) for i in layers)

    low, high = 0.0, 1.0
    while total(high) > budget:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2
        if total(middle) > budget:
            low = middle
        else:
            high = middle
    return _with_densities(problem, {i: 1.0 / (1.0 + high * weights[i]) for i in layers})


@register_baseline("balanced", "balanced (Gadhikar et al. 2023): K / L kept per prunable layer, capped at its size")
def balanced(problem: AllocationProblem) -> tuple[int, ...]:
    """``K / L`` kept weights in each of the ``L`` prunable layers; a layer smaller than its share is kept whole and
    the excess re-spread equally over the others."""
    layers = _prunable(problem)
    weights = problem.network.weights
    full: set[int] = set()
    while True:
        free = [i for i in layers if i not in full]
        share = (problem.budget.kept - sum(weights[i] for i in full)) / max(1, len(free))
        grown = {i for i in free if weights[i] <= share}
        if not grown or not free:
            break
        full |= grown
    return _with_densities(problem, {i: 1.0 if i in full else min(1.0, share / weights[i]) for i in layers})
