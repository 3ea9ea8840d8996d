"""Pruning criteria: a score per weight; the allocation (or one global threshold) decides how many survive.

- ``magnitude``: ``|w|``.
- ``random``: uniform scores from a generator seeded by ``(seed, tensor name)``, reproducible per tensor.
- ``gradient``: ``|w * dL/dw|`` on one minibatch (ShrinkBench's gradient rule, paper 2's baseline).
- ``lamp`` (Lee et al. 2021): with a layer's weights sorted by ``w^2`` ascending (ties by position),
  ``score(u) = w_u^2 / sum_{v >= u} w_v^2``, the sum over the weights at least as large in that layer.
  Within a layer it orders weights as magnitude does; across layers it is what one global threshold uses.
Criteria from other modules (Koopman KMP and KGP) register with ``register_criterion``.

Layer-wise pruning keeps each tensor's allocated count of top scores; ``global_kept`` turns one global
threshold over several tensors into kept counts, which is how global magnitude and LAMP *yield* allocations.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from allocator.errors import InvalidInputError
from allocator.registry import Registry
from allocator.pruning.tensors import tensor, trainable


@dataclass(frozen=True)
class ScoreContext:
    """What a criterion may need beyond the weights: a seed, one labelled minibatch, and ``extra`` for
    criteria with state of their own (``extra["koopman"]``: the decomposition KMP and KGP read)."""

    seed: int = 0
    inputs: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


Criterion = Callable[[nn.Module, Sequence[str], ScoreContext], dict[str, torch.Tensor]]
_CRITERIA: Registry[Criterion] = Registry("criterion")


def register_criterion(name: str) -> Callable[[Criterion], Criterion]:
    """Decorator: register ``function(model, names, context) -> {name: scores}`` under ``name``."""
    return _CRITERIA.decorator(name)


def criterion_names() -> tuple[str, ...]:
    """Registered criteria (Koopman ones appear once ``allocator.koopman`` is imported)."""
    return _CRITERIA.names()


def scores(criterion: str, model: nn.Module, names: Sequence[str], context: ScoreContext | None = None) -> dict[str, torch.Tensor]:
    """Scores of ``criterion`` for each named tensor (float64, detached, same shapes)."""
    return _CRITERIA.get(criterion)(model, names, context or ScoreContext())


@register_criterion("magnitude")
def magnitude_scores(model: nn.Module, names: Sequence[str], context: ScoreContext) -> dict[str, torch.Tensor]:
    return {name: tensor(model, name).detach().abs().double() for name in names}


@register_criterion("random")
def random_scores(model: nn.Module, names: Sequence[str], context: ScoreContext) -> dict[str, torch.Tensor]:
    out = {}
    for name in names:
        generator = torch.Generator().manual_seed(zlib.crc32(f"{context.seed}:{name}".encode()))
        out[name] = torch.rand(tensor(model, name).shape, generator=generator, dtype=torch.float64)
    return out


@register_criterion("gradient")
def gradient_scores(model: nn.Module, names: Sequence[str], context: ScoreContext) -> dict[str, torch.Tensor]:
    if context.inputs is None or context.targets is None:
        raise InvalidInputError("the gradient criterion needs one labelled minibatch (inputs and targets)")
    tensors = [tensor(model, name) for name in names]
    was_training = model.training
    model.eval()
    try:
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(context.inputs), context.targets)
        parameters = [trainable(model, name) for name in names]  # weight_orig where the tensor is pruned
        grads = torch.autograd.grad(loss, parameters)
    finally:
        model.train(was_training)
    return {name: (t.detach() * g).abs().double() for name, t, g in zip(names, tensors, grads)}


@register_criterion("lamp")
def lamp_scores(model: nn.Module, names: Sequence[str], context: ScoreContext) -> dict[str, torch.Tensor]:
    out = {}
    for name in names:
        squared = tensor(model, name).detach().double().flatten() ** 2
        order = torch.argsort(squared, stable=True)  # ascending; ties by position
        ordered = squared[order]
        tail = torch.flip(torch.cumsum(torch.flip(ordered, [0]), 0), [0])  # sum over v >= u
        lamp = torch.where(tail > 0, ordered / tail, torch.zeros_like(ordered))
        score = torch.empty_like(squared)
        score[order] = lamp
        out[name] = score.reshape(tensor(model, name).shape)
    return out


def global_kept(layer_scores: Mapping[str, torch.Tensor], budget: int) -> dict[str, int]:
    """Kept count per tensor when the ``budget`` highest scores over all tensors survive (one threshold).

    Ties are broken by tensor order, then position, through a stable sort.
    """
    names = list(layer_scores)
    total = sum(layer_scores[n].numel() for n in names)
    if not 0 <= budget <= total:
        raise InvalidInputError(f"global budget {budget} is outside [0, {total}]")
    flat = torch.cat([layer_scores[n].detach().flatten().double() for n in names])
    owner = torch.cat([torch.full((layer_scores[n].numel(),), i) for i, n in enumerate(names)])
    order = torch.argsort(flat, descending=True, stable=True)[:budget]
    counts = torch.bincount(owner[order], minlength=len(names))
    return {name: int(counts[i]) for i, name in enumerate(names)}
