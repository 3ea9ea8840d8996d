"""Exporters of an allocation to the formats of other pruning tools.

Every exporter takes the prunable layers only (the classifier and pinned-dense layers are left out when
their density is 1) and names modules by the allocation's fully qualified names without ``.weight``.

- ``torch_prune_amounts``: ``{module: {"name": "weight", "amount": int}}`` for
  ``torch.nn.utils.prune.l1_unstructured(module, name, amount)``. The amount is an int *count of weights
  to prune*, because a float amount there is a fraction of the still-unpruned weights.
- ``nni_config_list``: NNI 3.x ``config_list``, one entry per layer with ``sparse_ratio``.
- ``sparseml_recipe``: a SparseML recipe (YAML) of one ``!GMPruningModifier`` per layer holding its
  sparsity from the start (``init_sparsity == final_sparsity``).
- ``rigl_custom_sparsity_map``: RigL's ``custom_sparsity_map``, ``{name: sparsity}``.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from allocator.allocation.record import Allocation, LayerAllocation
from allocator.errors import InvalidInputError


def _module_name(layer: LayerAllocation) -> str:
    return layer.name[: -len(".weight")] if layer.name.endswith(".weight") else layer.name


def _pruned_layers(allocation: Allocation) -> list[LayerAllocation]:
    return [layer for layer in allocation.layers if layer.prunable and layer.kept < layer.weights]


def torch_prune_amounts(allocation: Allocation) -> dict[str, dict[str, Any]]:
    """Per module: the parameter name and the int number of weights to prune (weights - kept)."""
    return {
        _module_name(layer): {"name": layer.name.rsplit(".", 1)[-1], "amount": layer.weights - layer.kept,
                              "kept": layer.kept}
        for layer in _pruned_layers(allocation)
    }


def nni_config_list(allocation: Allocation) -> list[dict[str, Any]]:
    """NNI 3.x ``config_list``: ``[{"op_names": [module], "target_names": ["weight"], "sparse_ratio": s}]``."""
    return [
        {"op_names": [_module_name(layer)], "target_names": [layer.name.rsplit(".", 1)[-1]],
         "sparse_ratio": layer.sparsity}
        for layer in _pruned_layers(allocation)
    ]


def sparseml_recipe(allocation: Allocation, *, end_epoch: float = 1.0) -> str:
    """A SparseML recipe (YAML text): each layer pruned to its sparsity at epoch 0 and held there."""
    lines = [
        "# SparseML recipe exported by allocator: per-layer sparsity (fraction pruned) from the allocation file",
        f"# content hash of the allocation: {_hash(allocation)}",
        "version: 1.1.0",
        "",
        "pruning_modifiers:",
    ]
    for layer in _pruned_layers(allocation):
        lines += [
            "  - !GMPruningModifier",
            f"    params: [{json.dumps(layer.name)}]",
            f"    init_sparsity: {layer.sparsity!r}",
            f"    final_sparsity: {layer.sparsity!r}",
            "    start_epoch: 0.0",
            f"    end_epoch: {float(end_epoch)!r}",
            "    update_frequency: 1.0",
            "    leave_enabled: true",
            "    mask_type: unstructured",
        ]
    return "\n".join(lines) + "\n"


def rigl_custom_sparsity_map(allocation: Allocation) -> dict[str, float]:
    """RigL's ``custom_sparsity_map``: layer name -> sparsity (fraction pruned)."""
    return {layer.name: layer.sparsity for layer in _pruned_layers(allocation)}


def _hash(allocation: Allocation) -> str:
    from allocator.allocation.file import to_document

    return to_document(allocation)["content_hash"]


EXPORTERS: dict[str, tuple[str, Callable[[Allocation], Any]]] = {
    "torch-prune": ("json", torch_prune_amounts),
    "nni": ("json", nni_config_list),
    "sparseml": ("yaml", sparseml_recipe),
    "rigl": ("json", rigl_custom_sparsity_map),
}


def export_text(allocation: Allocation, kind: str) -> str:
    """The export ``kind`` (one of ``EXPORTERS``) as text: JSON or YAML."""
    if kind not in EXPORTERS:
        raise InvalidInputError(f"export format {kind!r} is unknown; accepted: {', '.join(EXPORTERS)}")
    syntax, function = EXPORTERS[kind]
    value = function(allocation)
    return value if syntax == "yaml" else json.dumps(value, indent=2) + "\n"
