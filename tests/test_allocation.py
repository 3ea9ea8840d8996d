"""allocate() against independent oracles: exhaustive search with the exact objective, arithmetic checks."""

import math

import numpy as np
import pytest

from allocator import InfeasibleError, InvalidInputError, Network
from allocator.allocation import Constraints, SolverOptions, allocate, make_budget
from allocator.allocation import api as api_module
from allocator.formulation.mip import build_model
from allocator.formulation.objective import ExactObjective, ln_partial_binomial_sums, surrogate_value
from allocator.allocation.search import exhaustive_search, grid_for
from allocator.formulation.problem import AllocationProblem
from allocator.solver.highs import solve
from allocator.bound import RankModel, ln_expected_bound
from allocator.counts import kept_from_density

pytestmark = pytest.mark.solver


def _problem(arch, density, constraints=None, rank_model="binomial"):
    network = Network.from_arch(arch)
    return AllocationProblem.build(network, make_budget(network, density=density), RankModel(rank_model), constraints)


@pytest.mark.parametrize(
    "arch, density",
    [("300,60,40,10", 0.002), ("500,80,30,10", 0.003), ("200,150,60,10", 0.01), ("100,50,50,5", 0.02)],
)
def test_two_layer_allocation_matches_exhaustive_integer_optimum(arch, density):
    """Every integer split of the budget between the two prunable layers, by the exact objective."""
    problem = _problem(arch, density)
    objective = ExactObjective(problem)
    _, best, points = exhaustive_search(problem, objective)  # all integers of the first block
    result = allocate(problem.network, density=density, baselines=("uniform",))
    assert points > 10
    assert result.ln_bound >= best - 0.01
    assert result.ln_bound <= best + 1e-9  # nothing beats the exhaustive optimum
    assert result.ln_bound >= result.baselines["uniform"].ln_bound - 1e-12
    assert result.kept_total == problem.budget.kept  # the budget is used exactly
    # The record's bound is the exact bound of its densities, recomputed independently.
    assert ln_expected_bound(problem.network, result.densities) == pytest.approx(result.ln_bound, abs=1e-9)


@pytest.mark.parametrize("arch, density", [("300,60,40,30,10", 0.004), ("150,40,40,40,10", 0.01)])
def test_three_layer_allocation_against_fine_grid(arch, density):
    problem = _problem(arch, density)
    objective = ExactObjective(problem)
    _, best, _ = exhaustive_search(problem, objective, grid_for(problem, 120))
    result = allocate(problem.network, density=density, baselines=("uniform",))
    assert result.ln_bound >= best - 0.01
    assert result.ln_bound >= result.baselines["uniform"].ln_bound - 1e-12
    assert result.kept_total == problem.budget.kept


def test_mip_objective_equals_numeric_surrogate():
    """The pyomo model's optimum is the numeric surrogate evaluated at the chosen levels (oracle test)."""
    for arch, density in [("784,100,100,10", 0.001), ("300,60,40,30,10", 0.004)]:
        problem = _problem(arch, density)
        objective = ExactObjective(problem)
        built = build_model(problem, objective, levels=40)
        report = solve(built.model, SolverOptions(time_limit_s=30))
        assert report.status == "optimal"
        kept = problem.kept_per_layer(built.chosen_units())
        assert surrogate_value(objective, kept) == pytest.approx(report.objective, abs=1e-6)
        # and no menu combination has a better surrogate (two blocks: check them all)
        if len(built.menus) == 2:
            values = [
                surrogate_value(objective, problem.kept_per_layer([a, b]))
                for a in built.menus[0] for b in built.menus[1]
                if problem.is_feasible([a, b])
            ]
            assert max(values) == pytest.approx(report.objective, abs=1e-6)


def test_surrogate_pieces_are_concave():
    """F(t) = ln sum_{j<=t} C(n, j) is concave on the integers, so chord cuts are exact at breakpoints."""
    for n in (1, 2, 5, 10, 84, 100, 400, 1000):
        second_differences = np.diff(ln_partial_binomial_sums(n), 2)
        assert np.all(second_differences <= 1e-12)


def test_budget_never_exceeded_and_used_on_six_layers():
    network = Network.from_arch([784] + [200] * 6 + [10])
    for density in (0.0005, 0.003, 0.05):
        result = allocate(network, density=density, baselines=("uniform",))
        budget = make_budget(network, density=density).kept
        assert result.kept_total == budget
        assert result.ln_bound >= result.baselines["uniform"].ln_bound - 1e-12


