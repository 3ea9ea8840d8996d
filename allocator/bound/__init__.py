"""The linear-region bound: rank models and ``E[B]`` (pure numpy; no torch, no pyomo)."""

from allocator.bound.engine import BoundResult, LayerReport, expected_bound, ln_expected_bound
from allocator.bound.rank import RANK_MODELS, RankLaw, RankModel

__all__ = [
    "BoundResult",
    "LayerReport",
    "RANK_MODELS",
    "RankLaw",
    "RankModel",
    "expected_bound",
    "ln_expected_bound",
]
