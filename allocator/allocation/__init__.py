"""Choosing per-layer densities under a global budget: the MIP, the exact polish, baselines, the record."""

from allocator.allocation.api import allocate
from allocator.allocation.record import Allocation, AllocationStatus, BaselineResult, LayerAllocation
from allocator.allocation.baselines import baseline_names, get_baseline, register_baseline
from allocator.formulation.problem import AllocationProblem, Budget, Constraints, make_budget
from allocator.solver.highs import SolverOptions, Termination, highs_status

__all__ = [
    "Allocation",
    "AllocationStatus",
    "AllocationProblem",
    "BaselineResult",
    "Budget",
    "Constraints",
    "LayerAllocation",
    "SolverOptions",
    "Termination",
    "allocate",
    "baseline_names",
    "get_baseline",
    "highs_status",
    "make_budget",
    "register_baseline",
]
