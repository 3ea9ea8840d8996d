"""AlphaPruning (Lu et al., NeurIPS 2024), in a log-density form: layers whose weight spectra are more heavy-tailed
(a smaller power-law exponent ``alpha``, "better trained" in heavy-tailed self-regularisation theory) keep more.

Per prunable tensor ``W`` (a conv kernel reshaped to ``out x (in k k)``), the empirical spectral density is the set
of eigenvalues ``lambda_i`` of ``W^T W`` (the squared singular values). Its tail is fitted with a power law
``p(lambda) ~ lambda^-alpha`` for ``lambda >= x_min`` by the Hill / maximum-likelihood estimate
``alpha = 1 + n / sum_{lambda_i >= x_min} ln(lambda_i / x_min)``, with ``x_min`` among the eigenvalues chosen to
minimise the Kolmogorov-Smirnov distance between the tail and the fit (Clauset, Shalizi and Newman 2009; what
WeightWatcher and AlphaPruning's code do), over tails of at least ``MIN_TAIL`` eigenvalues.

AlphaPruning maps ``alpha`` linearly onto layer sparsities ``[S - tau, S + tau]`` (``tau = 0.2`` at LLM sparsities
around 0.7). At the densities this project studies (0.01-0.0005) a band in sparsity is meaningless, so the map is
made in log density: ``ln d_l = c - spread * (a_l - 1/2)`` with ``a_l = (alpha_l - alpha_min) / (alpha_max -
alpha_min)``, so the most and the least heavy-tailed layers' densities differ by the factor ``e^spread`` (default
``ln 5``: AlphaPruning's band 0.1-0.5 in density at sparsity 0.7); ``c`` is found by bisection so that the kept
counts (densities clipped to 1, largest remainder) meet the budget exactly.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from allocator.counts import kept_from_targets
from allocator.errors import InvalidInputError
from allocator.pruning.tensors import tensor

#: The fewest eigenvalues a fitted tail may have.
MIN_TAIL = 5
#: The default log-density spread between the most and the least heavy-tailed layers (densities differ 5x).
DEFAULT_SPREAD = math.log(5.0)


def spectrum(weight: torch.Tensor) -> np.ndarray:
    """Eigenvalues of ``W^T W`` (squared singular values, ascending) of ``weight`` reshaped to ``rows x rest``."""
    matrix = weight.detach().double().reshape(weight.shape[0], -1)
    values = torch.linalg.svdvals(matrix).numpy() ** 2
    return np.sort(values)


def power_law_alpha(eigenvalues: np.ndarray) -> float:
    """The tail exponent ``alpha`` of the module docstring (Hill estimate at the KS-best ``x_min``).

    Example (a Pareto sample of exponent 3, so alpha is near 3):
        >>> rng = np.random.default_rng(0)
        >>> round(power_law_alpha((1 - rng.random(4000)) ** (-1 / 2.0)), 1)
        3.0
    """
    values = np.sort(np.asarray(eigenvalues, dtype=float))
    values = values[values > 1e-12 * max(values.max(initial=0.0), 1e-300)]
    if values.size < MIN_TAIL + 1:
        raise InvalidInputError(f"a spectrum of {values.size} positive eigenvalues is too short for a power-law fit; "
                                f"accepted: tensors with at least {MIN_TAIL + 1} singular values")
    best_alpha, best_distance = math.nan, math.inf
    for start in range(0, values.size - MIN_TAIL + 1):
        tail = values[start:]
        x_min = tail[0]
        logs = np.log(tail / x_min)
        if logs.sum() <= 0:
            continue
        alpha = 1.0 + tail.size / logs.sum()
        empirical = np.arange(tail.size) / tail.size  # CDF just below each point
        fitted = 1.0 - (tail / x_min) ** (1.0 - alpha)
        distance = float(np.max(np.abs(empirical - fitted)))
        if distance < best_distance:
            best_alpha, best_distance = float(alpha), distance
    if not math.isfinite(best_alpha):
        raise InvalidInputError("the spectrum has no spread (all eigenvalues equal): no power-law tail to fit")
    return best_alpha


def alpha_kept(model: nn.Module, names: Sequence[str], budget: int, spread: float = DEFAULT_SPREAD
               ) -> dict[str, int]:
    """Kept count per tensor of ``names`` under the log-density AlphaPruning map (module docstring), summing to
    ``min(budget, total weights)``."""
    if not (math.isfinite(spread) and spread >= 0):
        raise InvalidInputError(f"AlphaPruning spread {spread!r}: accepted a number of nats >= 0")
    weights = [tensor(model, name) for name in names]
    sizes = [int(w.numel()) for w in weights]
    alphas = np.array([power_law_alpha(spectrum(w)) for w in weights])
    span = alphas.max() - alphas.min()
    ranks = (alphas - alphas.min()) / span if span > 0 else np.full(len(alphas), 0.5)

    def kept_at(c: float) -> list[float]:  # min(1, e^x) as e^min(0, x): no overflow however large c grows
        return [math.exp(min(0.0, c - spread * (a - 0.5))) * n for a, n in zip(ranks, sizes)]

    goal = min(budget, sum(sizes))
    if goal == sum(sizes):
        return dict(zip(names, sizes))
    low, high = -800.0, 800.0
    for _ in range(200):
        middle = (low + high) / 2
        if sum(kept_at(middle)) > goal:
            high = middle
        else:
            low = middle
    return dict(zip(names, kept_from_targets(kept_at(low), sizes, goal)))
