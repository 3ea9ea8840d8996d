"""``--model``: a registered name, a whole model saved with ``torch.save(model)``, or an import path to a factory.

- ``mlp-2x100`` (any name of ``allocator models``): the registry entry.
- ``package.module:factory`` or ``path/to/file.py:factory``: ``factory()`` (a function or a class taking no
  arguments) builds a fresh ``torch.nn.Module``; the current directory is on the import path. Each build calls it
  again, so it must give the same architecture (its initial weights come from the seeded torch generator).
- ``model.pt``: a whole model pickled by ``torch.save(model)``. Unpickling runs code from the file, so it is read
  only with ``trust_model_file=True`` (``--trust-model-file``); each build is a deep copy of the loaded model.

For a model that is not registered, names, shapes and which layers are prunable come from the model itself,
through ``describe`` on one example input of ``input_shape`` (every Linear but the last is prunable), so exports
and masks are keyed by the model's own tensor names. ``input_shape`` is inferred only where the first weighted
layer is a Linear (its ``in_features``); a model that starts with a convolution needs it given.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from allocator.errors import InvalidInputError
from allocator.models import ModelEntry, get_model, model_names

MODEL_FILE_SUFFIXES = (".pt", ".pth", ".pkl")


def is_registered(spec: str) -> bool:
    """Whether ``spec`` names a registered model."""
    return spec in model_names()


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``"1,28,28"`` -> ``(1, 28, 28)``; ``None`` stays ``None``.

    Raises:
        InvalidInputError: not comma-separated positive integers.
    """
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise InvalidInputError(f"--input-shape {text!r} is not comma-separated positive integers such as 1,28,28 "
                                f"(one example, without the batch dimension)")
    return shape


def model_digest(spec: str) -> str | None:
    """SHA-256 of a model file (a run folder keyed on it notices an edited file); ``None`` for other sources."""
    path = Path(spec)
    if is_registered(spec) or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _factory_from_import_path(spec: str) -> Callable[[], object]:
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise InvalidInputError(f"--model {spec!r} is not MODULE:FACTORY")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise InvalidInputError(f"--model {spec!r}: file {target!r} does not exist")
        module_spec = importlib.util.spec_from_file_location(f"allocator_user_model_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
        try:
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as error:  # noqa: BLE001  (the user's code: one line, not a traceback)
            raise InvalidInputError(f"--model {spec!r}: importing {target} failed: {type(error).__name__}: {error}") from None
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(target)
        except Exception as error:  # noqa: BLE001
            raise InvalidInputError(f"--model {spec!r}: cannot import {target!r}: {type(error).__name__}: {error}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise InvalidInputError(f"--model {spec!r}: {target} has no callable {attribute!r}")
    return factory


def _loaded_model(spec: str, trust_model_file: bool):
    import torch

    if not trust_model_file:
        raise InvalidInputError(
            f"--model {spec!r} is a pickled model file: loading it runs code from the file; pass --trust-model-file "
            f"if you trust it (or give an import path MODULE:FACTORY)")
    try:
        loaded = torch.load(spec, weights_only=False, map_location="cpu")
    except Exception as error:  # noqa: BLE001  (a garbage file: one line)
        raise InvalidInputError(f"--model {spec!r} could not be read as a saved model: {type(error).__name__}: "
                                f"{str(error).splitlines()[0] if str(error) else ''}") from None
    if not isinstance(loaded, torch.nn.Module):
        kind = "a state_dict (a mapping of tensors)" if isinstance(loaded, dict) else type(loaded).__name__
        raise InvalidInputError(f"--model {spec!r} holds {kind}, not a whole model saved with torch.save(model); "
                                f"give an import path MODULE:FACTORY that builds the architecture instead")
    return loaded


def _inferred_input_shape(model) -> tuple[int, ...] | None:
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Linear):
            return (module.in_features,)
        if isinstance(module, nn.Conv2d):
            return None
    return None


def resolve_model(spec: str, *, input_shape: tuple[int, ...] | None = None,
                  trust_model_file: bool = False, include_output_layer: bool = True) -> ModelEntry:
    """The ``ModelEntry`` that ``--model spec`` stands for (module docstring).

    Raises:
        InvalidInputError: an unknown name, a module or file that cannot be loaded, an untrusted pickle, a model
            ``describe`` refuses, or an input shape that is missing or does not fit; one line each.
    """
    if is_registered(spec):
        entry = get_model(spec)
        if input_shape is not None and tuple(input_shape) != tuple(entry.input_shape):
            raise InvalidInputError(f"--input-shape {','.join(map(str, input_shape))} does not fit {spec}, which takes "
                                    f"{','.join(map(str, entry.input_shape))}")
        if not include_output_layer:
            entry = replace(entry, network=replace(entry.network, include_output_layer=False))
        return entry
    import torch

    from allocator.pruning.description import describe

    if Path(spec).suffix in MODEL_FILE_SUFFIXES or (Path(spec).is_file() and ":" not in spec):
        if not Path(spec).is_file():
            raise InvalidInputError(f"--model {spec!r}: no such file (registered models: {', '.join(model_names())})")
        loaded = _loaded_model(spec, trust_model_file)
        build: Callable[[], object] = lambda: copy.deepcopy(loaded)  # noqa: E731
        summary = f"a whole model read from {spec}"
    elif ":" in spec:
        factory = _factory_from_import_path(spec)
        build = factory
        summary = f"built by {spec}"
    else:
        raise InvalidInputError(f"model {spec!r} is not registered, not a model file and not MODULE:FACTORY; "
                                f"registered: {', '.join(model_names())}")
    model = build()
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"--model {spec!r} built a {type(model).__name__}, not a torch.nn.Module")
    shape = tuple(input_shape) if input_shape is not None else _inferred_input_shape(model)
    if shape is None:
        raise InvalidInputError(f"--model {spec!r} starts with a convolution: give --input-shape C,H,W (e.g. 1,28,28)")
    try:
        description = describe(model, torch.zeros(1, *shape), include_output_layer=include_output_layer)
    except InvalidInputError as error:
        raise InvalidInputError(f"--model {spec!r}: {error}") from None
    except RuntimeError as error:  # a shape that does not fit the first layer
        raise InvalidInputError(f"--model {spec!r} does not take inputs of shape {','.join(map(str, shape))}: "
                                f"{str(error).splitlines()[0]}; give --input-shape") from None
    return ModelEntry(spec, description.network, build, summary, shape, _conv_builder(spec, model, shape, description))


def _conv_builder(spec: str, model, shape: tuple[int, ...], description) -> Callable[[bool], object] | None:
    """For a CNN: the builder of its program with every conv inside the bound, translated from its fx graph now
    (so a model the translator cannot prove is refused before any work, when the program is asked for)."""
    if not description.conv_layers:
        return None
    from allocator.pruning.fx_program import translate

    try:
        translate(model, shape)
    except InvalidInputError as error:
        message = f"--model {spec!r}: {error}; --frozen-convs keeps its convolutions out of the bound"

        def refuse(include_output_layer: bool) -> object:
            raise InvalidInputError(message)

        return refuse
    return lambda include_output_layer: translate(model, shape, include_output_layer=include_output_layer)
