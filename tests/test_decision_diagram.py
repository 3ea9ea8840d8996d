"""The relaxed decision diagram bound (``allocator.formulation.upper_bound``, module docstring): never below the
integer optimum at any multiplier and width, the state-adaptive bound at width 1, the Lagrangian dual itself when
nothing is merged, and within 0.01 nats of the answer where the earlier relaxations were 0.03-0.2 above."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from allocator import Network
from allocator.allocation.search import exhaustive_search
from allocator.bound import RankModel
from allocator.formulation import AllocationProblem, Constraints, make_budget
from allocator.formulation import upper_bound
from allocator.formulation.objective import ExactObjective
from allocator.formulation.upper_bound import relaxation

pytestmark = pytest.mark.solver


def _small_problem(widths, n0, classes, share, rank_model, min_kept=0):
    network = Network.from_arch([n0] + widths + [classes])
    if rank_model == "exact-structural" and max(r * c for r, c in network.shapes[:-1]) > 20:
        rank_model = "binomial"
    kept = max(len(widths) * max(1, min_kept), int(share * network.prunable_weights))
    return AllocationProblem.build(network, make_budget(network, kept=kept), RankModel(rank_model),
                                   Constraints(min_kept=min_kept))


def _ranges(problem):
    """Per weight layer the kept counts any feasible allocation can take (the budget's cap included), as the
    relaxation sees them."""
    network = problem.network
    ranges = [(problem.member_lo[l], problem.member_hi[l]) if network.prunable[l] else
              (network.weights[l], network.weights[l]) for l in range(network.n_weight_layers)]
    floor = sum(lo for (lo, _), p in zip(ranges, network.prunable) if p)
    return [(lo, min(hi, problem.budget.kept - (floor - lo))) if p else (lo, hi)
            for (lo, hi), p in zip(ranges, network.prunable)]


def _dual_by_enumeration(problem, multiplier):
    """``lambda K + max_x [ln E[B](x) - lambda sum_l x_l]`` over every integer ``x`` in the ranges (no budget):
    the Lagrangian dual of the one-allocation problem, listed point by point."""
    objective = ExactObjective(problem)
    network = problem.network
    best = -math.inf
    for kept in itertools.product(*(range(lo, hi + 1) for lo, hi in _ranges(problem))):
        paid = sum(k for k, p in zip(kept, network.prunable) if p)
        best = max(best, objective.of_kept(list(kept)) - multiplier * paid)
    return multiplier * problem.budget.kept + best


def _focus(problem, fractions):
    return [lo + int(f * (hi - lo)) for (lo, hi), f in zip(_ranges(problem), fractions)]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # set on every example
@given(widths=st.lists(st.integers(2, 10), min_size=2, max_size=4), n0=st.integers(2, 16), classes=st.integers(2, 4),
       share=st.floats(0.03, 0.5), rank_model=st.sampled_from(["binomial", "dense", "exact-structural"]),
       multiplier=st.floats(0.0, 3.0), levels=st.sampled_from([3, 12, 200]), width=st.sampled_from([1, 2, 3, 8, 50]),
       fractions=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5), min_kept=st.integers(0, 2),
       window=st.sampled_from([0, 0, 1, 4]), merge=st.sampled_from([0.0, 3e-4, 0.1]),
       focus_window=st.sampled_from([0, 1, 2, 64]), chunk=st.sampled_from([1, 2, 3, 64]))
def test_never_below_the_exhaustive_optimum_at_any_multiplier_width_and_focus(widths, n0, classes, share, rank_model,
                                                                              multiplier, levels, width, fractions,
                                                                              min_kept, window, merge, focus_window,
                                                                              chunk, monkeypatch):
    """Any multiplier, grid (``FOCUS_WINDOW`` small, so that intervals of several counts occur: charged their lowest,
    valued at their highest), width, window, merge threshold, chunk and answer to steer by (even a poor one) gives a
    valid bound; width 1 is the state-adaptive bound exactly."""
    monkeypatch.setattr(upper_bound, "DIAGRAM_WINDOW", window)
    monkeypatch.setattr(upper_bound, "DIAGRAM_MERGE_NATS", merge)
    monkeypatch.setattr(upper_bound, "FOCUS_WINDOW", focus_window)
    monkeypatch.setattr(upper_bound, "DIAGRAM_CHUNK", chunk)
    problem = _small_problem(widths, n0, classes, share, rank_model, min_kept)
    try:
        _, optimum, _ = exhaustive_search(problem, ExactObjective(problem), limit=50_000)
    except ValueError:  # too many integer allocations to list
        assume(False)
    value_of = relaxation(problem, levels=levels, focus=_focus(problem, fractions))
    bound = value_of.diagram(multiplier, width)
    assert bound >= optimum - 1e-9
    if width == 1:
        assert bound == pytest.approx(value_of(multiplier), abs=1e-9)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # the same patch for all
@given(widths=st.lists(st.integers(2, 6), min_size=2, max_size=3), n0=st.integers(2, 10), classes=st.integers(2, 3),
       share=st.floats(0.05, 0.5), rank_model=st.sampled_from(["binomial", "dense"]), multiplier=st.floats(0.0, 2.0),
       fractions=st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4))
def test_with_nothing_merged_the_diagram_is_the_lagrangian_dual(widths, n0, classes, share, rank_model, multiplier,
                                                                fractions, monkeypatch):
    """Every integer a level, every interval against every member, merges only of bounded vectors: the diagram is
    the dual ``lambda K + max_x [ln E[B](x) - lambda sum x]`` listed over every allocation, to 1e-9 nats."""
    problem = _small_problem(widths, n0, classes, share, rank_model)
    points = math.prod(hi - lo + 1 for lo, hi in _ranges(problem))
    assume(points <= 20_000)
    monkeypatch.setattr(upper_bound, "DIAGRAM_WINDOW", 10**9)
    monkeypatch.setattr(upper_bound, "DIAGRAM_MERGE_NATS", 0.0)
    value_of = relaxation(problem, levels=10**6, focus=_focus(problem, fractions))
    assert value_of.diagram(multiplier, 10**9) == pytest.approx(_dual_by_enumeration(problem, multiplier), abs=1e-9)


def test_never_below_the_pairings_optimum_of_four_deep_layers():
    """784-100x4-10 at density 0.001: the meet-in-the-middle optimum over all 198,485 whole-budget allocations
    (``allocator.allocation.pairing``) lies at or below the diagram at every width and at multipliers around the
    best one; at width 16 the diagram is already within 0.01 nats of it (the delayed relaxation: 0.0114)."""
    from allocator.allocation import pairing

    network = Network.from_arch([784] + [100] * 4 + [10])
    problem = AllocationProblem.build(network, make_budget(network, density=0.001), RankModel("binomial"))
    plan = pairing.plan(problem)
    units, optimum, _ = pairing.integer_optimum(problem, ExactObjective(problem), plan)
    first = upper_bound.lagrangian_upper_bound(problem, delayed=False)
    value_of = relaxation(problem, focus=problem.kept_per_layer(units))
    for multiplier in (0.0, 0.5 * first.multiplier, first.multiplier, 1.5 * first.multiplier):
        for width in (1, 4, 16, 64):
            assert value_of.diagram(multiplier, width) >= optimum - 1e-9
    assert value_of.diagram(first.multiplier, 16) - optimum < 0.01
    # started from the optimum's supporting multipliers (what the solver passes): still above it, and within 0.01
    from allocator.allocation import api

    support = api._supporting_multipliers(problem, ExactObjective(problem), units)
    assert support is not None and support[0] <= support[1]  # the optimum: no single move pays at [g, q]
    started = upper_bound.lagrangian_upper_bound(problem, focus=problem.kept_per_layer(units), support=support,
                                                 target=optimum)
    assert optimum - 1e-9 <= started.ln_bound < optimum + 0.01


def test_the_certificate_at_five_and_twenty_layers_is_within_a_hundredth_of_a_nat():
    """784-100x5-10 at 0.001 (the answer is the true optimum: ``experiments.check_depth_optimum``): the state-adaptive
    bound is 0.112 nats above it, the delayed one 0.035, the diagram (the solver's certificate) under 0.01; the
    allocation file names it. At 20 layers, given 30 s for the certificate, the diagram meets the answer (measured
    1e-13 above it, at width 32), where the state-adaptive bound is 0.36 nats above."""
    from allocator.allocation import SolverOptions, allocate

    network = Network.from_arch([784] + [100] * 5 + [10])
    result = allocate(network, density=0.001)
    problem = AllocationProblem.build(network, make_budget(network, density=0.001), RankModel("binomial"))
    value_of = relaxation(problem, focus=list(result.kept))
    multiplier = result.upper_bound["multiplier"]
    assert value_of(multiplier) - result.ln_bound > 0.1
    assert 0.02 < value_of.delayed(multiplier) - result.ln_bound < 0.04
    assert result.upper_bound["gap_nats"] < 0.01 and "decision-diagram" in result.upper_bound["method"]
    assert "decision-diagram (width" in result.certificate

    deep = Network.from_arch([784] + [100] * 20 + [10])
    answer = allocate(deep, density=0.001, solver_options=SolverOptions(certificate_s=30.0))  # room to widen
    problem = AllocationProblem.build(deep, make_budget(deep, density=0.001), RankModel("binomial"))
    value_of = relaxation(problem, focus=list(answer.kept))
    multiplier = answer.upper_bound["multiplier"]
    assert value_of(multiplier) - answer.ln_bound > 0.3
    assert answer.upper_bound["gap_nats"] < 1e-3 and "decision-diagram (width" in answer.upper_bound["method"]


def test_the_diagram_needs_an_answer_to_steer_by_and_stops_at_its_deadline():
    """Without a focus there is no diagram (the delayed relaxation stands in); past its deadline an evaluation
    raises rather than running on."""
    import time

    network = Network.from_arch([784] + [100] * 10 + [10])
    problem = AllocationProblem.build(network, make_budget(network, density=0.001), RankModel("binomial"))
    assert relaxation(problem).diagram is None
    late = relaxation(problem, deadline=time.perf_counter() - 1.0, focus=[20] * 11)
    with pytest.raises(upper_bound._OutOfTime):
        late.diagram(1.0, 64)
    np.testing.assert_array_equal(upper_bound._cover(np.zeros((3, 4)), 2, np.zeros(4), 0.0), np.zeros((1, 4)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 150), dims=st.integers(1, 6), width=st.integers(1, 12), merge=st.sampled_from([0.0, 0.05, 1.0]),
       seed=st.integers(0, 2**32 - 1), holes=st.booleans(), chunk=st.sampled_from([1, 2, 3, 64]))
def test_the_chosen_members_cover_every_candidate(rows, dims, width, merge, seed, holes, chunk, monkeypatch):
    """``_cover``'s contract, on random vectors (some entries ``-inf`` where ``holes``; chunks of 1-3 so that the
    excesses held from a chunk's start are used): at most ``width`` members and every candidate at or below one of
    them at every entry (each member itself at or below the candidates' maximum)."""
    monkeypatch.setattr(upper_bound, "DIAGRAM_CHUNK", chunk)
    rng = np.random.default_rng(seed)
    candidates = rng.normal(size=(rows, dims)).round(1)  # rounding makes ties and exact bounds common
    candidates += 1e-4 * rng.integers(0, 2, size=candidates.shape)  # and near-bounds, just above a member
    if holes:
        candidates[rng.random(size=candidates.shape) < 0.2] = -np.inf
    members = upper_bound._cover(candidates, width, rng.normal(size=dims), merge)
    assert members.shape[0] <= width
    for candidate in candidates:
        assert np.any(np.all(members >= candidate[None, :], axis=1))
    assert np.all(members <= np.maximum(candidates.max(axis=0), upper_bound.LN_NOTHING)[None, :])


@pytest.mark.parametrize("kept", [6, 12, 20])
def test_a_prunable_layer_outside_the_bound_is_charged_its_floor(kept):
    """Without the output layer in the bound (``include_output_layer=False``) the last weight layer is prunable but
    outside the recursion: it still spends at least its floor of the budget, so the diagram charges ``lambda lo``
    for it. Never below the exhaustive optimum at any multiplier and width (charging more would be)."""
    network = Network(6, (5, 4, 3), prunable=(True, True, True), include_output_layer=False)
    assert network.bound_layers == (0, 1)
    problem = AllocationProblem.build(network, make_budget(network, kept=kept), RankModel("binomial"),
                                      Constraints(min_kept=2))
    _, optimum, _ = exhaustive_search(problem, ExactObjective(problem), limit=50_000)
    value_of = relaxation(problem, levels=3, focus=[2] * network.n_weight_layers)
    for multiplier in (0.0, 0.3, 1.0, 3.0, 10.0):
        for width in (1, 2, 4):
            assert value_of.diagram(multiplier, width) >= optimum - 1e-9


def _stand_in_diagram(monkeypatch, least_at: float, base: dict[int, float] | None = None):
    """A stand-in diagram on a stand-in clock for ``_diagram_at``: width 16, 32, 64, 128, 256 cost 1, 2, 4, 8, 16 s;
    the value falls with the width (``base``, by default 3, 2, 1, 0.5, 0.25) and far more with the multiplier's
    distance from ``least_at``. Returns the diagram, the clock (a one-entry list) and the list of (multiplier, width)
    calls."""
    clock = [0.0]

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return clock[0]

    monkeypatch.setattr(upper_bound, "time", FakeTime)
    cost = {16: 1.0, 32: 2.0, 64: 4.0, 128: 8.0, 256: 16.0}
    base = base or {16: 3.0, 32: 2.0, 64: 1.0, 128: 0.5, 256: 0.25}
    calls = []

    def diagram(multiplier: float, width: int) -> float:
        clock[0] += cost[width]
        calls.append((round(multiplier, 6), width))
        return base[width] + 1e5 * (multiplier - least_at) ** 2

    return diagram, clock, calls


def test_where_a_step_no_longer_fits_at_the_best_width_the_multiplier_search_goes_on_narrower(monkeypatch):
    """``_diagram_at`` on a stand-in diagram and a stand-in clock (width 16, 32, 64 cost 1, 2, 4 s; the value falls
    with the width and far more with the multiplier, least at 1.005 times the first one, as at depth). Widening
    reaches 64 at t = 7 s; with the deadline at 10 s no step fits at 64, so the compass search goes on at 32 (its
    step up to 1.0025 times the multiplier is lower there) and then at 16 from the same centre, and the least bound
    found (width 32 at 1.0025) is returned, the deadline held."""
    diagram, clock, calls = _stand_in_diagram(monkeypatch, least_at=1.005)

    first = upper_bound.UpperBound(100.0, 1.0, 1)
    found = upper_bound._diagram_at(diagram, first, target=0.0, deadline=10.0)
    assert calls == [(1.0, 16), (1.0, 32), (1.0, 64), (1.0025, 32), (1.0025, 16)]
    assert clock[0] <= 10.0
    assert found.relaxation == "decision-diagram (width 32)" and found.multiplier == pytest.approx(1.0025)
    assert found.ln_bound == pytest.approx(2.0 + 1e5 * 0.0025 ** 2)


def test_given_room_the_multiplier_is_scouted_at_the_narrowest_width_and_the_diagram_widened_there(monkeypatch):
    """``_diagram_at`` on a stand-in diagram and clock as above, the least bound at 0.9925 times the first multiplier
    and 30 s to spend: after width 16 at the first multiplier (1 s) the scout plus widening fits, so the compass
    search at width 16 walks down in steps of 0.25 % until a step no longer lowers it; the wider widths are then
    evaluated at the scout's multiplier, not the first one, and the widest that fits gives the bound returned."""
    diagram, clock, calls = _stand_in_diagram(monkeypatch, least_at=0.9925)

    first = upper_bound.UpperBound(100.0, 1.0, 1)
    found = upper_bound._diagram_at(diagram, first, target=0.0, deadline=30.0)
    scouted = 0.9975 ** 3
    assert calls[:7] == [(1.0, 16), (1.0025, 16), (0.9975, 16), (round(0.9975 ** 2, 6), 16),
                         (round(scouted, 6), 16), (round(scouted * 0.9975, 6), 16), (round(scouted * 1.0025, 6), 16)]
    assert calls[7:10] == [(round(scouted, 6), 32), (round(scouted, 6), 64), (round(scouted, 6), 128)]
    assert clock[0] <= 30.0
    assert found.relaxation == "decision-diagram (width 128)" and found.multiplier == pytest.approx(scouted)

    calls.clear()
    clock[0] = 0.0  # with 10 s no scout fits after the first evaluation: widening at the first multiplier, as above
    upper_bound._diagram_at(diagram, first, target=0.0, deadline=10.0)
    assert calls[:3] == [(1.0, 16), (1.0, 32), (1.0, 64)]


def test_a_doubling_that_leaves_the_bound_unchanged_ends_the_widening(monkeypatch):
    """The stand-in with the same bound at widths 64, 128 and 256 (there the width does not hold the bound up): with
    room for every width, widening at the first multiplier stops after 128, and 256 is never evaluated."""
    diagram, clock, calls = _stand_in_diagram(monkeypatch, least_at=1.0, base={16: 3.0, 32: 2.0, 64: 1.0, 128: 1.0,
                                                                                256: 1.0})
    upper_bound._diagram_at(diagram, upper_bound.UpperBound(100.0, 1.0, 1), target=0.0, deadline=10.0 ** 6)
    widths_at_first = [width for multiplier, width in calls if multiplier == 1.0]
    assert widths_at_first[:4] == [16, 32, 64, 128] and 256 not in {width for _, width in calls}


@pytest.mark.parametrize("scale, target, goes_on", [(1.0, 0.0, True), (1.0, -1.0, False), (0.1, 0.0, False)])
def test_past_its_share_the_diagram_goes_on_only_while_its_gap_is_near_the_goal(monkeypatch, scale, target, goes_on):
    """The stand-in with bounds 0.08-0.025 nats over widths 16-256 (least at the first multiplier), a share ending at
    10 s and an extension to 40 s. Gaps of 0.01-0.07 nats (target 0: above ``GOAL_NATS``, within ``REACH_NATS``)
    go on past 10 s and stop by 40 s, each evaluation stopping at the deadline that then stands, at widths already
    built within the share (the extension searches the multiplier, it does not widen); gaps of about 1 nat
    (target -1: far from the goal) or under 0.01 (the bounds scaled by 0.1) stop by 10 s with the very evaluations of
    a call without the extension."""
    base = {width: scale * value for width, value in {16: 0.08, 32: 0.06, 64: 0.045, 128: 0.035, 256: 0.025}.items()}
    diagram, clock, calls = _stand_in_diagram(monkeypatch, least_at=1.0, base=base)
    started_at = []  # the clock as each evaluation starts

    def timed_diagram(multiplier: float, width: int) -> float:
        started_at.append(clock[0])
        return diagram(multiplier, width)

    first = upper_bound.UpperBound(100.0, 1.0, 1)
    upper_bound._diagram_at(timed_diagram, first, target=target, deadline=10.0)
    within_share = list(calls)
    calls.clear()
    started_at.clear()
    clock[0] = 0.0
    moved: list = []
    found = upper_bound._diagram_at(timed_diagram, first, target=target, deadline=10.0, extended_deadline=40.0,
                                    move_deadline=moved.append)
    assert len(moved) == len(calls)
    if goes_on:
        assert 10.0 < clock[0] <= 40.0 and len(calls) > len(within_share) and moved[-1] == 40.0
        assert found.ln_bound <= min(base[width] for _, width in within_share)
        # the extension searches the multiplier at widths built within the share; it does not widen further
        built_in_share = {width for (_, width), start in zip(calls, started_at) if start < 10.0}
        assert {width for (_, width), start in zip(calls, started_at) if start >= 10.0} <= built_in_share
        assert any(start >= 10.0 for start in started_at)
    else:
        assert clock[0] <= 10.0 and calls == within_share and set(moved) == {10.0}


def test_past_its_share_the_diagram_widens_up_to_128_then_searches_the_multiplier(monkeypatch):
    """The stand-in with gaps of 0.02-0.08 nats, a share ending at 4 s (after width 16 and the scout) and an extension
    to 40 s: widths 32, 64 and 128 are still built past the share (``DIAGRAM_EXTENSION_WIDEST``), 256 is not, and
    the rest of the extension goes to the multiplier's search at width 128."""
    base = {16: 0.08, 32: 0.06, 64: 0.045, 128: 0.035, 256: 0.025}
    diagram, clock, calls = _stand_in_diagram(monkeypatch, least_at=1.0, base=base)
    upper_bound._diagram_at(diagram, upper_bound.UpperBound(100.0, 1.0, 1), target=0.0, deadline=4.0,
                            extended_deadline=40.0)
    assert upper_bound.DIAGRAM_EXTENSION_WIDEST == 128
    assert {width for _, width in calls} == {16, 32, 64, 128} and 4.0 < clock[0] <= 40.0
    assert [width for _, width in calls].count(128) > 1  # the compass search at 128 after the widening


def test_from_the_supporting_multipliers_the_search_widens_at_their_midpoint_then_steps_onto_each_end(monkeypatch):
    """With the answer's supporting multipliers ``(g, q) = (0.99, 0.994)`` the stand-in (least at 0.994) is first
    evaluated at their midpoint 0.992 and widened there with no scout, and the compass search's first steps (half
    their distance) land on ``q`` and then stay: the least bound found is at ``q``, the widest width that fits."""
    diagram, clock, calls = _stand_in_diagram(monkeypatch, least_at=0.994)
    first = upper_bound.UpperBound(100.0, 1.0, 1)
    found = upper_bound._diagram_at(diagram, first, target=0.0, deadline=30.0, support=(0.99, 0.994))
    assert calls[:4] == [(0.992, 16), (0.992, 32), (0.992, 64), (0.992, 128)]
    assert calls[4] == (0.994, 128)
    assert found.multiplier == pytest.approx(0.994) and found.relaxation == "decision-diagram (width 128)"
    assert clock[0] <= 30.0
    # the start: the midpoint, a first step of half the distance as a fraction of it, within the compass's steps
    assert upper_bound._supported_start((0.99, 0.994)) == pytest.approx((0.992, 0.002 / 0.992))
    assert upper_bound._supported_start((0.994, 0.99)) == pytest.approx((0.992, 0.002 / 0.992))  # g > q: a start too
    assert upper_bound._supported_start((1.0, 1.5))[1] == upper_bound.DIAGRAM_STEP
    assert upper_bound._supported_start((1.0, 1.0))[1] == upper_bound.DIAGRAM_MIN_STEP
    assert upper_bound._supported_start(None) is None and upper_bound._supported_start((0.0, 0.0)) is None
    assert upper_bound._supported_start((math.nan, 1.0)) is None


@settings(max_examples=25, deadline=None)
@given(widths=st.lists(st.integers(2, 10), min_size=2, max_size=3), n0=st.integers(2, 12), share=st.floats(0.1, 0.6),
       seed=st.integers(0, 10**6))
def test_the_supporting_multipliers_are_the_single_moves_valued_one_by_one(widths, n0, share, seed):
    """``api._supporting_multipliers`` (two adjoint passes) against every one-weight change valued by a whole
    evaluation (``ExactObjective.of_kept``): ``g`` the largest gain of one more weight, ``q`` the least loss of one
    fewer, over the layers that can move, at a random allocation of a small chain."""
    from allocator.allocation import api

    problem = _small_problem(widths, n0, 3, share, "binomial")
    rng = np.random.default_rng(seed)
    units = [int(rng.integers(block.lo, block.hi + 1)) for block in problem.blocks]
    exact = ExactObjective(problem)
    support = api._supporting_multipliers(problem, exact, units)
    kept = problem.kept_per_layer(units)
    base = exact.of_kept(kept)
    gains, losses = [], []
    for block, value in zip(problem.blocks, units):
        layer = block.members[0]
        for step, out in ((1, gains), (-1, losses)):
            if block.lo <= value + step <= block.hi:
                changed = list(kept)
                changed[layer] += step
                out.append(step * (exact.of_kept(changed) - base))
    if not gains or not losses:
        assert support is None
    else:
        assert support == pytest.approx((max(gains), min(losses)), abs=1e-9)
