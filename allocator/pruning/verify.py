"""Check a pruned model against an allocation file: per weight tensor, the realised kept count (non-zeros, or the
mask's ones) against the file's ``kept``.

Accepted forms of the pruned model (``load_tensors``):

- a state dict (``torch.save(model.state_dict(), path)``), nested dicts flattened with dots;
- a whole saved ``nn.Module`` (``torch.save(model, path)``; unpickling runs code, so only with ``trust_pickle``);
- a dict of masks (``masks=True``): ``{"fc1.weight": mask}``, NNI's ``{"fc1": {"weight": mask}}`` or torch's
  ``fc1.weight_mask`` names; a mask entry counts its non-zeros.

Inside a state dict, a tensor still under a tool's reparametrisation is read through it: torch.nn.utils.prune's
``fc1.weight_orig`` x ``fc1.weight_mask`` and torch.ao's ``fc1.parametrizations.weight.original`` x
``fc1.parametrizations.weight.0.mask``. A weight that was kept but is exactly zero reads as pruned in a state dict;
pass the masks to count it.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from allocator.allocation.record import Allocation
from allocator.errors import InvalidInputError


@dataclass(frozen=True)
class TensorCheck:
    """One weight tensor of the allocation: its file counts, what the model holds, and the problem if any."""

    name: str
    weights: int
    kept: int
    realised: int | None  # kept weights found in the model (None when the tensor is missing or mis-shaped)
    source: str  # where the count came from: the tensor's name in the loaded file
    problem: str | None  # None when the model realises the allocation on this tensor

    @property
    def ok(self) -> bool:
        return self.problem is None


def _flatten(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(value, torch.nn.Module):
        value = value.state_dict()
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    if isinstance(value, Mapping):
        found: dict[str, torch.Tensor] = {}
        for key, item in value.items():
            found.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {}  # epochs, optimiser settings and other non-tensor entries of a checkpoint


def load_tensors(path: str | Path, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The named tensors of a saved state dict, model or masks file (nested dicts joined with dots)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"pruned model {str(path)!r} is not a file; accepted: a torch.save file of a state "
                                f"dict, a model or masks")
    if not zipfile.is_zipfile(path):
        raise InvalidInputError(f"{str(path)!r} is not a torch.save file (not a zip archive); accepted: files of "
                                f"torch.save (torch >= 1.6) holding a state dict, a model or masks")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as error:
        if trust_pickle:
            raise InvalidInputError(f"{str(path)!r} cannot be unpickled: {error}") from None
        raise InvalidInputError(f"{str(path)!r} holds pickled objects, not only tensors (a saved nn.Module?); "
                                f"pass --trust-pickle if you trust the file") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise InvalidInputError(f"{str(path)!r} is not a torch.save file: {str(error).splitlines()[0]}") from None
    tensors = _flatten(loaded)
    if not tensors:
        raise InvalidInputError(f"{str(path)!r} holds no tensors; accepted: a state dict, a model or masks")
    return tensors


def _read(name: str, tensors: Mapping[str, torch.Tensor], masks: bool) -> tuple[torch.Tensor, str] | None:
    """The tensor whose non-zeros are the kept weights of ``name``, and where it came from."""
    module, _, parameter = name.rpartition(".")
    dotted = f"{module}." if module else ""
    if masks:
        for key in (name, f"{name}_mask", f"{dotted}parametrizations.{parameter}.0.mask"):
            if key in tensors:
                return tensors[key], key
        return None
    original, mask = f"{name}_orig", f"{name}_mask"  # torch.nn.utils.prune before prune.remove
    if original in tensors and mask in tensors:
        return tensors[original] * tensors[mask], f"{original} x {mask}"
    original = f"{dotted}parametrizations.{parameter}.original"  # torch.ao / torch parametrize before squash_mask
    mask = f"{dotted}parametrizations.{parameter}.0.mask"
    if original in tensors:
        if mask in tensors:
            return tensors[original] * tensors[mask].reshape(tensors[original].shape), f"{original} x {mask}"
        return tensors[original], original
    if name in tensors:
        return tensors[name], name
    return None


def verify_tensors(allocation: Allocation, tensors: Mapping[str, torch.Tensor], *, masks: bool = False
                   ) -> list[TensorCheck]:
    """One ``TensorCheck`` per weight layer of ``allocation``, in network order."""
    checks = []
    for layer in allocation.layers:
        found = _read(layer.name, tensors, masks)
        if found is None:
            what = "mask" if masks else "tensor"
            checks.append(TensorCheck(layer.name, layer.weights, layer.kept, None, "",
                                      f"no {what} named {layer.name!r} in the model"))
            continue
        tensor, source = found
        if tensor.numel() != layer.weights:
            checks.append(TensorCheck(layer.name, layer.weights, layer.kept, None, source,
                                      f"{tensor.numel()} weights in the model, {layer.weights} in the file"))
            continue
        realised = int(torch.count_nonzero(tensor))
        problem = None if realised == layer.kept else (
            f"realised {realised} kept, allocated {layer.kept} ({realised - layer.kept:+d}) of {layer.weights}")
        checks.append(TensorCheck(layer.name, layer.weights, layer.kept, realised, source, problem))
    return checks


def weight_names(tensors: Mapping[str, torch.Tensor], limit: int = 6) -> list[str]:
    """A few of the model's weight-like tensor names (for the message when the names do not match)."""
    return [name for name, tensor in tensors.items() if tensor.dim() >= 2][:limit]
