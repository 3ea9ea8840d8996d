"""The one resolver from a tensor's fully qualified name (``features.0.weight``) to the module that holds it."""

from __future__ import annotations

import torch
from torch import nn

from allocator.errors import InvalidInputError


def resolve(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """``(module, attribute)`` of tensor ``name`` in ``model``: ``fc1.weight`` -> ``(model.fc1, "weight")``.

    Raises:
        InvalidInputError: no module of that name (the message names the tensor).
    """
    module_name, _, tensor_name = name.rpartition(".")
    try:
        module = model.get_submodule(module_name) if module_name else model
    except AttributeError:
        raise InvalidInputError(f"the model has no module {module_name!r} (for tensor {name!r})") from None
    return module, tensor_name


def tensor(model: nn.Module, name: str) -> torch.Tensor:
    """The tensor ``name`` as the forward pass uses it (mask applied when pruned).

    Raises:
        InvalidInputError: no such module or tensor.
    """
    module, tensor_name = resolve(model, name)
    value = getattr(module, tensor_name, None)
    if not isinstance(value, torch.Tensor):
        raise InvalidInputError(f"the model has no tensor {name!r}")
    return value


def trainable(model: nn.Module, name: str) -> torch.Tensor:
    """The parameter that receives ``name``'s gradient: ``<tensor>_orig`` where ``torch.nn.utils.prune`` has
    reparametrised it, else the tensor itself."""
    module, tensor_name = resolve(model, name)
    return module._parameters.get(f"{tensor_name}_orig", tensor(model, name))


def replace_module(model: nn.Module, name: str, replacement: nn.Module) -> None:
    """Put ``replacement`` where the sub-module ``name`` is (``name`` a module name, not a tensor name)."""
    parent, child = resolve(model, name)
    setattr(parent, child, replacement)
