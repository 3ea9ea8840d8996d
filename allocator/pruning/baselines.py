"""Allocation rules that read trained weights: one global threshold over the prunable tensors yields kept counts.

- ``global-magnitude``: the budget's ``K`` largest ``|w|`` over all prunable tensors survive.
- ``lamp`` (Lee et al. 2021): the ``K`` largest LAMP scores survive (``criteria.lamp_scores``).
- ``synflow`` (Tanaka et al. 2020): SynFlow's 100 data-free rounds (``allocator.pruning.synflow``); its final
  per-layer counts. Needs one example's shape (``input_shape``).
- ``rd`` (Xu et al. 2023): per-layer output-distortion curves on a calibration batch, the exact choice under the
  budget (``allocator.pruning.rd``). Needs the batch (``calibration``).
- ``alpha`` (Lu et al. 2024): AlphaPruning's heavy-tail exponents of the trained weights' spectra, mapped onto
  log densities (``allocator.pruning.alpha``).
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from allocator.allocation.baselines import BaselineRule
from allocator.errors import InvalidInputError
from allocator.pruning.criteria import global_kept, scores

#: rule name -> (criterion whose scores one global threshold cuts, description)
WEIGHT_RULES: dict[str, tuple[str, str]] = {
    "global-magnitude": ("magnitude", "one global |w| threshold over the prunable tensors"),
    "lamp": ("lamp", "one global LAMP-score threshold (Lee et al. 2021)"),
    "synflow": ("synflow", "SynFlow's counts after 100 data-free rounds on |weights| (Tanaka et al. 2020)"),
    "rd": ("rd", "rate-distortion: per-layer output distortion on a calibration batch, exact choice (Xu et al. 2023)"),
    "alpha": ("alpha", "AlphaPruning in log density: heavier-tailed weight spectra keep more (Lu et al. 2024)"),
}


def weight_rule_kept(rule: str, model: nn.Module, names: Sequence[str], budget: int,
                     input_shape: Sequence[int] | None = None, calibration=None) -> dict[str, int]:
    """Kept count per tensor of ``names`` when the ``budget`` best scores of ``rule``'s criterion survive (for
    ``synflow``: its final counts; it needs ``input_shape``; ``rd`` needs ``calibration``, a batch of inputs).

    Raises:
        InvalidInputError: an unknown rule, or ``synflow`` without an input shape.
    """
    if rule not in WEIGHT_RULES:
        raise InvalidInputError(f"weight-based rule {rule!r} is unknown; accepted: {', '.join(WEIGHT_RULES)}")
    if rule == "synflow":
        if input_shape is None:
            raise InvalidInputError("synflow needs one example's input shape")
        from allocator.pruning.synflow import synflow_kept

        return synflow_kept(model, names, budget, input_shape)
    if rule == "alpha":
        from allocator.pruning.alpha import alpha_kept

        return alpha_kept(model, names, budget)
    if rule == "rd":
        if calibration is None:
            raise InvalidInputError("rd needs a calibration batch of training inputs")
        from allocator.pruning.rd import rd_kept

        return rd_kept(model, names, budget, calibration)
    return global_kept(scores(WEIGHT_RULES[rule][0], model, list(names)), budget)


def weight_baselines(model: nn.Module, input_shape: Sequence[int] | None = None) -> dict[str, BaselineRule]:
    """``global-magnitude``, ``lamp`` (and ``synflow`` when ``input_shape`` is given) as allocation baselines of
    ``model``; pass the result as ``allocate(..., extra_baselines=weight_baselines(model))``."""

    def rule(name: str) -> Callable:
        def kept(problem) -> tuple[int, ...]:
            network = problem.network
            prunable = [n for n, p in zip(network.names, network.prunable) if p]
            counts = weight_rule_kept(name, model, prunable, problem.budget.kept, input_shape)
            return tuple(counts.get(n, w) for n, w in zip(network.names, network.weights))

        return kept

    return {name: BaselineRule(name, description, rule(name)) for name, (_, description) in WEIGHT_RULES.items()
            if (name != "synflow" or input_shape is not None) and name != "rd"}
