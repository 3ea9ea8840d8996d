"""Masks with exact kept counts, applied through ``torch.nn.utils.prune``, all or nothing.

``mask_from_scores`` keeps the ``kept`` highest scores of a tensor; ties are broken by position (lower
flat index first) through a stable sort, so the mask is deterministic. ``apply_masks`` validates every
name, shape and count before touching the model, applies ``prune.custom_from_mask`` to each tensor, checks
the realised counts, and on any error restores every tensor it had changed. ``make_permanent`` removes
the reparametrisation (``weight_orig`` and ``weight_mask``) leaving plain zeroed weights.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from allocator.errors import InvalidInputError
from allocator.pruning.tensors import resolve


class MaskCountError(InvalidInputError):
    """Realised kept counts differ from the allocation; the message lists every layer that differs."""


def mask_from_scores(scores: torch.Tensor, kept: int) -> torch.Tensor:
    """Boolean mask of ``scores``' shape keeping exactly ``kept`` entries: the largest, ties by position."""
    total = scores.numel()
    if not 0 <= kept <= total:
        raise InvalidInputError(f"kept {kept} is outside [0, {total}] for a tensor of shape {tuple(scores.shape)}")
    order = torch.argsort(scores.detach().flatten().double(), descending=True, stable=True)
    mask = torch.zeros(total, dtype=torch.bool)
    mask[order[:kept]] = True
    return mask.reshape(scores.shape)


def is_pruned(module: nn.Module, tensor_name: str) -> bool:
    """Whether ``module`` carries a pruning reparametrisation of ``tensor_name``."""
    return hasattr(module, f"{tensor_name}_mask") and f"{tensor_name}_orig" in module._parameters


def _undo(module: nn.Module, tensor_name: str) -> None:
    """Remove a reparametrisation *without* applying the mask: the original tensor comes back."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, prune.BasePruningMethod) and hook._tensor_name == tensor_name:
            del module._forward_pre_hooks[key]
    original = module._parameters.pop(f"{tensor_name}_orig")
    del module._buffers[f"{tensor_name}_mask"]
    if hasattr(module, tensor_name):
        delattr(module, tensor_name)
    module.register_parameter(tensor_name, original)


def realised_counts(model: nn.Module, names: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Non-zero count of each named tensor as the forward pass sees it (mask applied)."""
    counts = {}
    for name in names:
        module, tensor_name = resolve(model, name)
        counts[name] = int(torch.count_nonzero(getattr(module, tensor_name)).item())
    return counts


def verify_counts(model: nn.Module, expected: Mapping[str, int]) -> None:
    """Raise ``MaskCountError`` with a per-layer diff when a tensor's mask keeps another count.

    Counts the mask (not the weights, which may be zero by chance).
    """
    problems = []
    for name, kept in expected.items():
        module, tensor_name = resolve(model, name)
        mask = getattr(module, f"{tensor_name}_mask", None)
        realised = int(mask.sum().item()) if mask is not None else getattr(module, tensor_name).numel()
        if realised != kept:
            problems.append(f"{name}: allocated {kept}, realised {realised} ({realised - kept:+d})")
    if problems:
        raise MaskCountError("kept counts differ from the allocation: " + "; ".join(problems))


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Apply boolean masks keyed by tensor name (``fc1.weight``) with ``prune.custom_from_mask``.

    All or nothing: names, shapes and prior pruning are checked first; if anything fails while applying,
    every tensor already changed is restored and the error is raised.

    Raises:
        InvalidInputError: an unknown name, a shape mismatch, or a tensor that is already pruned.
    """
    resolved = {}
    for name, mask in masks.items():
        module, tensor_name = resolve(model, name)
        if is_pruned(module, tensor_name):
            raise InvalidInputError(f"{name} is already pruned; make it permanent or start from the dense model")
        tensor = getattr(module, tensor_name, None)
        if not isinstance(tensor, torch.Tensor):
            raise InvalidInputError(f"the model has no tensor {name!r}")
        if tuple(mask.shape) != tuple(tensor.shape):
            raise InvalidInputError(f"mask for {name} has shape {tuple(mask.shape)}, the tensor {tuple(tensor.shape)}")
        resolved[name] = (module, tensor_name, mask)
    done: list[tuple[nn.Module, str]] = []
    try:
        for name, (module, tensor_name, mask) in resolved.items():
            prune.custom_from_mask(module, tensor_name, mask.to(dtype=torch.bool, device=getattr(module, tensor_name).device))
            done.append((module, tensor_name))
        verify_counts(model, {name: int(mask.sum().item()) for name, (_, _, mask) in resolved.items()})
    except BaseException:
        for module, tensor_name in reversed(done):
            _undo(module, tensor_name)
        raise


def prune_to_counts(model: nn.Module, scores: Mapping[str, torch.Tensor], kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """Masks keeping ``kept[name]`` top-scored weights of every named tensor, applied and verified."""
    missing = sorted(set(kept) - set(scores))
    if missing:
        raise InvalidInputError(f"no scores for {', '.join(missing)}")
    masks = {name: mask_from_scores(scores[name], count) for name, count in kept.items()}
    apply_masks(model, masks)
    verify_counts(model, kept)
    return masks


def make_permanent(model: nn.Module) -> list[str]:
    """``prune.remove`` on every pruned tensor; returns their names."""
    removed = []
    for module_name, module in model.named_modules():
        for tensor_name in [k[: -len("_orig")] for k in list(module._parameters) if k.endswith("_orig")]:
            if is_pruned(module, tensor_name):
                prune.remove(module, tensor_name)
                removed.append(f"{module_name}.{tensor_name}" if module_name else tensor_name)
    return removed
