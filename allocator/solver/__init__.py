"""The MIP solver: HiGHS through pyomo's ``contrib.solver`` interface (typed options, a report, availability)."""

from allocator.solver.highs import MipReport, SolverOptions, Termination, highs_status, solve

__all__ = ["MipReport", "SolverOptions", "Termination", "highs_status", "solve"]
