"""The meet-in-the-middle integer optimum (``allocator.allocation.pairing``) against exhaustive search and a
brute-force count of the whole-budget allocations."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator import Network
from allocator.allocation import allocate, pairing
from allocator.allocation.search import exhaustive_search
from allocator.bound import RankModel
from allocator.errors import InfeasibleError, InvalidInputError
from allocator.formulation import AllocationProblem, Constraints, make_budget
from allocator.formulation.objective import ExactObjective

pytestmark = pytest.mark.solver


def _whole_budget_allocations(problem):
    spare_total = problem.budget.kept - problem.fixed_prunable_kept
    ranges = [range(b.lo, b.hi + 1) for b in problem.blocks]
    return sum(1 for units in itertools.product(*ranges) if sum(units) == spare_total)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(widths=st.lists(st.integers(2, 9), min_size=2, max_size=4), n0=st.integers(2, 12), classes=st.integers(2, 4),
       kept=st.integers(4, 30), min_kept=st.integers(0, 2), pin_first=st.booleans(), cap_last=st.booleans(),
       rank_model=st.sampled_from(["binomial", "dense"]))
def test_the_pairing_finds_the_exhaustive_optimum_and_values_every_whole_budget_allocation(
        widths, n0, classes, kept, min_kept, pin_first, cap_last, rank_model):
    network = Network.from_arch([n0] + widths + [classes])
    names = [n for n, p in zip(network.names, network.prunable) if p]
    constraints = Constraints(min_kept=min_kept, pinned={names[0]: 0.5} if pin_first else {},
                              max_density={names[-1]: 0.3} if cap_last else None)
    try:
        problem = AllocationProblem.build(network, make_budget(network, kept=kept + (
            network.weights[0] // 2 if pin_first else 0)), RankModel(rank_model), constraints)
    except (InfeasibleError, InvalidInputError):  # the drawn constraints cannot hold with the budget: nothing to compare
        return
    chosen = pairing.plan(problem)
    if len(problem.blocks) < 2:
        assert chosen is None
        return
    assert chosen is not None
    assert chosen.allocations == _whole_budget_allocations(problem)
    exact = ExactObjective(problem)
    units, value, valued = pairing.integer_optimum(problem, exact, chosen)
    assert valued == chosen.allocations
    assert problem.is_feasible(units)
    assert problem.prunable_kept(problem.kept_per_layer(units)) == problem.budget.kept  # the whole budget
    _, optimum, _ = exhaustive_search(problem, ExactObjective(problem), limit=2_000_000)
    assert value == pytest.approx(optimum, abs=1e-9)


def test_the_pairing_does_not_apply_to_tied_layers_or_a_flops_budget():
    network = Network.from_arch("20,8,8,8,3")
    names = [n for n, p in zip(network.names, network.prunable) if p]
    budget = make_budget(network, kept=20)
    tied = AllocationProblem.build(network, budget, RankModel("binomial"), Constraints(tied=[names[1:3]]))
    flops = AllocationProblem.build(network, budget, RankModel("binomial"), Constraints(flops_budget=1e9))
    assert pairing.plan(tied) is None and pairing.plan(flops) is None
    assert pairing.plan(AllocationProblem.build(network, budget, RankModel("binomial"))) is not None


def test_four_layers_at_low_density_are_proven_optimal_by_the_pairing():
    """784-100x4-10 at 0.001: 198,485 whole-budget allocations, beyond exhaustive search's 20,000 points; the
    certificate is the enumerated optimum itself (gap 0), where the delayed relaxation alone proves 0.0114 nats."""
    answer = allocate(Network.from_arch([784] + [100] * 4 + [10]), density=0.001)
    assert answer.upper_bound["method"] == "exhaustive search over every integer allocation"
    assert answer.upper_bound["gap_nats"] < 1e-9
    assert "all 198485 that spend the whole budget valued by meet in the middle" in answer.certificate


def test_the_plan_counts_the_laws_it_needs_and_the_search_stops_at_its_deadline():
    """Monte-Carlo laws cost ~1e4 times the binomial's: the plan says how many new laws it needs (the caller prices
    them), and a run past its deadline returns ``None`` within about one law's time, not after a whole side's laws."""
    import time

    network = Network.from_arch("784,100,100,10")
    problem = AllocationProblem.build(network, make_budget(network, kept=300), RankModel("binomial"))
    chosen = pairing.plan(problem)
    assert chosen.laws == sum(min(b.hi - b.lo, 300 - 2) + 1 for b in problem.blocks)
    assert pairing.plan(problem, max_bytes=chosen.held_bytes - 1) is None  # the only split needs more
    started = time.perf_counter()
    assert pairing.integer_optimum(problem, ExactObjective(problem), chosen, deadline=started) is None
    assert time.perf_counter() - started < 0.5


def test_no_plan_for_a_rank_model_not_known_to_be_monotone():
    network = Network.from_arch("20,8,8,8,3")
    problem = AllocationProblem.build(network, make_budget(network, kept=20), RankModel("structural"))
    assert pairing.plan(problem) is None
