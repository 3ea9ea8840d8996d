"""The allocation problem and its symbolic model: validated problem, exact objective and surrogate, the MIP."""

from allocator.formulation.problem import AllocationProblem, Block, Budget, Constraints, make_budget

__all__ = ["AllocationProblem", "Block", "Budget", "Constraints", "make_budget"]
