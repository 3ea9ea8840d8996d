"""Fine-tuning that computes with the kept weights only, for very sparse linear layers.

A masked dense layer at density 0.001 spends 99.9 % of its arithmetic multiplying zeros. ``SparseLinear``
holds the kept weights as a vector ``values`` with their ``rows`` and ``cols`` and computes
``out[:, rows[i]] += x[:, cols[i]] * values[i]`` (a gather and an ``index_add``, done feature-major, i.e. on
``x^T``, so that each kept weight moves one contiguous row of ``batch`` numbers); autograd gives the
gradient of each kept weight, which is exactly the masked layer's gradient at that position, and SGD with
momentum on ``values`` is SGD with momentum on the kept entries (masked entries have zero gradient and zero
momentum there). So ``finetune`` equals ``train`` on the masked model up to floating-point summation order,
and the tests hold the two equal to 1e-5.

``finetune`` builds a twin of the pruned model with every masked Linear at density <= ``max_density`` made a
``SparseLinear`` and every other pruned tensor (a denser Linear, a convolution) masked in the twin with the same
mask, trains the twin, and writes the weights back into the pruned model's ``weight_orig`` at the kept positions
(and every other parameter and buffer by name), leaving its masks untouched. (Until 2026-12-01 the other pruned
tensors trained unmasked in the twin and were masked again only after: every cell fine-tuned through the one-cell
engine with one Linear at density <= 0.01 and another pruned tensor above it was wrong; see experiments/README.)
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import prune

from allocator.pruning.masks import is_pruned
from allocator.pruning.tensors import replace_module
from allocator.pruning.finetune.training import Progress, Tensors, TrainConfig, TrainResult, train

# Measured (one thread, batch 128, forward + backward of one layer): the sparse layer beats the masked dense one
# below density ~0.015 (784x400: 0.48 vs 3.8 ms at 0.002, 1.85 vs 3.4 ms at 0.01, 5.5 vs 3.3 ms at 0.03).
DEFAULT_MAX_DENSITY = 0.01


class SparseLinear(nn.Module):
    """A linear layer that stores and multiplies only its kept weights."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor) -> None:
        super().__init__()
        rows, cols = mask.nonzero(as_tuple=True)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)
        self.values = nn.Parameter(weight.detach()[rows, cols].clone())
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        self.out_features, self.in_features = weight.shape

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features = inputs.t().contiguous()  # (in, batch): each gathered input is one contiguous row
        out = features.new_zeros(self.out_features, inputs.shape[0])
        out = out.index_add(0, self.rows, features[self.cols] * self.values[:, None]).t()
        return out if self.bias is None else out + self.bias


def _sparse_layers(model: nn.Module, max_density: float) -> list[str]:
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and is_pruned(module, "weight"):
            if float(module.weight_mask.mean()) <= max_density:
                names.append(name)
    return names


def finetune(
    model: nn.Module,
    build: Callable[[], nn.Module],
    data: Tensors,
    config: TrainConfig,
    seed: int,
    *,
    max_density: float = DEFAULT_MAX_DENSITY,
    progress: Progress | None = None,
) -> TrainResult:
    """Train the pruned ``model`` with masks fixed, through a sparse twin where that pays (module docstring).

    ``build()`` makes a fresh, unpruned model of the same architecture (the twin's skeleton).
    """
    sparse_names = _sparse_layers(model, max_density)
    if not sparse_names:
        return train(model, data, config, seed, progress)
    twin = build()
    pruned_modules = dict(model.named_modules())
    with torch.no_grad():
        for name, module in twin.named_modules():
            source = pruned_modules.get(name)
            if source is None or name in sparse_names:
                continue
            for key, buffer in module.named_buffers(recurse=False):
                buffer.copy_(getattr(source, key))
            for key, parameter in list(module.named_parameters(recurse=False)):
                if is_pruned(source, key):  # a pruned tensor the twin keeps dense stays masked while it trains
                    parameter.copy_(getattr(source, f"{key}_orig"))
                    prune.custom_from_mask(module, key, getattr(source, f"{key}_mask").bool())
                else:
                    parameter.copy_(getattr(source, key))
    for name in sparse_names:
        source = pruned_modules[name]
        replace_module(twin, name, SparseLinear(source.weight_orig, source.bias, source.weight_mask.bool()))
    result = train(twin, data, config, seed, progress)
    twin_modules = dict(twin.named_modules())
    with torch.no_grad():
        for name, module in pruned_modules.items():
            target = twin_modules.get(name)
            if target is None:
                continue
            if name in sparse_names:
                module.weight_orig[target.rows, target.cols] = target.values
                if module.bias is not None:
                    module.bias.copy_(target.bias)
                continue
            trained = dict(target.named_parameters(recurse=False))
            for key, parameter in module.named_parameters(recurse=False):
                if key.endswith("_orig"):  # keep masked positions as they were; kept ones from the (masked) twin
                    mask = getattr(module, f"{key[: -len('_orig')]}_mask").bool()
                    parameter[mask] = trained[key][mask]
                elif key in trained:
                    parameter.copy_(trained[key])
            for key, buffer in module.named_buffers(recurse=False):
                if not key.endswith("_mask") and hasattr(target, key):
                    buffer.copy_(getattr(target, key))
    return result
