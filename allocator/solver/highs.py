"""HiGHS through pyomo's ``contrib.solver`` interface: typed, validated options, a termination enum, a frozen
report, and an availability check that says why HiGHS is missing."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum

from allocator.errors import InvalidInputError, SolverError

PRESOLVE_CHOICES = ("off", "on", "choose")


class Termination(StrEnum):
    """How a MIP solve ended (the values are what reports and files say)."""

    OPTIMAL = "optimal"  # proven optimal within ``mip_rel_gap``
    TIME_LIMIT = "time_limit"  # stopped at the time limit with an incumbent: not proven optimal
    NO_SOLUTION = "time_limit_no_solution"  # stopped at the time limit with nothing feasible
    INFEASIBLE = "infeasible"  # proven infeasible


@dataclass(frozen=True)
class SolverOptions:
    """Options passed to HiGHS, checked when made.

    Attributes:
        time_limit_s: wall-clock limit of one MIP solve, seconds (> 0).
        mip_rel_gap: relative gap in [0, 1) at which HiGHS stops; 0 where optimality is claimed (its default
            1e-4 accepts non-optimal knapsack answers).
        presolve: ``"off"`` (default), ``"on"`` or ``"choose"``. Off by default: HiGHS presolve can stall for
            minutes on one long dense budget row and ignores the time limit meanwhile.
        threads: HiGHS threads (an integer >= 1).
        certificate_s: seconds the certificate's upper bound may take after the solve (> 0; ``None``: half the
            solve's time so far, 1 s at least); always inside ``time_limit_s`` too. More time lets the relaxed
            decision diagram (``allocator.formulation.upper_bound``) grow wider and the proven gap shrink.

    Raises:
        InvalidInputError: naming the option and what is accepted.
    """

    time_limit_s: float = 60.0
    mip_rel_gap: float = 0.0
    presolve: str = "off"
    threads: int = 1
    certificate_s: float | None = None

    def __post_init__(self) -> None:
        limit = self.time_limit_s
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not (math.isfinite(limit) and limit > 0):
            raise InvalidInputError(f"time limit is {limit!r} s; expected a positive number of seconds")
        gap = self.mip_rel_gap
        if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not 0.0 <= gap < 1.0:
            raise InvalidInputError(f"mip_rel_gap is {gap!r}; expected a relative gap in [0, 1)")
        if self.presolve not in PRESOLVE_CHOICES:
            raise InvalidInputError(f"presolve is {self.presolve!r}; accepted: {', '.join(PRESOLVE_CHOICES)}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise InvalidInputError(f"threads is {self.threads!r}; expected an integer >= 1")
        share = self.certificate_s
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                                  or not (math.isfinite(share) and share > 0)):
            raise InvalidInputError(f"certificate time is {share!r} s; expected a positive number of seconds")

    def with_time_limit(self, seconds: float) -> "SolverOptions":
        """The same options with another time limit."""
        return replace(self, time_limit_s=seconds)

    def as_dict(self) -> dict[str, object]:
        return {"time_limit_s": self.time_limit_s, "mip_rel_gap": self.mip_rel_gap, "presolve": self.presolve,
                "threads": self.threads, "certificate_s": self.certificate_s}


@dataclass(frozen=True)
class MipReport:
    """What the MIP solves returned.

    Attributes:
        status: how the (first) solve ended.
        objective: surrogate value of the best MIP solution (nats), ``nan`` without one.
        bound: HiGHS's proven upper bound on the surrogate.
        gap: ``(bound - objective) / |objective|``, 0 when proven optimal.
        seconds: wall time of every solve together.
        solutions: MIP solutions collected (the first, then re-solves with no-good cuts).
    """

    status: Termination
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
    base = dict(seconds=seconds, solver_version=".".join(map(str, solver.version() or ())), options=options.as_dict())
    termination = results.termination_condition
    has_solution = results.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
    if termination in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
        return MipReport(Termination.INFEASIBLE, **base)
    if not has_solution:
        if termination == TerminationCondition.maxTimeLimit:
            return MipReport(Termination.NO_SOLUTION, **base)
        raise SolverError(f"HiGHS ended with {termination.name} and no solution")
    if termination == TerminationCondition.convergenceCriteriaSatisfied:
        status = Termination.OPTIMAL
    elif termination == TerminationCondition.maxTimeLimit:
        status = Termination.TIME_LIMIT
    else:
        raise SolverError(f"HiGHS ended with {termination.name}")
    results.solution_loader.load_vars()
    objective = float(results.incumbent_objective)
    bound = float(results.objective_bound) if results.objective_bound is not None else math.nan
    gap = max(0.0, (bound - objective) / max(1e-12, abs(objective))) if math.isfinite(bound) else math.nan
    return MipReport(status, objective=objective, bound=bound, gap=gap, **base)
