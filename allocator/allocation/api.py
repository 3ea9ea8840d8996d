"""``allocate``: the one entry verb. It returns an ``Allocation`` record of what was built and proven."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

from allocator.allocation import certificate, pairing
from allocator.allocation.baselines import BaselineRule, BaselineUnavailable, get_baseline
from allocator.allocation.record import Allocation, AllocationStatus, BaselineResult, LayerAllocation
from allocator.allocation.repair import repair
from allocator.allocation.search import IMPROVEMENT_NATS, exhaustive_search, fill, local_search, toward_uniform
from allocator.bound.rank import RankModel
from allocator.bound.uncertainty import ln_bound_standard_error
from allocator.errors import InvalidInputError, SolverError
from allocator.formulation.mip import block_menu, build_model, default_levels
from allocator.formulation.memory import check_memory
from allocator.formulation.distortion import DEFAULT_GUARD_NATS, DistortionCurves, DistortionObjective
from allocator.formulation.objective import DEFAULT_CACHE_BYTES, ExactObjective, surrogate_value
from allocator.formulation.objectives import get_objective
from allocator.formulation.problem import AllocationProblem, Constraints, make_budget
from allocator.formulation.saturation import saturation_density
from allocator.formulation.upper_bound import GOAL_NATS, UpperBound, lagrangian_upper_bound, monotone_in_density
from allocator.allocation.floors import bound_drop_nats, conv_floors
from allocator.bound.conv_law import prepare_rank_tables
from allocator.network import Network
from allocator.solver.highs import MipReport, SolverOptions, Termination, solve

DEFAULT_BASELINES = ("uniform", "uniform-gale", "er", "erk")

Progress = Callable[[str], None]
Start = tuple[str, list[int]]  # (origin, block units)


@dataclass(frozen=True)
class _Decision:
    """What the search settled on: block units, their exact value, where they came from, and what was proven."""

    units: tuple[int, ...]
    value: float
    origin: str
    moves: int
    status: AllocationStatus
    certificate: tuple[str, ...]
    mip: MipReport | None
    starts: tuple[str, ...]
    integer_optimum: float | None = None  # the exact optimum over every integer allocation, where it was enumerated


def allocate(
    network: Network,
    *,
    density: float | None = None,
    sparsity: float | None = None,
    kept: int | None = None,
    compression: float | None = None,
    rank_model: RankModel | str = "binomial",
    constraints: Constraints | None = None,
    objective: str = "bound",
    levels: int | None = None,
    solutions: int = 3,
    solver_options: SolverOptions | None = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    exhaustive_limit: int = 20_000,
    polish_starts: int = 2,
    extra_baselines: Mapping[str, BaselineRule] | None = None,
    raw_baselines: bool = False,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    progress: Progress | None = None,
    conv_floor: float | str | None = "uniform",
    distortion: DistortionCurves | None = None,
    guard_nats: float = DEFAULT_GUARD_NATS,
) -> Allocation:
    """Choose integer kept counts per prunable layer maximising ``objective`` (``ln E[B]``) under a global budget.

    Steps: validate (every infeasibility that arithmetic reveals is raised here, naming the constraint);
    solve the MIP over ``levels`` log-spaced menu levels per block (``allocator.formulation.mip``; default
    ``default_levels``: 100, fewer past 10 blocks: about 1000 binaries in all, more past 100 blocks where the floor of 10 levels holds), re-solving with
    no-good cuts for up to ``solutions`` distinct answers (each re-solve limited to twice the first solve's time;
    none when the first took over ``RESOLVE_FIRST_SOLVE_S``); when the menu has at most ``exhaustive_limit`` budget-feasible combinations, also search it
    exhaustively; fill each answer and the constrained-uniform start to the budget, polish the ``polish_starts``
    best of them with the exact objective (``allocator.allocation.search``), keep the best, then apply the
    tie-break towards uniform. Every baseline is held to the same budget and constraints (its raw counts repaired
    by ``allocator.allocation.repair`` where they break one; ``raw_baselines`` keeps the raw ones too), and each is
    also a start of the polish, so the answer is never below a baseline. ``extra_baselines`` adds rules that are not
    in the registry, such as the weight-based ones of ``allocator.pruning.weight_baselines(model)``. Give exactly one of ``density`` (global,
    over the prunable weights), ``sparsity``, ``kept`` or ``compression``.

    Convolutions inside the bound: the bound is blind to conv pruning above a density of about 0.01 (conv.md), so
    maximising it alone would strip convs to almost nothing. By default (``conv_floor="uniform"``) every prunable
    conv the bound sees keeps at least the budget's global density (its uniform share); a number is a density floor
    for every such conv, ``None`` none. A layer's own ``min_density`` in ``constraints`` wins. The floors applied
    are in ``Allocation.floors``, and ``Allocation.bound_drop_nats`` says per layer how much ``ln E[B]`` falls when
    its kept count is halved (the bound "sees" the layer when it falls at all). The conv rank tables are computed
    (or read from ``rank_model.cache_dir``) before the time limit's clock starts.

    Data objectives (``allocator.formulation.distortion``): ``objective="distortion"`` minimises the measured
    distortion ``sum_l D_l(k_l)`` of ``distortion`` (curves per prunable layer); ``"guarded"`` does so subject to
    ``ln E[B] >= ln E[B]* - guard_nats``, ``ln E[B]*`` the ``bound`` objective's answer at the same budget and
    constraints (solved first, within the same time limit each). ``ln_bound`` stays the answer's exact ``ln E[B]``;
    ``Allocation.objective`` holds the objective's name, value and guard.

    Raises:
        InvalidInputError: bad arguments. InfeasibleError: constraints that cannot hold with the budget.
        SolverError: HiGHS missing or failed.
    """
    say = progress or (lambda message: None)
    model = RankModel(rank_model) if isinstance(rank_model, str) else rank_model
    _check_search_settings(100 if levels is None else levels, solutions, polish_starts)
    rules = [get_baseline(name) for name in baselines] + list((extra_baselines or {}).values())
    options = solver_options or SolverOptions()
    budget = make_budget(network, density=density, sparsity=sparsity, kept=kept, compression=compression)
    constraints, floors = conv_floors(network, budget, constraints or Constraints(), conv_floor)
    problem = AllocationProblem.build(network, budget, model, constraints)
    levels = default_levels(len(problem.blocks)) if levels is None else levels
    prepare_rank_tables(network, model, say)
    started = time.perf_counter()
    check_memory(problem, cache_bytes, levels)
    get_objective(objective)  # an unknown name is refused here, naming the registered ones
    bound_exact = ExactObjective(problem, cache_bytes)
    data_objective = None
    if objective in DATA_OBJECTIVES:
        exact, data_objective = _data_objective(objective, distortion, guard_nats, bound_exact, dict(
            network=network, budget=budget, rank_model=model, constraints=constraints, levels=levels,
            solutions=solutions, solver_options=options, exhaustive_limit=exhaustive_limit,
            polish_starts=polish_starts, cache_bytes=cache_bytes, conv_floor=None), say)
        started = time.perf_counter()
    else:
        exact = get_objective(objective).exact(problem, cache_bytes)
    deadline = started + options.time_limit_s  # the whole call: MIP, exhaustive search, polish, tie-break
    say("baselines")
    baseline_results = {rule.name: _baseline(rule, problem, bound_exact, raw_baselines) for rule in rules}
    baseline_starts = [(f"baseline:{name}", _units_of(problem, result.kept)) for name, result in baseline_results.items()
                       if result.kept is not None]
    if data_objective is not None and "reference_kept" in data_objective:  # guarded: the bound's answer meets the floor
        baseline_starts.append(("bound objective", _units_of(problem, data_objective.pop("reference_kept"))))
    if problem.blocks:
        decision = _decide(problem, exact, levels, solutions, options, exhaustive_limit, polish_starts, say, deadline,
                           baseline_starts, integer_search=data_objective is None and objective == "bound")
    else:
        decision = _Decision((), exact.of_units([]), "fixed", 0, AllocationStatus.FIXED, (certificate.FIXED_SENTENCE,), None, ())
    # the certificate's upper bound gets options.certificate_s, else CERTIFICATE_SHARE of the solve's time so far
    # (1 s at least)
    spent = time.perf_counter() - started
    share = options.certificate_s if options.certificate_s is not None else max(1.0, CERTIFICATE_SHARE * spent)
    extension = max(share, min(CERTIFICATE_GOAL_S, CERTIFICATE_EXTENSION_SHARE * spent))
    left = max(0.0, deadline - time.perf_counter())  # the call's time limit caps both (said as it stands)
    share, extension = min(share, left), min(extension, left)
    if problem.blocks and data_objective is None and decision.integer_optimum is None:
        say(f"certificate: the Lagrangian upper bound (at most {share:.1f} s" + (
            "" if options.certificate_s is not None or share >= extension else
            f", {extension:.1f} s where its gap is then near {GOAL_NATS:g} nats") + ")")
    enumerated = decision.integer_optimum is not None and math.isfinite(decision.value)  # _decide: bound objective,
    # monotone rank model
    # exhaustive_search keeps a later point only when better by IMPROVEMENT_NATS: the maximum is within that of it
    upper = (UpperBound(max(decision.integer_optimum, decision.value) + IMPROVEMENT_NATS, math.nan, 0) if enumerated else
             lagrangian_upper_bound(problem, deadline=min(deadline, time.perf_counter() + share),
                                    focus=problem.kept_per_layer(decision.units),
                                    multiplier_hint=_marginal_nats_per_weight(problem, bound_exact, decision.units),
                                    support=_supporting_multipliers(problem, bound_exact, decision.units),
                                    target=decision.value,
                                    extended_deadline=None if options.certificate_s is not None else
                                    min(deadline, time.perf_counter() + extension))
             if problem.blocks and data_objective is None else None)
    ln_bound = decision.value if data_objective is None else bound_exact.of_units(decision.units)
    caveat = certificate.monte_carlo_sentence(model) if network.is_chain else certificate.program_sentence(
        upper is None and bool(problem.blocks) and data_objective is None,
        monotone_in_density(model))
    if upper is not None:
        caveat = (certificate.integer_optimum_sentence(upper.ln_bound, decision.value) if enumerated else
                  certificate.upper_bound_sentence(upper.ln_bound, decision.value, upper.multiplier, upper.relaxation)) + (
            "; " + caveat if caveat else "")
    stability = (_stability(network, model, problem.kept_per_layer(decision.units), baseline_results)
                 if network.is_chain else None)  # a CNN's conv tables for a fresh seed would cost minutes
    if stability is not None:
        caveat = (caveat + "; " if caveat else "") + certificate.stability_sentence(stability)
    kept_per_layer = problem.kept_per_layer(decision.units)
    if problem.prunable_kept(kept_per_layer) > budget.kept:  # pragma: no cover - guarded by is_feasible
        raise SolverError(f"internal error: allocation keeps {problem.prunable_kept(kept_per_layer)} > budget {budget.kept}")
    return Allocation(
        network=network,
        budget=budget,
        rank_model=model,
        constraints=problem.constraints,
        layers=_layer_records(problem, kept_per_layer),
        ln_bound=ln_bound,
        surrogate_value=surrogate_value(exact, kept_per_layer),
        status=decision.status,
        certificate="; ".join(tuple(_worded(sentence, data_objective) for sentence in decision.certificate)
                              + ((caveat,) if caveat else ())
                              + ((certificate.data_objective_sentence(data_objective, ln_bound),) if data_objective
                                 else ())),
        mip=decision.mip,
        polish={"best_start": decision.origin, "moves": decision.moves, "exact_evaluations": exact.evaluations,
                "starts": list(decision.starts)},
        solve_seconds=time.perf_counter() - started,
        baselines=baseline_results,
        ln_bound_standard_error=ln_bound_standard_error(network, [k / w for k, w in zip(kept_per_layer, network.weights)],
                                                        model, deadline=max(deadline, time.perf_counter() + 0.5)),
        stability=stability,
        saturation_density=(saturation_density(network, model, deadline=max(deadline, time.perf_counter() + 0.5)) if model.name != "structural"
                            and any(p and i in network.bound_layers for i, p in enumerate(network.prunable)) else None),
        bound_drop_nats=bound_drop_nats(problem, bound_exact, kept_per_layer, deadline),
        objective=None if data_objective is None else _objective_record(data_objective, exact, kept_per_layer, ln_bound),
        floors=floors or None,
        upper_bound=None if upper is None else {"ln_bound": upper.ln_bound, "gap_nats": max(0.0, upper.ln_bound - decision.value),
                                                "multiplier": None if enumerated else upper.multiplier,
                                                "method": "exhaustive search over every integer allocation" if enumerated
                                                else f"lagrangian relaxation ({upper.relaxation}), "
                                                     "allocator.formulation.upper_bound"},
    )


DATA_OBJECTIVES = ("distortion", "guarded")


def _data_objective(name: str, curves: DistortionCurves | None, guard_nats: float, bound_exact: ExactObjective,
                    bound_args: dict, say: Progress) -> tuple[DistortionObjective, dict[str, object]]:
    """The evaluator of a data objective and what its record says (for ``guarded``: after solving the ``bound``
    objective at the same budget and constraints, whose answer sets the floor)."""
    if curves is None:
        raise InvalidInputError(f"objective {name!r} needs distortion curves: allocate(..., distortion=curves), or "
                                f"allocator solve --objective {name} --model M --dataset D")
    if isinstance(guard_nats, bool) or not isinstance(guard_nats, (int, float)) or not (
            math.isfinite(guard_nats) and guard_nats >= 0):
        raise InvalidInputError(f"guard is {guard_nats!r} nats; expected a number >= 0")
    problem = bound_exact.problem
    details: dict[str, object] = {"name": name, "calibration_size": curves.calibration_size, "seed": curves.seed,
                                  "source": curves.source}
    if name == "distortion":
        return DistortionObjective(problem, curves, bound_exact), details
    say("guarded: first the bound objective's answer at this budget (it sets the floor)")
    budget = bound_args.pop("budget")
    reference = allocate(**bound_args, kept=budget.kept, baselines=())
    menu_best = reference.mip.objective if reference.mip is not None and math.isfinite(reference.mip.objective) else None
    details.update(guard_nats=float(guard_nats), bound_optimum=reference.ln_bound,
                   ln_floor=reference.ln_bound - guard_nats, bound_status=str(reference.status),
                   reference_kept=reference.kept)
    return DistortionObjective(problem, curves, bound_exact, reference.ln_bound - guard_nats,
                               None if menu_best is None else menu_best - guard_nats), details


def _worded(sentence: str, data_objective: dict | None) -> str:
    """A search sentence said of the data objective when it is the one searched (the sentences name ln E[B])."""
    if data_objective is None:
        return sentence
    guard = " (the guard held on the bound's surrogate, not the exact bound)" if "ln_floor" in data_objective else ""
    for said, meant in (("the surrogate's optimum", f"the objective's optimum{guard}"),
                        ("exact ln E[B] optimal over the menu", "the exact objective optimal over the menu"),
                        ("local search with the true ln E[B]", "local search with the exact objective")):
        sentence = sentence.replace(said, meant)
    return sentence


def _objective_record(details: dict[str, object], exact: DistortionObjective, kept: Sequence[int],
                      ln_bound: float) -> dict[str, object]:
    record = dict(details)
    record["distortion"] = exact.distortion(kept)
    if "ln_floor" in record:
        record["guard_met"] = bool(ln_bound >= float(record["ln_floor"]) - 1e-9)  # type: ignore[arg-type]
    return record


def _stability(network: Network, model: RankModel, kept: Sequence[int],
               baselines: Mapping[str, BaselineResult]) -> dict[str, object] | None:
    """Under a Monte-Carlo rank model: ours against each baseline, re-estimated on fresh masks (the next seed), with
    the standard error of the difference (the two standard errors added in quadrature). The estimate that chose
    ours is biased towards it; fresh masks are not."""
    if model.name != "structural":
        return None
    from dataclasses import replace as replaced

    from allocator.bound.engine import ln_expected_bound

    fresh = replaced(model, seed=model.seed + 1)

    def value(counts: Sequence[int]) -> tuple[float, float]:
        densities = [k / w for k, w in zip(counts, network.weights)]
        return ln_expected_bound(network, densities, fresh), ln_bound_standard_error(network, densities, fresh) or 0.0

    ours, ours_error = value(kept)
    against = {}
    for name, result in baselines.items():
        if result.kept is None:
            continue
        theirs, their_error = value(result.kept)
        error = math.hypot(ours_error, their_error)
        against[name] = {"advantage_nats": ours - theirs, "standard_error_nats": error,
                         "resolved": abs(ours - theirs) > 2 * error}
    return {"fresh_seed": fresh.seed, "ln_bound": ours, "standard_error_nats": ours_error, "against": against}


def _marginal_nats_per_weight(problem: AllocationProblem, exact: ExactObjective, units: Sequence[int]) -> float | None:
    """The median over free layers of ``ln E[B]`` gained by one more kept weight at ``units`` (chains only: one
    adjoint pass, ``ExactObjective.single_changes``); the Lagrangian bound's first multiplier to try."""
    if any(block.is_tied for block in problem.blocks):
        return None
    kept = problem.kept_per_layer(units)
    layers = [block.members[0] for block, value in zip(problem.blocks, units) if value < block.hi]
    values = exact.single_changes(kept, [(layer, kept[layer] + 1) for layer in layers]) if layers else None
    if not values:
        return None
    base = exact.of_kept(kept)
    gains = sorted(max(0.0, value - base) for value in values)
    return gains[len(gains) // 2]  # the bound ignores a hint below its HINT_FLOOR (a saturated bound's noise)


def _supporting_multipliers(problem: AllocationProblem, exact: ExactObjective,
                            units: Sequence[int]) -> tuple[float, float] | None:
    """``(g, q)``: ``g = max_l [ln E[B](x + e_l) - ln E[B](x)]`` over the free layers that can keep one more, ``q =
    min_l [ln E[B](x) - ln E[B](x - e_l)]`` over those that can keep one fewer (nats per weight, at the answer ``x``;
    chains without tied layers only: two adjoint passes, ``ExactObjective.single_changes``). For every ``lambda`` in
    ``[g, q]`` no single layer's change of one weight raises ``ln E[B](x) - lambda sum_l x_l``: where the Lagrangian
    dual has no gap its least multiplier is one at which the optimum maximises that function, so it lies in the
    optimum's own interval; the relaxed decision diagram's search starts there (``upper_bound._diagram_at``).
    ``None`` where either side has no layer (every layer at a bound) or a value is not finite."""
    if any(block.is_tied for block in problem.blocks):
        return None
    kept = problem.kept_per_layer(units)
    pairs = list(zip(problem.blocks, units))
    ups = [block.members[0] for block, value in pairs if value < block.hi]
    downs = [block.members[0] for block, value in pairs if value > block.lo]
    if not ups or not downs:
        return None
    raised = exact.single_changes(kept, [(layer, kept[layer] + 1) for layer in ups])
    lowered = exact.single_changes(kept, [(layer, kept[layer] - 1) for layer in downs])
    if raised is None or lowered is None:
        return None
    base = exact.of_kept(kept)
    gain = max(value - base for value in raised)
    loss = min(base - value for value in lowered)
    if not (math.isfinite(gain) and math.isfinite(loss)):
        return None
    return gain, loss


#: The certificate's default time: this fraction of the solve's time before it (1 s at least);
#: ``SolverOptions.certificate_s`` sets it instead. A quarter was tried: at 784-100x50-10 (0.001) no diagram then
#: finished and the gap rose from 0.049 to 0.56 nats, at 3072-1000x50-10 (0.0001) the multiplier's search was cut.
CERTIFICATE_SHARE = 0.5
#: Where the gap after that share is above the goal (``upper_bound.GOAL_NATS``) but within ``REACH_NATS``, the
#: diagram's search goes on up to ``CERTIFICATE_EXTENSION_SHARE`` times the solve's time, at most
#: ``CERTIFICATE_GOAL_S`` seconds of certificate in all (not where ``certificate_s`` is set). 784-100x200-10 at
#: 0.001 (solve about 12 s): 0.18 nats after the share (width 32), 0.0017 with 16 s (width 128 at the answer's
#: supporting multiplier, 25 s in all; session 15); session 12 had 8 s and no cap by the solve's time.
CERTIFICATE_GOAL_S = 16.0
CERTIFICATE_EXTENSION_SHARE = 2.0
#: The meet-in-the-middle enumeration (``allocator.allocation.pairing``) runs where its estimate is at most this, s.
PAIRING_SECONDS = 2.0
#: Re-solves (extra polish starts) only after a first MIP solve faster than this, seconds.
RESOLVE_FIRST_SOLVE_S = 1.0


def _check_search_settings(levels: int, solutions: int, polish_starts: int) -> None:
    for label, value, least, meaning in (("levels", levels, 2, " (menu levels per layer)"),
                                          ("solutions", solutions, 1, ""), ("polish_starts", polish_starts, 1, "")):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidInputError(f"{label} is {value!r}; expected an integer >= {least}{meaning}")


def _decide(problem: AllocationProblem, exact: ExactObjective, levels: int, solutions: int, options: SolverOptions,
            exhaustive_limit: int, polish_starts: int, say: Progress, deadline: float,
            baseline_starts: Sequence[Start] = (), integer_search: bool = False) -> _Decision:
    """MIP answers, the exhaustive menu optimum where the menu is small, exact polish, tie-break; all within the
    ``deadline`` (on expiry: the best allocation so far, marked ``time_limit``, and the certificate says where)."""
    starts: list[Start] = [("uniform", fill(problem, [b.lo for b in problem.blocks]))]
    mip, mip_starts = _solve_mip(problem, exact, levels, solutions, options, say, deadline)
    starts += mip_starts
    proven = [certificate.mip_sentence(mip, levels, options)]
    menus = [block_menu(problem, block, levels) for block in problem.blocks]
    menu_points = math.prod(len(m) for m in menus[:-1])
    # the search gives the last block what is left: optimal only for ln E[B] under a monotone rank model (a measured
    # distortion need not be monotone)
    integers = _integer_grids(problem) if integer_search and monotone_in_density(problem.rank_model) else None
    integer_points = math.prod(len(g) for g in integers[:-1]) if integers is not None else math.inf
    integer_optimum = None
    if integer_points <= exhaustive_limit:  # few layers and a small budget: every integer allocation, not the menu
        clock = time.perf_counter()
        exact.of_units(starts[0][1])
        if clock + (time.perf_counter() - clock) * integer_points < deadline:
            say(f"exhaustive search over every integer allocation ({integer_points} points)")
            units, integer_optimum, points = exhaustive_search(problem, exact, integers, limit=exhaustive_limit)
            starts.append(("exhaustive", units))
            proven.append(certificate.integer_exhaustive_sentence(points))
            menu_points = math.inf  # the menu's search adds nothing
    elif integers is not None:  # more points: the meet-in-the-middle pairing values them all, where it is cheap
        chosen = pairing.plan(problem)
        seconds = math.inf
        if chosen is not None and chosen.seconds <= PAIRING_SECONDS:
            clock = time.perf_counter()  # what one new rank law costs here (Monte-Carlo laws: ~1e4 x the binomial's)
            exact.law(problem.blocks[0].members[0], (problem.blocks[0].lo + problem.blocks[0].hi) // 2 + 1)
            seconds = chosen.seconds + chosen.laws * (time.perf_counter() - clock)
        if chosen is not None and seconds <= PAIRING_SECONDS and time.perf_counter() + seconds < deadline:
            say(f"meet in the middle over every whole-budget integer allocation ({chosen.allocations} allocations)")
            found = pairing.integer_optimum(problem, exact, chosen, deadline=deadline)
            if found is not None:
                units, integer_optimum, points = found
                starts.append(("exhaustive", units))
                proven.append(certificate.integer_pairing_sentence(points))
                menu_points = math.inf
    if menu_points <= exhaustive_limit:
        clock = time.perf_counter()
        exact.of_units(starts[0][1])
        needed = (time.perf_counter() - clock) * menu_points  # one evaluation per point, about
        if clock + needed < deadline:
            say(f"exhaustive search over the menu ({menu_points} points)")
            units, _, points = exhaustive_search(problem, exact, menus, limit=exhaustive_limit)
            starts.append(("exhaustive", units))
            proven.append(certificate.exhaustive_sentence(points))
        else:
            proven.append(certificate.exhaustive_skipped_sentence(menu_points, needed))
    starts += list(baseline_starts)  # last: on a tie in value the earlier starts are kept
    units, value, origin, moves, timed_out = _polish(problem, exact, starts, polish_starts, say, deadline)
    say("tie-break towards uniform density (within 1e-9 nats)")
    final_units, final_value = toward_uniform(problem, exact, units, deadline=deadline)
    timed_out = timed_out or time.perf_counter() > deadline
    proven.append(certificate.polish_timed_out_sentence(options.time_limit_s, moves) if timed_out
                  else certificate.POLISH_SENTENCE if integer_optimum is None else certificate.POLISH_FROM_OPTIMUM)
    status = AllocationStatus(str(mip.status))
    if timed_out and status == AllocationStatus.OPTIMAL:
        status = AllocationStatus.TIME_LIMIT
    return _Decision(tuple(final_units), final_value, origin, moves, status,
                     tuple(p for p in proven if p), mip, tuple(origin for origin, _ in starts), integer_optimum)


def _integer_grids(problem: AllocationProblem) -> list[range] | None:
    """Every integer count each block can take with the budget (its range capped at its floor plus what the budget
    leaves after every block's floor), for ``exhaustive_search``; ``None`` where a block is a tied group (its units
    are not its members' counts)."""
    if any(block.is_tied for block in problem.blocks):
        return None
    slack = problem.budget.kept - problem.fixed_prunable_kept - sum(block.lo for block in problem.blocks)
    return [range(block.lo, min(block.hi, block.lo + max(0, slack)) + 1) for block in problem.blocks]


def _polish(problem: AllocationProblem, exact: ExactObjective, starts: Sequence[Start], polish_starts: int,
            say: Progress, deadline: float) -> tuple[list[int], float, str, int, bool]:
    """Fill every start to the budget, local-search the best ``polish_starts`` of them (until ``deadline``); the
    best result, and whether the deadline cut the search short."""
    filled = sorted(((exact.of_units(fill(problem, start)), origin, fill(problem, start)) for origin, start in starts),
                    key=lambda item: -item[0])
    say(f"exact polish from the best {min(polish_starts, len(filled))} of {len(filled)} starts")
    best: tuple[list[int], float, str, int] | None = None
    timed_out = False
    for _, origin, start in filled[:polish_starts]:
        if best is not None and time.perf_counter() > deadline:
            timed_out = True
            break
        units, value, stats = local_search(problem, exact, start, deadline=deadline, report=say)
        timed_out = timed_out or stats.timed_out
        if best is None or value > best[1] + 1e-12:
            best = (units, value, origin, stats.moves)
    return (*best, timed_out)  # type: ignore[return-value]


def _solve_mip(problem: AllocationProblem, exact: ExactObjective, levels: int, solutions: int,
               options: SolverOptions, say: Progress, deadline: float) -> tuple[MipReport, list[Start]]:
    """The first MIP solve and up to ``solutions - 1`` re-solves with no-good cuts; the report (times of all
    solves together) and each solution's block units as a polish start."""
    say(f"building the MIP ({len(problem.blocks)} blocks x up to {levels} levels)")
    build_start = time.perf_counter()
    built = build_model(problem, exact, levels)
    build_seconds = time.perf_counter() - build_start
    first: MipReport | None = None
    total_seconds = 0.0
    starts: list[Start] = []
    for index in range(solutions):
        remaining = max(0.05, min(options.time_limit_s, deadline - time.perf_counter()))
        if first is not None:  # re-solves only add polish starts: each gets twice the first solve's time, and
            if first.seconds > RESOLVE_FIRST_SOLVE_S:  # none after a slow first solve (deep networks: the polish
                break                                  # from the first answer and the baselines does as well)
            remaining = min(deadline - time.perf_counter(), max(0.5, 2.0 * first.seconds))
            if remaining <= 0.05:
                break
        say(f"solving the MIP with HiGHS (solution {index + 1} of up to {solutions})")
        report = solve(built.model, options.with_time_limit(remaining))
        total_seconds += report.seconds
        first = first or report
        if report.status not in (Termination.OPTIMAL, Termination.TIME_LIMIT):
            break
        levels_chosen = built.chosen_levels()
        starts.append((f"mip-{index + 1}", list(built.chosen_units())))
        if report.status == Termination.TIME_LIMIT:
            break
        built.exclude(levels_chosen)
    assert first is not None  # the loop runs at least once (solutions >= 1)
    return replace(first, seconds=total_seconds, build_seconds=build_seconds, binaries=built.binaries,
                   solutions=len(starts), first_solve_seconds=first.seconds, options=options.as_dict()), starts


def _layer_records(problem: AllocationProblem, kept_per_layer: Sequence[int]) -> tuple[LayerAllocation, ...]:
    network = problem.network
    tied_group = {m: g for g, block in enumerate(b for b in problem.blocks if b.is_tied) for m in block.members}
    pinned_names = set(problem.constraints.pinned)
    return tuple(
        LayerAllocation(name=name, rows=rows, cols=cols, weights=rows * cols, kept=kept_per_layer[i],
                        prunable=network.prunable[i], pinned=name in pinned_names, tied_group=tied_group.get(i))
        for i, (name, (rows, cols)) in enumerate(zip(network.names, network.shapes))
    )


def _baseline(rule: BaselineRule, problem: AllocationProblem, exact: ExactObjective, keep_raw: bool) -> BaselineResult:
    """The rule's counts, repaired to the problem's constraints where they break one, and their exact value."""
    try:
        raw = tuple(rule.kept(problem))
    except BaselineUnavailable as reason:
        return BaselineResult(rule.name, rule.description, None, None, str(reason))
    kept = repair(problem, raw)
    repaired = kept != raw
    raw_value = exact.of_kept(raw) if keep_raw and repaired else None
    return BaselineResult(rule.name, rule.description, kept, exact.of_kept(kept), repaired=repaired,
                          raw_kept=raw if keep_raw and repaired else None, raw_ln_bound=raw_value)


def _units_of(problem: AllocationProblem, kept: Sequence[int]) -> list[int]:
    """Block units of kept counts per layer (a tied group's: its members' total)."""
    return [sum(kept[m] for m in block.members) for block in problem.blocks]
