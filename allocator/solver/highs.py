"""HiGHS through pyomo's ``contrib.solver`` interface: typed options, a documented result, availability."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from allocator.errors import SolverError

#: Terminations the report distinguishes.
STATUS_OPTIMAL = "optimal"  # proven optimal within ``mip_rel_gap``
STATUS_TIME_LIMIT = "time_limit"  # stopped at the time limit with an incumbent: not proven optimal
STATUS_NO_SOLUTION = "time_limit_no_solution"  # stopped at the time limit with nothing feasible
STATUS_INFEASIBLE = "infeasible"


@dataclass(frozen=True)
class SolverOptions:
    """Options passed to HiGHS.

    Attributes:
        time_limit_s: wall-clock limit of one MIP solve, seconds.
        mip_rel_gap: relative gap at which HiGHS stops; 0 where optimality is claimed (its default 1e-4
            accepts non-optimal knapsack answers).
        presolve: ``"off"`` by default: HiGHS presolve can stall for minutes on one long dense budget row
            and ignores the time limit meanwhile.
        threads: HiGHS threads.
    """

    time_limit_s: float = 60.0
    mip_rel_gap: float = 0.0
    presolve: str = "off"
    threads: int = 1

    def as_dict(self) -> dict[str, object]:
        return {"time_limit_s": self.time_limit_s, "mip_rel_gap": self.mip_rel_gap, "presolve": self.presolve,
                "threads": self.threads}


@dataclass
class MipReport:
    """What the MIP solves returned.

    Attributes:
        status: one of ``optimal``, ``time_limit``, ``time_limit_no_solution``, ``infeasible``.
        objective: surrogate value of the best MIP solution (nats), ``nan`` without one.
        bound: HiGHS's proven upper bound on the surrogate.
        gap: ``(bound - objective) / |objective|``, 0 when proven optimal.
        seconds: wall time of every solve together.
        solutions: MIP solutions collected (the first, then re-solves with no-good cuts).
    """

    status: str
    objective: float = math.nan
    bound: float = math.nan
    gap: float = math.nan
    seconds: float = 0.0
    solutions: int = 0
    solver: str = "highs"
    solver_version: str = ""
    options: dict[str, object] = field(default_factory=dict)
    build_seconds: float = 0.0
    first_solve_seconds: float = 0.0
    binaries: int = 0


def highs_status() -> tuple[bool, str]:
    """Whether HiGHS is usable through pyomo, and why not when it is not."""
    try:
        from pyomo.contrib.solver.common.factory import SolverFactory
    except ImportError as error:  # pragma: no cover - pyomo is a dependency
        return False, f"pyomo is not importable: {error}"
    try:
        solver = SolverFactory("highs")
        available = solver.available()
    except Exception as error:  # pragma: no cover - depends on the installation
        return False, f"pyomo's highs interface failed: {error}"
    if not available:
        return False, f"pyomo reports HiGHS as {available}; install highspy (pip install highspy)"
    return True, "available"


def solve(model: object, options: SolverOptions) -> MipReport:
    """Solve ``model`` once with HiGHS and load the solution into it when there is one.

    Raises:
        SolverError: HiGHS is missing or failed without a usable answer.
    """
    from pyomo.contrib.solver.common.factory import SolverFactory
    from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

    available, reason = highs_status()
    if not available:
        raise SolverError(f"HiGHS is not available: {reason}")
    solver = SolverFactory("highs")
    start = time.perf_counter()
    try:
        results = solver.solve(
            model,
            time_limit=options.time_limit_s,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            solver_options={"mip_rel_gap": options.mip_rel_gap, "presolve": options.presolve,
                            "threads": options.threads, "output_flag": False},
        )
    except Exception as error:
        raise SolverError(f"HiGHS failed: {error}") from error
    seconds = time.perf_counter() - start
    version = ".".join(map(str, solver.version() or ()))
    termination = results.termination_condition
    has_solution = results.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
    report = MipReport(status="", seconds=seconds, solver_version=version, options=options.as_dict())
    if termination in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
        report.status = STATUS_INFEASIBLE
        return report
    if not has_solution:
        if termination == TerminationCondition.maxTimeLimit:
            report.status = STATUS_NO_SOLUTION
            return report
        raise SolverError(f"HiGHS ended with {termination.name} and no solution")
    results.solution_loader.load_vars()
    report.objective = float(results.incumbent_objective)
    bound = results.objective_bound
    report.bound = float(bound) if bound is not None else math.nan
    if termination == TerminationCondition.convergenceCriteriaSatisfied:
        report.status = STATUS_OPTIMAL
    elif termination == TerminationCondition.maxTimeLimit:
        report.status = STATUS_TIME_LIMIT
    else:
        raise SolverError(f"HiGHS ended with {termination.name}")
    if math.isfinite(report.bound):
        report.gap = max(0.0, (report.bound - report.objective) / max(1e-12, abs(report.objective)))
    return report
