"""The torch side: describing models, pruning criteria, masks, training and validation (imports torch)."""

from allocator.pruning.criteria import (
    ScoreContext,
    criterion_names,
    global_kept,
    register_criterion,
    scores,
)
from allocator.pruning.baselines import weight_baselines
from allocator.pruning.apply import allocation_counts, apply_allocation
from allocator.pruning.describe import ModelDescription, describe
from allocator.pruning.masks import apply_masks, make_permanent, mask_from_scores, prune_to_counts, verify_counts
from allocator.pruning.finetune.training import TrainConfig, Tensors, evaluate, set_threads, train

__all__ = [
    "ModelDescription",
    "ScoreContext",
    "allocation_counts",
    "apply_allocation",
    "Tensors",
    "TrainConfig",
    "apply_masks",
    "criterion_names",
    "describe",
    "evaluate",
    "global_kept",
    "make_permanent",
    "mask_from_scores",
    "prune_to_counts",
    "register_criterion",
    "scores",
    "set_threads",
    "train",
    "verify_counts",
    "weight_baselines",
]