def test_saturated_bound_returns_uniform():
    """Where every allocation reaches the dense bound, the tie-break gives uniform and spends the budget."""
    network = Network.from_arch("50,20,20,20,10")
    result = allocate(network, density=0.6, baselines=("uniform",))
    dense = ln_expected_bound(network, [1.0] * 4, "dense")
    assert result.ln_bound == pytest.approx(dense, abs=1e-9)
    uniform = result.baselines["uniform"].kept
    assert all(abs(a - b) <= 1 for a, b in zip(result.kept, uniform))
    assert result.kept_total == make_budget(network, density=0.6).kept


def test_side_constraints_hold():
    network = Network.from_arch("300,60,40,30,10")
    constraints = Constraints(
        min_density={"fc1.weight": 0.003},
        max_density={"fc3.weight": 0.02},
        pinned={"fc2.weight": 0.01},
        min_kept=5,
    )
    result = allocate(network, density=0.005, constraints=constraints, baselines=())
    kept = dict(zip(network.names, result.kept))
    assert kept["fc1.weight"] >= math.ceil(0.003 * 18000)
    assert kept["fc3.weight"] <= 0.02 * 1200
    assert kept["fc2.weight"] == kept_from_density(0.01, 2400)
    assert min(kept[n] for n in network.names[:3]) >= 5
    assert result.kept_total <= make_budget(network, density=0.005).kept
    assert result.layers[1].pinned


def test_tied_group_shares_one_density():
    network = Network.from_arch("200,50,50,50,10")
    constraints = Constraints(tied=[["fc2.weight", "fc3.weight"]])
    result = allocate(network, density=0.01, constraints=constraints, baselines=())
    fc2, fc3 = result.layers[1], result.layers[2]
    assert fc2.kept == fc3.kept  # equal shapes, one shared density
    assert fc2.tied_group == fc3.tied_group == 0
    assert result.kept_total <= make_budget(network, density=0.01).kept


def test_one_weight_per_output_unit():
    network = Network.from_arch("784,100,100,10")
    result = allocate(network, density=0.005, constraints=Constraints(min_kept_per_output_unit=True), baselines=())
    assert result.layers[0].kept >= 100 and result.layers[1].kept >= 100


def test_flops_budget_binds():
    # fc1's kept weights cost 10 multiply-adds each (as if a convolution with 10 output positions).
    network = Network(300, (60, 40, 10), flops_per_weight=(10.0, 1.0, 1.0))
    free = allocate(network, density=0.004, baselines=())
    limit = 0.5 * network.flops_per_weight[0] * free.layers[0].kept + free.layers[1].kept
    bound = allocate(network, density=0.004, constraints=Constraints(flops_budget=limit), baselines=())
    flops = 10.0 * bound.layers[0].kept + bound.layers[1].kept
    assert flops <= limit + 1e-9
    assert bound.layers[0].kept < free.layers[0].kept


