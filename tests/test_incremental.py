"""The exact polish's incremental evaluation: one adjoint pass gives ``ln E[B]`` of every single-layer change, held
to a full recomputation (``ExactObjective.of_kept``) on random chains under every rank model."""

from __future__ import annotations

import numpy as np
import pytest

from allocator import Network
from allocator.bound.rank import RankModel
from allocator.bound.recursion import (ln_adjoint_of_layer, ln_expected_bound_from_laws, ln_n_of_layer, ln_pairing,
                                       ln_tail_of)
from allocator.formulation.objective import ExactObjective
from allocator.formulation.problem import AllocationProblem, make_budget


@pytest.mark.pure
def test_the_adjoint_row_pairs_with_every_suffix_to_the_bound():
    rng = np.random.default_rng(0)
    for _ in range(150):
        depth, input_width = int(rng.integers(1, 5)), int(rng.integers(1, 9))
        widths = [int(w) for w in rng.integers(1, 9, depth)]
        laws = []
        for layer, width in enumerate(widths):
            m = min(width, input_width if layer == 0 else widths[layer - 1])
            p = rng.random(m + 1) * (rng.random(m + 1) < 0.7)
            p[rng.integers(0, m + 1)] += 0.1
            with np.errstate(divide="ignore"):
                laws.append(np.log(p / p.sum()))
        reference = ln_expected_bound_from_laws(input_width, widths, laws)
        suffixes = [np.zeros(widths[-1] + 1)]
        for layer in range(depth - 1, -1, -1):
            cols = input_width if layer == 0 else widths[layer - 1]
            suffixes.insert(0, ln_n_of_layer(widths[layer], cols, laws[layer], suffixes[0]))
        row = np.full(input_width + 1, -np.inf)
        row[input_width] = 0.0
        for layer in range(depth + 1):
            assert ln_pairing(row, suffixes[layer]) == pytest.approx(reference, rel=1e-12, abs=1e-12)
            if layer < depth:
                row = ln_adjoint_of_layer(widths[layer], input_width if layer == 0 else widths[layer - 1],
                                          laws[layer], row)


@pytest.mark.pure
def test_a_step_with_the_laws_tail_given_equals_the_step_without():
    """``ln_n_of_layer`` given ``ln_tail_of(ln_pmf)`` (the objective's cache) is bit for bit the step that computes
    the tail itself, on random laws with zero entries; and the tail is ``ln sum_{k>=d} P(k)`` summed directly."""
    rng = np.random.default_rng(1)
    for _ in range(100):
        width, cols = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        m = min(width, cols)
        p = rng.random(m + 1) * (rng.random(m + 1) < 0.7)
        p[rng.integers(0, m + 1)] += 0.1
        with np.errstate(divide="ignore"):
            ln_pmf = np.log(p / p.sum())
            direct = np.log([p[d:].sum() / p.sum() for d in range(m + 1)])
        np.testing.assert_allclose(ln_tail_of(ln_pmf), direct, rtol=1e-12, atol=1e-12)
        ln_next = np.cumsum(rng.random(width + 1))
        np.testing.assert_array_equal(ln_n_of_layer(width, cols, ln_pmf, ln_next, ln_tail_of(ln_pmf)),
                                      ln_n_of_layer(width, cols, ln_pmf, ln_next))


@pytest.mark.solver
@pytest.mark.parametrize("rank_model", ["binomial", "dense", "structural"])
def test_single_changes_equal_full_evaluations(rank_model):
    rng = np.random.default_rng(1)
    network = Network.from_arch("60,40,30,30,20,10")
    problem = AllocationProblem.build(network, make_budget(network, density=0.2), RankModel(rank_model))
    objective = ExactObjective(problem)
    for _ in range(5):
        kept = [int(rng.integers(0, w + 1)) for w in network.weights]
        changes = [(int(rng.integers(0, len(kept))), int(rng.integers(0, 2000))) for _ in range(12)]
        changes = [(layer, min(value, network.weights[layer])) for layer, value in changes]
        fast = objective.single_changes(kept, changes)
        for (layer, value), got in zip(changes, fast):
            changed = list(kept)
            changed[layer] = value
            assert got == pytest.approx(objective.of_kept(changed), rel=1e-11, abs=1e-11), (layer, value)


@pytest.mark.solver
@pytest.mark.parametrize("rank_model", ["binomial", "structural"])
def test_pair_moves_equal_full_evaluations(rank_model):
    rng = np.random.default_rng(2)
    network = Network.from_arch("50,30,25,30,20,10")
    problem = AllocationProblem.build(network, make_budget(network, density=0.2), RankModel(rank_model))
    objective = ExactObjective(problem)
    layers = [0, 1, 3, 4]  # a subset, out of order in the bound's positions is fine
    for _ in range(4):
        kept = [int(rng.integers(0, w + 1)) for w in network.weights]
        step = int(rng.integers(1, 40))
        moves = objective.pair_moves(kept, step, [3, 0, 4, 1])
        expected = 0
        for donor in layers:
            for receiver in layers:
                if donor == receiver:
                    continue
                if kept[donor] - step < 0 or kept[receiver] + step > network.weights[receiver]:
                    assert (donor, receiver) not in moves
                    continue
                changed = list(kept)
                changed[donor] -= step
                changed[receiver] += step
                assert moves[(donor, receiver)] == pytest.approx(objective.of_kept(changed), rel=1e-11, abs=1e-11)
                expected += 1
        assert len(moves) == expected


@pytest.mark.pure
def test_top_pairs_equal_sorting_every_pair_ties_and_infinities_included():
    import math

    from allocator.allocation.search import RANK_DECIMALS, top_pairs

    rng = np.random.default_rng(4)
    for trial in range(400):
        n = int(rng.integers(2, 30))
        gains = list(np.round(rng.normal(size=n), int(rng.integers(1, 4))))  # coarse values: many ties
        losses = list(np.round(rng.normal(size=n), int(rng.integers(1, 4))))
        for _ in range(int(rng.integers(0, 4))):
            gains[int(rng.integers(0, n))] = -math.inf
            losses[int(rng.integers(0, n))] = math.inf
        if trial % 5 == 0:  # values within the rounding of each other
            gains = [g + float(rng.normal()) * 1e-11 if math.isfinite(g) else g for g in gains]
        count = int(rng.integers(1, 8))
        every = sorted(((round(gains[r] - losses[d], RANK_DECIMALS), d, r) for d in range(n) for r in range(n)
                        if d != r), reverse=True)[:count]
        assert top_pairs(gains, losses, count) == every, trial
