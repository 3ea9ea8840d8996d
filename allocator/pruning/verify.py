"""Check a pruned model against an allocation file: per weight tensor, the realised kept count (non-zeros, or the
mask's ones) against the file's ``kept``.

Accepted forms of the pruned model (``load_tensors``):

- a state dict (``torch.save(model.state_dict(), path)``), nested dicts flattened with dots;
- a whole saved ``nn.Module`` (``torch.save(model, path)``; unpickling runs code, so only with ``trust_pickle``),
  read as its forward pass sees each parameter (masks of pruning hooks and parametrisations applied);
- a dict of masks (``masks=True``): ``{"fc1.weight": mask}``, NNI's ``{"fc1": {"weight": mask}}`` or torch's
  ``fc1.weight_mask`` names; a mask entry counts its non-zeros.

Inside a state dict, a tensor still under a tool's reparametrisation is read through it: torch.nn.utils.prune's
``fc1.weight_orig`` x ``fc1.weight_mask``, NNI's ``fc1.weight`` x ``fc1._nni_wrapper.weight_mask`` and a
parametrisation's ``fc1.parametrizations.weight.original`` x ``...0.mask`` where the mask was saved. torch.ao's
sparsifier keeps its masks out of the state dict: there the tensor is reported, with what to do
(``squash_mask()`` first). A weight that was kept but is exactly zero reads as pruned in a state dict;
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


def _module_tensors(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """A module's parameters as its forward pass sees them: ``getattr(submodule, name)`` applies a pruning hook's or
    a parametrisation's mask (torch.nn.utils.prune, torch.ao), where the state dict holds the dense original."""
    found: dict[str, torch.Tensor] = {}
    for module_name, submodule in module.named_modules():
        for name, _ in list(submodule.named_parameters(recurse=False)) + list(submodule.named_buffers(recurse=False)):
            visible = name[: -len("_orig")] if name.endswith("_orig") else name
            value = getattr(submodule, visible, None)
            if isinstance(value, torch.Tensor):
                found[".".join(part for part in (prefix, module_name, visible) if part)] = value.detach()
        parametrized = getattr(submodule, "parametrizations", None)
        for name in (parametrized.keys() if parametrized is not None else ()):
            found[".".join(part for part in (prefix, module_name, name) if part)] = getattr(submodule, name).detach()
    return found


def _flatten(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(value, torch.nn.Module):
        return _module_tensors(value, prefix)
    if isinstance(value, torch.Tensor):
        return {prefix: value.to_dense() if value.is_sparse else value}
    if isinstance(value, Mapping):
        found: dict[str, torch.Tensor] = {}
        for key, item in value.items():
            found.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {}  # epochs, optimiser settings and other non-tensor entries of a checkpoint


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
            raise InvalidInputError(f"{str(path)!r} cannot be unpickled: {_first_line(error)}") from None
        raise InvalidInputError(f"{str(path)!r} holds pickled objects, not only tensors and dicts (a saved "
                                f"nn.Module, or NNI's masks as a defaultdict: save {{k: dict(v) for k, v in "
                                f"masks.items()}}); pass --trust-pickle if you trust the file") from None
    except (AttributeError, ImportError) as error:  # a pickled class that cannot be found here
        raise InvalidInputError(f"{str(path)!r} pickles a class that cannot be imported here ({_first_line(error)}); "
                                f"accepted: a state dict, or a model whose class is importable") from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError) as error:
        raise InvalidInputError(f"{str(path)!r} is not a torch.save file: {_first_line(error)}") from None
    tensors = _flatten(loaded)
    if not tensors:
        raise InvalidInputError(f"{str(path)!r} holds no tensors; accepted: a state dict, a model or masks")
    return tensors


class _Unreadable(Exception):
    """A tensor is there but its kept count cannot be read from the file (the message says why)."""


def _product(original: torch.Tensor, mask: torch.Tensor, names: str) -> torch.Tensor:
    if mask.numel() != original.numel():
        raise _Unreadable(f"{names}: the mask has {mask.numel()} entries and the weights {original.numel()}")
    return original * mask.reshape(original.shape)


def _read(name: str, tensors: Mapping[str, torch.Tensor], masks: bool) -> tuple[torch.Tensor, str] | None:
    """The tensor whose non-zeros are the kept weights of ``name``, and where it came from (``_Unreadable`` when
    the file holds the weights but not what decides their count)."""
    module, _, parameter = name.rpartition(".")
    dotted = f"{module}." if module else ""
    if masks:
        for key in (name, f"{name}_mask", f"{dotted}parametrizations.{parameter}.0.mask",
                    f"{dotted}_nni_wrapper.{parameter}_mask"):
            if key in tensors:
                return tensors[key], key
        return None
    original, mask = f"{name}_orig", f"{name}_mask"  # torch.nn.utils.prune before prune.remove
    if original in tensors and mask in tensors:
        return _product(tensors[original], tensors[mask], f"{original} x {mask}"), f"{original} x {mask}"
    wrapper_mask = f"{dotted}_nni_wrapper.{parameter}_mask"  # a model saved while NNI still wraps it
    if name in tensors and wrapper_mask in tensors:
        return _product(tensors[name], tensors[wrapper_mask], f"{name} x {wrapper_mask}"), f"{name} x {wrapper_mask}"
    original = f"{dotted}parametrizations.{parameter}.original"  # torch.ao / torch parametrize before squash_mask
    mask = f"{dotted}parametrizations.{parameter}.0.mask"
    if original in tensors:
        if mask in tensors:
            return _product(tensors[original], tensors[mask], f"{original} x {mask}"), f"{original} x {mask}"
        raise _Unreadable(f"{original} is there but not its mask (torch.ao keeps masks out of the state dict): call "
                          f"sparsifier.squash_mask() before saving")
    if name in tensors:
        return tensors[name], name
    return None


def verify_tensors(allocation: Allocation, tensors: Mapping[str, torch.Tensor], *, masks: bool = False
                   ) -> list[TensorCheck]:
    """One ``TensorCheck`` per weight layer of ``allocation``, in network order."""
    checks = []
    for layer in allocation.layers:
        try:
            found = _read(layer.name, tensors, masks)
        except _Unreadable as reason:
            checks.append(TensorCheck(layer.name, layer.weights, layer.kept, None, "?", str(reason)))
            continue
        if found is None and masks and layer.kept == layer.weights:  # a tool masks only what it prunes
            checks.append(TensorCheck(layer.name, layer.weights, layer.kept, layer.weights, "no mask: dense", None))
            continue
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
