"""Exports of an allocation to the formats of other pruning tools, each realising the allocated kept counts
exactly in its consumer (``exact``), with the snippet that applies it (``snippets``).

``EXPORTERS`` maps a format name to ``(syntax, function, consumer)``; ``export_text`` renders one. Torch-Pruning is
not a consumer: it prunes whole channels (its ``pruning_ratio_dict`` is a fraction of channels), which an
allocation of unstructured kept counts cannot be written as.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from allocator.allocation.exporters import formats
from allocator.allocation.exporters.exact import exact_sparsity
from allocator.allocation.exporters.snippets import SNIPPETS, snippet_for
from allocator.allocation.record import Allocation
from allocator.errors import InvalidInputError

EXPORTERS: dict[str, tuple[str, Callable[[Allocation], Any], str]] = {
    "torch-prune": ("json", formats.torch_prune, "torch.nn.utils.prune.l1_unstructured (in torch)"),
    "torch-ao": ("json", formats.torch_ao, "torch.ao.pruning.WeightNormSparsifier (in torch)"),
    "nni": ("json", formats.nni, "NNI 3.0 LevelPruner"),
    "llm-compressor": ("yaml", formats.llm_compressor, "llm-compressor 0.14 MagnitudePruningModifier"),
    "sparseml-legacy": ("yaml", formats.sparseml_legacy, "SparseML 1.8 GMPruningModifier"),
    "jaxpruner": ("json", formats.jaxpruner, "JaxPruner custom_sparsity_map (flax paths)"),
    "rigl": ("json", formats.rigl, "RigL custom_sparsity_map (TF scopes)"),
}

#: Names that are gone, with what replaced them.
RENAMED = {"sparseml": "sparseml-legacy (SparseML 1.8; for its successor use llm-compressor)"}


def check_format(kind: str) -> str:
    """``kind`` if it is a format, else ``InvalidInputError`` naming the accepted ones."""
    if kind in EXPORTERS:
        return kind
    hint = f" (renamed: {RENAMED[kind]})" if kind in RENAMED else ""
    raise InvalidInputError(f"export format {kind!r} is unknown{hint}; accepted: {', '.join(EXPORTERS)}")


#: Formats whose consumer reads the file by its extension.
REQUIRED_SUFFIXES = {"sparseml-legacy": (".yaml", ".yml")}


def check_export_path(kind: str, path: str) -> str:
    """``path`` if the consumer of ``kind`` will read it, else ``InvalidInputError`` naming the suffixes it needs."""
    suffixes = REQUIRED_SUFFIXES.get(kind)
    if suffixes and not path.lower().endswith(suffixes):
        raise InvalidInputError(f"{kind} export {path!r}: its consumer reads recipes by extension; accepted: a "
                                f"file name ending in {' or '.join(suffixes)}")
    return path


def export_text(allocation: Allocation, kind: str) -> str:
    """The export ``kind`` (one of ``EXPORTERS``) as text: JSON or YAML."""
    syntax, function, _ = EXPORTERS[check_format(kind)]
    value = function(allocation)
    return value if syntax == "yaml" else json.dumps(value, indent=2) + "\n"


__all__ = ["EXPORTERS", "RENAMED", "SNIPPETS", "check_export_path", "check_format", "exact_sparsity", "export_text", "snippet_for"]
