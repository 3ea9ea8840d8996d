"""Allocation rules that read trained weights: one global threshold over the prunable tensors yields kept counts.

- ``global-magnitude``: the budget's ``K`` largest ``|w|`` over all prunable tensors survive.
- ``lamp`` (Lee et al. 2021): the ``K`` largest LAMP scores survive (``criteria.lamp_scores``).
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
}


def weight_rule_kept(rule: str, model: nn.Module, names: Sequence[str], budget: int) -> dict[str, int]:
    """Kept count per tensor of ``names`` when the ``budget`` best scores of ``rule``'s criterion survive.

    Raises:
        InvalidInputError: an unknown rule.
    """
    if rule not in WEIGHT_RULES:
        raise InvalidInputError(f"weight-based rule {rule!r} is unknown; accepted: {', '.join(WEIGHT_RULES)}")
    return global_kept(scores(WEIGHT_RULES[rule][0], model, list(names)), budget)


def weight_baselines(model: nn.Module) -> dict[str, BaselineRule]:
    """``global-magnitude`` and ``lamp`` as allocation baselines of a trained ``model``; pass the result as
    ``allocate(..., extra_baselines=weight_baselines(model))``."""

    def rule(name: str) -> Callable:
        def kept(problem) -> tuple[int, ...]:
            network = problem.network
            prunable = [n for n, p in zip(network.names, network.prunable) if p]
            counts = weight_rule_kept(name, model, prunable, problem.budget.kept)
            return tuple(counts.get(n, w) for n, w in zip(network.names, network.weights))

        return kept

    return {name: BaselineRule(name, description, rule(name)) for name, (_, description) in WEIGHT_RULES.items()}
