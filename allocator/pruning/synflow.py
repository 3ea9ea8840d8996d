"""SynFlow's allocation (Tanaka et al., NeurIPS 2020, "Pruning neural networks without any data by iteratively
conserving synaptic flow"), as per-layer kept counts only.

Data-free and iterative: with every parameter replaced by its absolute value (biases included, in float64,
BatchNorm in evaluation mode) and an all-ones input, ``R = 1^T f(1)`` is the synaptic flow (for an MLP
``1^T (prod_l |W_l|) 1``). Each of ``rounds`` rounds scores every kept prunable weight by ``|theta * dR/dtheta|``
(pruned weights score 0) and keeps the ``ceil(total * d^(k / rounds))`` best over all prunable tensors together
(one global threshold; ``d`` the target density, so the schedule is exponential), the last round exactly the
budget. The per-layer counts of the final mask are the allocation; the study prunes with its own criterion
afterwards. The result depends on the weights given (the paper: the initial draw; record its seed).
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn

from allocator.errors import InvalidInputError

DEFAULT_ROUNDS = 100


def synflow_kept(model: nn.Module, names: Sequence[str], budget: int, input_shape: Sequence[int],
                 rounds: int = DEFAULT_ROUNDS) -> dict[str, int]:
    """Kept count per tensor of ``names`` (weight tensors by their parameter names) after SynFlow's ``rounds``
    rounds to ``budget`` kept weights over them; ``input_shape`` is one example's shape.

    Raises:
        InvalidInputError: a name that is not a parameter, a budget outside ``[0, total]``, ``rounds < 1``.
    """
    work = copy.deepcopy(model).double().eval()
    parameters = dict(work.named_parameters())
    missing = [n for n in names if n not in parameters]
    if missing:
        raise InvalidInputError(f"synflow: {missing[0]!r} is not a parameter of {type(model).__name__}")
    total = sum(parameters[n].numel() for n in names)
    if not 0 <= budget <= total:
        raise InvalidInputError(f"synflow: budget {budget} is outside [0, {total}] (the prunable weights)")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise InvalidInputError(f"synflow: rounds is {rounds!r}; expected an integer >= 1")
    with torch.no_grad():
        for parameter in work.parameters():
            parameter.abs_()
    dense = {n: parameters[n].detach().clone() for n in names}
    masks = {n: torch.ones_like(parameters[n], dtype=torch.bool) for n in names}
    ones = torch.ones((1, *input_shape), dtype=torch.float64)
    for k in range(1, rounds + 1):
        with torch.no_grad():
            for n in names:
                parameters[n].copy_(dense[n] * masks[n])
        work.zero_grad()
        work(ones).sum().backward()
        flat = torch.cat([(parameters[n].grad * parameters[n]).abs().where(masks[n], torch.zeros(())).flatten()
                          for n in names])
        keep = budget if k == rounds else min(total, math.ceil(total * (budget / total) ** (k / rounds)))
        chosen = torch.zeros(total, dtype=torch.bool)
        if keep:
            # ties broken by the lower flat index (stable), as masks elsewhere in the package
            order = torch.argsort(-flat, stable=True)[:keep]
            chosen[order] = True
        start = 0
        for n in names:
            size = parameters[n].numel()
            masks[n] = chosen[start:start + size].view_as(masks[n])
            start += size
    return {n: int(masks[n].sum()) for n in names}
