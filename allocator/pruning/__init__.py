"""The torch side: describing models, pruning criteria, masks, training and fine-tuning (imports torch).

The names below load on first use (PEP 562), so importing a torch-free sub-module such as
``allocator.pruning.finetune.config`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ScoreContext": "criteria", "criterion_names": "criteria", "global_kept": "criteria",
    "register_criterion": "criteria", "scores": "criteria",
    "weight_baselines": "baselines",
    "allocation_counts": "apply", "apply_allocation": "apply",
    "ModelDescription": "description", "describe": "description",
    "apply_masks": "masks", "make_permanent": "masks", "mask_from_scores": "masks", "prune_to_counts": "masks",
    "verify_counts": "masks",
    "TrainConfig": "finetune.training", "Tensors": "finetune.training", "evaluate": "finetune.training",
    "set_threads": "finetune.training", "train": "finetune.training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'allocator.pruning' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"allocator.pruning.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
