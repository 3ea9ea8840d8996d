"""One function per export format: the allocation in the form a pruning tool reads, with exact counts.

Every format writes, per pruned layer, the sparsity of ``exact_sparsity(weights, kept)`` (so rounding and truncating
tools prune exactly ``weights - kept``) and carries the integer ``weights`` and ``kept`` of every weight layer
(JSON formats: the ``layers`` list; YAML recipes: one comment line per layer). Modules are named by the allocation's
names without the parameter suffix (``fc1.weight`` -> module ``fc1``, parameter ``weight``).

Formats and their consumers (versions run in ``tests/interop``):

- ``torch-prune``: ``torch.nn.utils.prune.l1_unstructured(module, **kwargs)`` with an int ``amount`` (a count:
  a float amount there is a fraction of the weights still unpruned); metadata outside the keyword arguments.
- ``torch-ao``: ``torch.ao.pruning.WeightNormSparsifier`` configs ``{"tensor_fqn", "sparsity_level"}`` (parameter
  names), used with ``sparse_block_shape=(1, 1), zeros_per_block=1`` (the default 1x4 blocks miss by 1-2).
- ``nni``: NNI 3.0 ``config_list`` for ``LevelPruner`` (``op_names`` are module names).
- ``llm-compressor``: a recipe of one ``MagnitudePruningModifier`` group per layer (module-name targets).
- ``sparseml-legacy``: a SparseML 1.8 recipe of ``!GMPruningModifier`` (1.9 is an end-of-life stub).
- ``jaxpruner``: ``custom_sparsity_map`` keyed by flax parameter paths ``"fc1/kernel"`` (JSON cannot hold the
  tuples JaxPruner matches: split on ``/``), every weight layer listed (an unlisted kernel gets the default).
- ``rigl``: RigL's ``custom_sparsity_map`` keyed by TF variable scopes (``fc1``, ``features/0``: the mask variable
  ``<key>/mask:0``), every weight layer listed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from allocator.allocation.exporters.exact import below_one_sparsity, exact_sparsity, float32_sparsity
from allocator.allocation.record import Allocation, LayerAllocation
from allocator.errors import InvalidInputError


def module_name(layer: LayerAllocation) -> str:
    """The module that holds the layer's parameter: its name without the last dotted part."""
    return layer.name.rpartition(".")[0] if "." in layer.name else layer.name


def parameter_name(layer: LayerAllocation) -> str:
    """The parameter's own name within its module (``weight``)."""
    return layer.name.rpartition(".")[2]


def sparsity_of(layer: LayerAllocation) -> float:
    """The exact sparsity (fraction pruned) to write for ``layer``."""
    return exact_sparsity(layer.weights, layer.kept)


def pruned_layers(allocation: Allocation) -> list[LayerAllocation]:
    """The layers that lose weights (a tool is told nothing about the others)."""
    return [layer for layer in allocation.layers if layer.kept < layer.weights]


def counts(allocation: Allocation) -> list[dict[str, Any]]:
    """Per weight layer: ``name``, ``module``, ``weights``, ``kept`` (integers) and the written ``sparsity``."""
    return [{"name": layer.name, "module": module_name(layer), "weights": layer.weights, "kept": layer.kept,
             "sparsity": sparsity_of(layer)} for layer in allocation.layers]


def _envelope(allocation: Allocation, kind: str, consumer: str, payload_key: str, payload: Any) -> dict[str, Any]:
    from allocator.allocation.file import to_document

    return {"format": kind, "consumer": consumer, "allocation": to_document(allocation)["content_hash"],
            payload_key: payload, "layers": counts(allocation)}


def torch_prune(allocation: Allocation) -> dict[str, Any]:
    """``modules``: per module, ``kwargs`` for ``prune.l1_unstructured`` (``name``, int ``amount`` = weights - kept)."""
    modules = {module_name(layer): {"kwargs": {"name": parameter_name(layer), "amount": layer.weights - layer.kept},
                                    "weights": layer.weights, "kept": layer.kept}
               for layer in pruned_layers(allocation)}
    return _envelope(allocation, "torch-prune", "torch.nn.utils.prune (torch 2.x)", "modules", modules)


def torch_ao(allocation: Allocation) -> dict[str, Any]:
    """``config``: ``[{"tensor_fqn": parameter, "sparsity_level": s}]`` for ``WeightNormSparsifier.prepare``."""
    config = [{"tensor_fqn": layer.name, "sparsity_level": sparsity_of(layer)} for layer in pruned_layers(allocation)]
    document = _envelope(allocation, "torch-ao", "torch.ao.pruning.WeightNormSparsifier (torch 2.x)", "config", config)
    document["sparsifier"] = {"sparse_block_shape": [1, 1], "zeros_per_block": 1}
    return document


def nni(allocation: Allocation) -> dict[str, Any]:
    """``config_list``: ``[{"op_names": [module], "target_names": [parameter], "sparse_ratio": s}]``."""
    config_list = [{"op_names": [module_name(layer)], "target_names": [parameter_name(layer)],
                    "sparse_ratio": sparsity_of(layer)} for layer in pruned_layers(allocation)]
    return _envelope(allocation, "nni", "NNI 3.0 LevelPruner", "config_list", config_list)


def yaml_float(value: float) -> str:
    """``value`` as a YAML float that PyYAML reads back as this very double: ``repr``, with ``.0`` added to a
    mantissa without a dot (YAML 1.1 reads ``5e-05`` as a string; SparseML then refuses it)."""
    text = repr(float(value))
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def _count_comments(allocation: Allocation) -> list[str]:
    from allocator.allocation.file import to_document

    lines = [f"# allocation {to_document(allocation)['content_hash']}", "# per weight layer: kept of weights"]
    lines += [f"#   {layer.name}: kept {layer.kept} of {layer.weights}" for layer in allocation.layers]
    return lines


