"""``allocate``: the one entry verb. It returns an ``Allocation`` record of what was built and proven."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from allocator.allocation.baselines import BaselineRule, BaselineUnavailable, get_baseline
from allocator.formulation.mip import block_menu, build_model
from allocator.formulation.objective import ExactObjective, surrogate_value
from allocator.allocation.search import exhaustive_search, fill, local_search, toward_uniform
from allocator.formulation.problem import AllocationProblem, Budget, Constraints, make_budget
from allocator.solver.highs import (
    STATUS_NO_SOLUTION,
    STATUS_OPTIMAL,
    STATUS_TIME_LIMIT,
    MipReport,
    SolverOptions,
    solve,
)
from allocator.bound.rank import RankModel
from allocator.errors import InvalidInputError, SolverError
from allocator.network import Network

DEFAULT_BASELINES = ("uniform", "uniform-gale", "er", "erk")


@dataclass(frozen=True)
class LayerAllocation:
    """One weight layer of an allocation."""

    name: str
    rows: int
    cols: int
    weights: int
    kept: int
    prunable: bool
    pinned: bool
    tied_group: int | None

    @property
    def density(self) -> float:
        """``kept / weights``."""
        return self.kept / self.weights

    @property
    def sparsity(self) -> float:
        """``1 - density``."""
        return 1.0 - self.density


@dataclass(frozen=True)
class BaselineResult:
    """A baseline under the same budget: its kept counts and exact ``ln E[B]``, or why it is unavailable."""

    name: str
    description: str
    kept: tuple[int, ...] | None
    ln_bound: float | None
    unavailable: str | None = None


@dataclass(frozen=True)
class Allocation:
    """The answer: an integer kept count per weight layer, its exact bound, and how it was found.

    Attributes:
        layers: per weight layer, in network order (non-prunable layers at all their weights).
        ln_bound: exact ``ln E[B]`` (nats) of this allocation under ``rank_model``.
        surrogate_value: the MIP's surrogate at this allocation (nats).
        status: ``optimal`` (the MIP proved its surrogate optimal over the menu), ``time_limit`` (best
            found when the time ran out: not proven), ``exhaustive`` (no MIP needed), or ``fixed``.
        certificate: in words, what was proven and what was not.
        mip: the MIP report (status, gap, objective, bound, times); ``None`` when no MIP ran.
        baselines: name -> ``BaselineResult``, computed under the same budget.
    """

    network: Network
    budget: Budget
    rank_model: RankModel
    constraints: Constraints
    layers: tuple[LayerAllocation, ...]
    ln_bound: float
    surrogate_value: float
    status: str
    certificate: str
    mip: MipReport | None
    polish: dict[str, object]
    solve_seconds: float
    baselines: dict[str, BaselineResult] = field(default_factory=dict)

    @property
    def kept(self) -> tuple[int, ...]:
        """Kept count per weight layer."""
        return tuple(layer.kept for layer in self.layers)

    @property
    def densities(self) -> tuple[float, ...]:
        """Density per weight layer, derived from the kept counts."""
        return tuple(layer.density for layer in self.layers)

    @property
    def kept_total(self) -> int:
        """Kept weights over the prunable layers (what the budget bounds)."""
        return sum(layer.kept for layer in self.layers if layer.prunable)


Progress = Callable[[str], None]


def allocate(
    network: Network,
    *,
    density: float | None = None,
    sparsity: float | None = None,
    kept: int | None = None,
    compression: float | None = None,
    rank_model: RankModel | str = "binomial",
    constraints: Constraints | None = None,
    levels: int = 100,
    solutions: int = 3,
    solver_options: SolverOptions | None = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    exhaustive_limit: int = 20_000,
    polish_starts: int = 2,
    extra_baselines: Mapping[str, BaselineRule] | None = None,
    progress: Progress | None = None,
) -> Allocation:
    """Choose integer kept counts per prunable layer maximising ``ln E[B]`` under a global budget.

    Steps: validate (every infeasibility that arithmetic reveals is raised here, naming the constraint);
    solve the MIP over ``levels`` log-spaced menu levels per block (``allocator.formulation.mip``),
    re-solving with no-good cuts for up to ``solutions`` distinct answers (each re-solve limited to twice
    the first solve's time); fill each answer and the constrained-uniform start to the budget, and polish
    the ``polish_starts`` best of them with the exact objective (``allocator.allocation.search``); when the menu has
    at most ``exhaustive_limit`` budget-feasible combinations, also search it exhaustively; keep the best,
    then apply the tie-break towards uniform. ``extra_baselines`` adds rules that are not in the registry,
such as the weight-based ones of ``allocator.pruning.weight_baselines(model)``. Give exactly one of ``density`` (global, over the prunable
    weights), ``sparsity``, ``kept`` or ``compression``.

    Raises:
        InvalidInputError: bad arguments. InfeasibleError: constraints that cannot hold with the budget.
        SolverError: HiGHS missing or failed.
    """
    started = time.perf_counter()
    say = progress or (lambda message: None)
    model = RankModel(rank_model) if isinstance(rank_model, str) else rank_model
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise InvalidInputError(f"levels is {levels!r}; expected an integer >= 2 (menu levels per layer)")
    if isinstance(solutions, bool) or not isinstance(solutions, int) or solutions < 1:
        raise InvalidInputError(f"solutions is {solutions!r}; expected an integer >= 1")
    if isinstance(polish_starts, bool) or not isinstance(polish_starts, int) or polish_starts < 1:
        raise InvalidInputError(f"polish_starts is {polish_starts!r}; expected an integer >= 1")
    rules = [get_baseline(name) for name in baselines] + list((extra_baselines or {}).values())
    options = solver_options or SolverOptions()
    if not options.time_limit_s > 0:
        raise InvalidInputError(f"time limit is {options.time_limit_s!r} s; expected a positive number of seconds")
    budget = make_budget(network, density=density, sparsity=sparsity, kept=kept, compression=compression)
    problem = AllocationProblem.build(network, budget, model, constraints)
    objective = ExactObjective(problem)

    mip: MipReport | None = None
    starts: list[tuple[str, list[int]]] = []
    certificate_parts: list[str] = []
    status = "fixed"
    if problem.blocks:
        uniform_start = fill(problem, [b.lo for b in problem.blocks])
        starts.append(("uniform", uniform_start))
        mip = _solve_mip(problem, objective, levels, solutions, options, say, starts)
        status = {STATUS_OPTIMAL: "optimal", STATUS_TIME_LIMIT: "time_limit"}.get(mip.status, mip.status)
        if mip.status == STATUS_OPTIMAL:
            certificate_parts.append(
                f"MIP: the surrogate's optimum over the {levels}-level menu is proven (relative gap "
                f"{mip.gap:.2g}, tolerance {options.mip_rel_gap:g})"
            )
        elif mip.status in (STATUS_TIME_LIMIT, STATUS_NO_SOLUTION):
            certificate_parts.append(
                f"MIP stopped at the time limit ({options.time_limit_s:g} s) with "
                + ("no solution" if mip.status == STATUS_NO_SOLUTION else f"relative gap {mip.gap:.3g}")
                + ": NOT proven optimal; this is the best allocation found"
            )
        elif mip.status == "infeasible":
            certificate_parts.append(
                "MIP: no combination of menu levels meets the budget and constraints; the answer starts from the "
                "constrained-uniform allocation"
            )
        menus = [block_menu(problem, block, levels) for block in problem.blocks]
        menu_points = math.prod(len(m) for m in menus[:-1])
        if menu_points <= exhaustive_limit:
            say(f"exhaustive search over the menu ({menu_points} points)")
            units, _, points = exhaustive_search(problem, objective, menus, limit=exhaustive_limit)
            starts.append(("exhaustive", units))
            certificate_parts.append(
                f"exact ln E[B] optimal over the menu by exhaustive search ({points} feasible points)"
            )
        filled = sorted(
            ((objective.of_units(fill(problem, start)), origin, fill(problem, start)) for origin, start in starts),
            key=lambda item: -item[0],
        )
        say(f"exact polish from the best {min(polish_starts, len(filled))} of {len(filled)} starts")
        best_units, best_value, best_origin, moves = None, -math.inf, "", 0
        for _, origin, start in filled[:polish_starts]:
            units, value, stats = local_search(problem, objective, start)
            if best_units is None or value > best_value + 1e-12:
                best_units, best_value, best_origin, moves = units, value, origin, stats.moves
        final_units, final_value = toward_uniform(problem, objective, best_units)  # type: ignore[arg-type]
        certificate_parts.append(
            "exact polish: local search with the true ln E[B] (a local optimum under pairwise moves, not proven "
            "global)"
        )
        units_final = final_units
    else:
        units_final, final_value, best_origin, moves = [], objective.of_units([]), "fixed", 0
        certificate_parts.append("every prunable layer is pinned: nothing to decide")
    if model.name == "structural":
        certificate_parts.append(
            f"ln E[B] under the structural rank model is a Monte-Carlo estimate from {model.samples} masks per "
            f"layer and density (common random numbers, seed {model.seed}); the value of the chosen allocation "
            f"is biased upward by the selection, so re-evaluate it with another seed before quoting it"
        )
    kept_per_layer = problem.kept_per_layer(units_final)
    if problem.prunable_kept(kept_per_layer) > budget.kept:  # pragma: no cover - guarded by is_feasible
        raise SolverError(f"internal error: allocation keeps {problem.prunable_kept(kept_per_layer)} > budget {budget.kept}")

    tied_group = {m: g for g, block in enumerate(b for b in problem.blocks if b.is_tied) for m in block.members}
    pinned_names = set(problem.constraints.pinned)
    layers = tuple(
        LayerAllocation(
            name=name, rows=rows, cols=cols, weights=rows * cols, kept=kept_per_layer[i],
            prunable=network.prunable[i], pinned=name in pinned_names, tied_group=tied_group.get(i),
        )
        for i, (name, (rows, cols)) in enumerate(zip(network.names, network.shapes))
    )
    say("baselines")
    baseline_results = {rule.name: _baseline(rule, problem, objective) for rule in rules}
    return Allocation(
        network=network,
        budget=budget,
        rank_model=model,
        constraints=problem.constraints,
        layers=layers,
        ln_bound=final_value,
        surrogate_value=surrogate_value(objective, kept_per_layer),
        status=status,
        certificate="; ".join(certificate_parts),
        mip=mip,
        polish={"best_start": best_origin, "moves": moves, "exact_evaluations": objective.evaluations,
                "starts": [origin for origin, _ in starts]},
        solve_seconds=time.perf_counter() - started,
        baselines=baseline_results,
    )


def _solve_mip(
    problem: AllocationProblem,
    objective: ExactObjective,
    levels: int,
    solutions: int,
    options: SolverOptions,
    say: Progress,
    starts: list[tuple[str, list[int]]],
) -> MipReport:
    say(f"building the MIP ({len(problem.blocks)} blocks x up to {levels} levels)")
    build_start = time.perf_counter()
    built = build_model(problem, objective, levels)
    build_seconds = time.perf_counter() - build_start
    deadline = time.perf_counter() + options.time_limit_s
    first: MipReport | None = None
    total_seconds = 0.0
    for index in range(solutions):
        remaining = options.time_limit_s
        if first is not None:  # re-solves only add polish starts: each gets twice the first solve's time
            remaining = min(deadline - time.perf_counter(), max(0.5, 2.0 * first.seconds))
            if remaining <= 0.05:
                break
        say(f"solving the MIP with HiGHS (solution {index + 1} of up to {solutions})")
        report = solve(built.model, SolverOptions(remaining, options.mip_rel_gap, options.presolve, options.threads))
        total_seconds += report.seconds
        if first is None:
            first = report
        if report.status not in (STATUS_OPTIMAL, STATUS_TIME_LIMIT):
            break
        levels_chosen = built.chosen_levels()
        starts.append((f"mip-{index + 1}", list(built.chosen_units())))
        if report.status == STATUS_TIME_LIMIT:
            break
        built.exclude(levels_chosen)
    assert first is not None
    first_seconds = first.seconds
    first.seconds = total_seconds
    first.build_seconds = build_seconds
    first.binaries = built.binaries
    first.solutions = sum(1 for origin, _ in starts if origin.startswith("mip-"))
    first.first_solve_seconds = first_seconds
    return first


def _baseline(rule, problem: AllocationProblem, objective: ExactObjective) -> BaselineResult:
    try:
        kept = rule.kept(problem)
    except BaselineUnavailable as reason:
        return BaselineResult(rule.name, rule.description, None, None, str(reason))
    return BaselineResult(rule.name, rule.description, tuple(kept), objective.of_kept(kept))
