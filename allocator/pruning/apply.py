"""Applying an allocation (file or record) to a torch model with a pruning criterion."""

from __future__ import annotations

from torch import nn

from allocator.allocation.record import Allocation
from allocator.errors import InvalidInputError
from allocator.pruning.criteria import ScoreContext, scores
from allocator.pruning.tensors import tensor
from allocator.pruning.masks import prune_to_counts


def allocation_counts(allocation: Allocation, model: nn.Module) -> dict[str, int]:
    """Kept count per prunable tensor, after checking that every layer of the allocation exists in ``model``
    with the same shape.

    Raises:
        InvalidInputError: naming each tensor that is missing or has another shape.
    """
    problems = []
    for layer in allocation.layers:
        try:
            shape = tuple(tensor(model, layer.name).shape)
        except InvalidInputError:
            problems.append(f"{layer.name} is not in the model")
            continue
        if shape != (layer.rows, layer.cols):
            problems.append(f"{layer.name} has shape {shape} in the model, {(layer.rows, layer.cols)} in the allocation")
    if problems:
        raise InvalidInputError("the allocation does not fit the model: " + "; ".join(problems))
    return {layer.name: layer.kept for layer in allocation.layers if layer.prunable}


def apply_allocation(model: nn.Module, allocation: Allocation, criterion: str = "magnitude",
                     context: ScoreContext | None = None) -> dict[str, int]:
    """Prune ``model`` in place to the allocation's kept counts, ranking weights by ``criterion``.

    All or nothing: a mismatch is refused before anything changes, and a failure while masking restores the
    model (``apply_masks``). Returns the kept counts applied.
    """
    counts = allocation_counts(allocation, model)
    prune_to_counts(model, scores(criterion, model, list(counts), context), counts)
    return counts