def _group_keys(layers: list[LayerAllocation]) -> list[str]:
    keys: list[str] = []
    for layer in layers:
        key = re.sub(r"[^0-9A-Za-z_]", "_", module_name(layer)) + "_modifiers"
        while key in keys:
            key = key[: -len("_modifiers")] + "_x_modifiers"
        keys.append(key)
    return keys


def llm_compressor(allocation: Allocation) -> str:
    """A recipe: stage ``pruning_stage``, one ``<module>_modifiers`` group per layer, each a
    ``MagnitudePruningModifier`` at its sparsity from step 0 (``init_sparsity == final_sparsity``)."""
    layers = pruned_layers(allocation)
    lines = ["# llm-compressor recipe exported by allocator: per-layer sparsity (fraction pruned), exact counts"]
    lines += _count_comments(allocation) + ["pruning_stage:"]
    for key, layer in zip(_group_keys(layers), layers):
        sparsity = yaml_float(sparsity_of(layer))
        lines += [
            f"  {key}:",
            "    MagnitudePruningModifier:",
            f"      targets: [{json.dumps(module_name(layer))}]",
            f"      init_sparsity: {sparsity}",
            f"      final_sparsity: {sparsity}",
            "      start: 0",
            "      end: 1",
            "      update: 1",
            "      mask_structure: \"unstructured\"",
        ]
    if not layers:
        lines.append("  no_modifiers: {}")
    return "\n".join(lines) + "\n"


def sparseml_legacy(allocation: Allocation, *, end_epoch: float = 1.0) -> str:
    """A SparseML 1.8 recipe: each layer pruned to its sparsity at epoch 0 and held there."""
    lines = ["# SparseML 1.8 recipe exported by allocator (sparseml[torch]==1.8.0, sparsezoo==1.8.0, setuptools<81)"]
    if not pruned_layers(allocation):
        raise InvalidInputError("the allocation prunes no weight, and SparseML refuses a recipe without modifiers; "
                                "accepted: an allocation that prunes at least one layer")
    lines += _count_comments(allocation) + ["version: 1.1.0", "", "pruning_modifiers:"]
    for layer in pruned_layers(allocation):
        sparsity = yaml_float(below_one_sparsity(layer.weights, layer.kept))  # SparseML refuses 1.0
        lines += [
            "  - !GMPruningModifier",
            f"    params: [{json.dumps(layer.name)}]",
            f"    init_sparsity: {sparsity}",
            f"    final_sparsity: {sparsity}",
            "    start_epoch: 0.0",
            f"    end_epoch: {float(end_epoch)!r}",
            "    update_frequency: 1.0",
            "    leave_enabled: true",
            "    mask_type: unstructured",
        ]
    return "\n".join(lines) + "\n"


def flax_path(name: str) -> str:
    """The flax (linen) parameter path of a torch parameter name, ``/``-joined: ``fc1.weight`` -> ``fc1/kernel``,
    ``features.0.weight`` -> ``features/layers_0/kernel`` (``nn.Sequential`` names its children ``layers_<i>``)."""
    *modules, parameter = name.split(".")
    parts = [f"layers_{part}" if part.isdigit() else part for part in modules]
    return "/".join(parts + ["kernel" if parameter == "weight" else parameter])


def tf_scope(name: str) -> str:
    """The TF variable scope of a torch parameter's module: ``features.0.weight`` -> ``features/0``."""
    return name.rpartition(".")[0].replace(".", "/") if "." in name else name


def jaxpruner(allocation: Allocation) -> dict[str, Any]:
    """``custom_sparsity_map``: flax path -> sparsity for every weight layer (0.0 where nothing is pruned).

    JaxPruner computes a tensor's kept count in float32 (``max(1, round(n * (1 - s)))``, jitted): each sparsity is
    the float32 value that realises the kept count there (``exact.float32_sparsity``). A layer kept at 0, or a
    tensor too large for float32 to hit its count (above about 2^24 weights), is refused.
    """
    mapping = {}
    for layer in allocation.layers:
        if layer.kept == 0:
            raise InvalidInputError(f"layer {layer.name!r} keeps 0 weights, which JaxPruner cannot realise (it keeps "
                                    f"at least one weight per tensor); accepted: allocations with kept >= 1 on every "
                                    f"layer")
        sparsity = float32_sparsity(layer.weights, layer.kept)
        if sparsity is None:
            raise InvalidInputError(f"layer {layer.name!r}: {layer.kept} kept of {layer.weights} weights cannot be "
                                    f"realised by JaxPruner's float32 count; accepted: tensors below about 2^24 "
                                    f"weights (or another export)")
        mapping[flax_path(layer.name)] = sparsity
    return _envelope(allocation, "jaxpruner", "JaxPruner (flax parameter paths; source only, not on PyPI)",
                     "custom_sparsity_map", mapping)


def rigl(allocation: Allocation) -> dict[str, Any]:
    """``custom_sparsity_map``: TF scope -> sparsity for every weight layer (0.0 where nothing is pruned)."""
    mapping = {tf_scope(layer.name): sparsity_of(layer) for layer in allocation.layers}
    return _envelope(allocation, "rigl", "RigL (TensorFlow 1 mask scopes; source only)", "custom_sparsity_map",
                     mapping)