def test_infeasible_requests_fail_before_solving(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the solver ran on an infeasible request")

    monkeypatch.setattr(api_module, "solve", refuse)
    network = Network.from_arch("784,100,100,10")
    with pytest.raises(InfeasibleError, match="below what the constraints require"):
        allocate(network, kept=50, constraints=Constraints(min_kept=30))
    with pytest.raises(InfeasibleError, match="pinned layers keep 784"):
        allocate(network, kept=500, constraints=Constraints(pinned={"fc1.weight": 0.01}))
    with pytest.raises(InfeasibleError, match="cannot be used: max densities"):
        allocate(network, density=0.5, constraints=Constraints(max_density=0.1))
    with pytest.raises(InvalidInputError, match=r"budget density is 1.5; expected a fraction kept in \(0, 1\]"):
        allocate(network, density=1.5)
    with pytest.raises(InvalidInputError, match="budget density is 0"):
        allocate(network, density=0.0)
    with pytest.raises(InvalidInputError, match="min density of fc1.weight is 0"):
        allocate(network, density=0.01, constraints=Constraints(min_density={"fc1.weight": 0.0}))
    with pytest.raises(InvalidInputError, match="'fc3.weight', which is not a prunable layer"):
        allocate(network, density=0.01, constraints=Constraints(pinned={"fc3.weight": 0.5}))
    with pytest.raises(InvalidInputError, match="exactly one budget"):
        allocate(network, density=0.01, kept=10)
    with pytest.raises(InfeasibleError, match="minimum 50 kept exceeds maximum 7 kept"):
        allocate(network, density=0.01, constraints=Constraints(min_kept=50, max_density={"fc2.weight": 0.0007}))


def test_time_limit_is_reported_not_silent():
    network = Network.from_arch([784] + [400] * 12 + [10])
    result = allocate(network, density=0.0003, solver_options=SolverOptions(time_limit_s=0.01), baselines=())
    assert result.status in ("time_limit", "time_limit_no_solution")
    assert "NOT proven optimal" in result.certificate
    assert result.kept_total == make_budget(network, density=0.0003).kept


def test_compression_budget_follows_shrinkbench():
    network = Network.from_arch("784,100,100,10")
    all_parameters = 78400 + 10000 + 1000 + 100 + 100 + 10
    budget = make_budget(network, compression=50.0)
    assert budget.kept == math.floor(all_parameters / 50.0) - (1000 + 210)
    assert make_budget(network, sparsity=0.99).kept == make_budget(network, density=0.01).kept
    with pytest.raises(InfeasibleError, match="compression 1000"):
        make_budget(network, compression=1000.0)


def test_baselines_follow_their_rules():
    network = Network.from_arch("784,300,100,10")
    result = allocate(network, density=0.05)
    budget = result.budget.kept
    uniform = result.baselines["uniform"].kept
    assert sum(uniform[:2]) == budget
    gale = result.baselines["uniform-gale"]
    assert gale.kept is None and "below" in gale.unavailable  # a dense fc1 alone exceeds 5 %
    erk = result.baselines["erk"].kept
    shapes = network.shapes
    ratio = [erk[i] / network.weights[i] / ((shapes[i][0] + shapes[i][1]) / network.weights[i]) for i in range(2)]
    assert ratio[0] == pytest.approx(ratio[1], rel=0.01)  # density proportional to (rows + cols) / (rows cols)
    assert sum(erk[:2]) == budget
    roomy = allocate(network, density=0.95, baselines=("uniform-gale", "er"))
    kept = roomy.baselines["uniform-gale"].kept
    assert kept[0] == 235200 and kept[1] >= 0.2 * 30000
    er = roomy.baselines["er"].kept
    assert max(k / w for k, w in zip(er[:2], network.weights[:2])) <= 1.0
    assert sum(er[:2]) == roomy.budget.kept



def test_baselines_spend_exactly_the_budget_on_many_layers():
    """Per-layer rounding used to overshoot the budget with three or more prunable layers."""
    network = Network.from_arch("784,300,100,50,10")
    for kept in (20, 32, 77, 301, 3000):
        result = allocate(network, kept=kept)
        for name, baseline in result.baselines.items():
            if baseline.kept is not None:
                assert sum(baseline.kept[:3]) == kept, (name, kept, baseline.kept)


def test_gale_with_middle_layers():
    network = Network.from_arch("100,60,50,40,10")  # fc1 6000, fc2 3000, fc3 2000 weights
    result = allocate(network, density=0.7, baselines=("uniform-gale",))
    kept = result.baselines["uniform-gale"].kept
    assert kept[0] == 6000  # first prunable layer dense
    assert kept[2] >= 0.2 * 2000  # last prunable layer at >= 20 %
    assert sum(kept[:3]) == result.budget.kept
    assert kept[1] / 3000 == pytest.approx(kept[2] / 2000, abs=2e-3)  # above 20 %, the last follows the middle


def test_tied_group_with_unequal_members():
    """The group's range is exact: 60 = 59 + 1 is reachable (members of 10,000 and 100 weights)."""
    network = Network.from_arch("100,100,1,1")
    tied = Constraints(tied=[["fc1.weight", "fc2.weight"]])
    result = allocate(network, kept=60, constraints=tied, baselines=())
    assert result.kept[:2] == (59, 1)
    capped = Constraints(tied=[["fc1.weight", "fc2.weight"]], max_density={"fc2.weight": 0.01})
    result = allocate(network, kept=120, constraints=capped, baselines=())
    assert result.kept[:2] == (119, 1)
    problem = _problem("300,60,40,30,10", 0.01, Constraints(tied=[["fc1.weight", "fc3.weight"]]))
    block = next(b for b in problem.blocks if b.is_tied)
    brute = [u for u in range(0, 19201) if all(
        lo <= k <= hi for k, lo, hi in zip(problem.member_kept(block, u), (1, 1), (18000, 1200)))]
    assert (block.lo, block.hi) == (min(brute), max(brute))


def test_toward_uniform_moves_a_lopsided_saturated_allocation():
    from allocator.allocation.search import toward_uniform

    problem = _problem("50,20,20,20,10", 0.6)
    objective = ExactObjective(problem)
    lopsided = [1000, 40, 40]  # fc1 dense; uniform at density 0.6 would be [600, 240, 240]
    assert sum(lopsided) == problem.budget.kept
    start = objective.of_units(lopsided)
    units, value = toward_uniform(problem, objective, lopsided)
    assert value >= start - 1e-9
    uniform = [kept_from_density(problem.budget.density, 1000), kept_from_density(problem.budget.density, 400)]
    assert abs(units[0] - uniform[0]) <= 2 and abs(units[1] - uniform[1]) <= 2
    assert sum(units) == sum(lopsided)


def test_local_search_reaches_the_integer_optimum_off_the_menu():
    """With a coarse menu and no exhaustive search, only the exact polish can reach the integer optimum."""
    for arch, density in [("784,100,100,10", 0.002), ("500,80,60,10", 0.004)]:
        problem = _problem(arch, density)
        _, best, _ = exhaustive_search(problem, ExactObjective(problem))
        result = allocate(problem.network, density=density, levels=4, exhaustive_limit=0, baselines=())
        assert result.ln_bound == pytest.approx(best, abs=1e-9)


def test_zero_bound_with_paper_p0_is_reported_not_a_crash(tmp_path):
    from allocator.allocation.file import load, save

    network = Network.from_arch("784,100,100,10")
    result = allocate(network, density=0.001, rank_model=RankModel("binomial", paper_p0=True),
                      constraints=Constraints(min_kept=0, pinned={"fc2.weight": 0.00001}), baselines=("uniform",))
    assert result.ln_bound == -math.inf and result.layers[1].kept == 0
    assert load(save(result, tmp_path / "zero.json")).ln_bound == -math.inf


def test_bad_flops_budget_and_polish_starts():
    network = Network.from_arch("784,100,100,10")
    with pytest.raises(InvalidInputError, match="FLOPs budget is nan"):
        allocate(network, density=0.01, constraints=Constraints(flops_budget=float("nan")))
    with pytest.raises(InvalidInputError, match="polish_starts is 0"):
        allocate(network, density=0.01, polish_starts=0)


def test_is_feasible_and_kept_per_layer_agree_with_their_definitions_on_random_units():
    """The fast paths (no tied block, no FLOPs budget) against the definitions written out here: every block in
    its range and the prunable layers' kept counts (pinned ones included) within the budget; with a tied group or a
    FLOPs budget the general path answers."""
    rng = np.random.default_rng(7)
    network = Network.from_arch("300,60,40,30,10")
    names = network.names
    for constraints in (None, Constraints(pinned={names[1]: 0.05}), Constraints(tied=[names[1:3]]),
                        Constraints(flops_budget=2000.0)):
        problem = AllocationProblem.build(network, make_budget(network, density=0.02), RankModel("binomial"),
                                          constraints)
        outcomes = set()
        for trial in range(300):
            units = [int(rng.integers(b.lo - 3, b.hi + 4)) if trial % 2 else  # mostly over the budget
                     int(rng.integers(b.lo - 1, b.lo + problem.budget.kept // len(problem.blocks) + 2))  # often within
                     for b in problem.blocks]
            kept = list(problem.fixed_kept)
            for block, value in zip(problem.blocks, units):
                for member, count in zip(block.members, problem.member_kept(block, value)):
                    kept[member] = count
            assert problem.kept_per_layer(units) == tuple(kept)
            assert all(type(k) is int for k in problem.kept_per_layer(np.array(units)))
            prunable_total = sum(k for k, p in zip(kept, network.prunable) if p)
            flops = sum(f * k for f, k, p in zip(network.flops_per_weight, kept, network.prunable) if p)
            expected = (all(b.lo <= u <= b.hi for b, u in zip(problem.blocks, units))
                        and prunable_total <= problem.budget.kept
                        and (problem.constraints.flops_budget is None
                             or flops <= problem.constraints.flops_budget + 1e-9))
            assert problem.is_feasible(units) == expected
            outcomes.add(expected)
        assert outcomes == {True, False}
