import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocator import InvalidInputError
from allocator.bound import RankModel
from allocator.bound import structural as rank_module
from allocator.bound.rank import binomial_law
from allocator.bound.structural import (
    exact_structural_law,
    mask_rank_counts,
    structural_law,
    structural_rank,
    structural_rank_networkx,
)


pytestmark = pytest.mark.pure


@pytest.mark.parametrize("rows, cols, density", [(30, 200, 0.01), (10, 100, 0.3), (60, 20, 0.05), (7, 7, 0.5)])
def test_binomial_float_equals_exact(rows, cols, density):
    law = binomial_law(rows, cols, density, exact=True)
    assert sum(law.fractions()) == 1
    fast = binomial_law(rows, cols, density)
    exact_ln = np.array([math.log(p) if p else -np.inf for p in law.fractions()])
    finite = np.isfinite(exact_ln) & (exact_ln > -600)
    assert np.allclose(fast.ln_pmf[finite], exact_ln[finite], atol=1e-9, rtol=1e-12)


def test_binomial_counts_the_smaller_side():
    # 10 rows x 100 cols: each row is non-empty with probability 1 - (1 - d)^100.
    law = binomial_law(10, 100, 0.01)
    q = 1 - 0.99**100
    assert law.mean() == pytest.approx(10 * q)
    # The transpose has the same law.
    assert np.allclose(binomial_law(100, 10, 0.01).ln_pmf, law.ln_pmf)


def test_binomial_edges_and_paper_p0():
    assert binomial_law(5, 8, 0.0).ln_pmf.tolist() == [0.0] + [-math.inf] * 5
    assert binomial_law(5, 8, 1.0).ln_pmf.tolist() == [-math.inf] * 5 + [0.0]
    plain = binomial_law(4, 4, 0.2, exact=True)
    paper = binomial_law(4, 4, 0.2, exact=True, paper_p0=True)
    assert paper.fractions()[0] == 0
    assert sum(paper.fractions()) == 1 - plain.fractions()[0]  # dropped, not renormalised
    assert binomial_law(4, 4, 0.2, paper_p0=True).ln_pmf[0] == -math.inf


@given(st.integers(1, 9), st.integers(1, 9), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_scipy_matcher_equals_networkx(rows, cols, density, seed):
    mask = np.random.default_rng(seed).random((rows, cols)) < density
    assert structural_rank(mask) == structural_rank_networkx(mask)


def test_structural_rank_equals_numerical_rank_of_generic_values():
    rng = np.random.default_rng(7)
    for _ in range(50):
        mask = rng.random((12, 9)) < 0.15
        values = rng.standard_normal(mask.shape) * mask
        assert structural_rank(mask) == np.linalg.matrix_rank(values)


def test_exact_structural_law_by_hand():
    # 1x2 masks: rank 1 unless both entries are pruned.
    law = exact_structural_law(1, 2, Fraction(1, 3), exact=True)
    assert law.fractions() == (Fraction(4, 9), Fraction(5, 9))
    counts = mask_rank_counts(2, 2)
    assert sum(map(sum, counts)) == 16
    assert counts[2] == (0, 4, 2)  # two entries: the 2 diagonals have rank 2, the 4 others rank 1
    with pytest.raises(InvalidInputError, match="5x5 has 25 entries"):
        exact_structural_law(5, 5, 0.5)


def test_binomial_dominates_structural_law():
    for rows, cols in [(2, 3), (3, 3), (3, 4), (4, 3)]:
        for density in (0.1, 0.4, 0.8):
            binomial = np.exp(binomial_law(rows, cols, density).ln_pmf).cumsum()
            structural = np.exp(exact_structural_law(rows, cols, density).ln_pmf).cumsum()
            assert np.all(binomial <= structural + 1e-12)


def test_monte_carlo_structural_law_matches_exact_law():
    samples = 4000
    for rows, cols, density in [(3, 4, 0.3), (3, 3, 0.5)]:
        sampled = np.exp(structural_law(rows, cols, density, samples=samples, seed=1).ln_pmf)
        exact = np.exp(exact_structural_law(rows, cols, density).ln_pmf)
        standard_error = np.sqrt(exact * (1 - exact) / samples)
        assert np.all(np.abs(sampled - exact) <= 5 * standard_error + 1e-12)


def test_structural_law_is_seeded_and_reports_samples():
    first = rank_module.sample_rank_counts(20, 30, 0.05, 64, 3)
    again = rank_module.sample_rank_counts(20, 30, 0.05, 64, 3)
    other = rank_module.sample_rank_counts(20, 30, 0.05, 64, 4)
    assert first.sum() == 64 and np.array_equal(first, again)
    assert not np.array_equal(first, other)
    law = structural_law(20, 30, 0.05, samples=64, seed=3)
    assert law.samples == 64
    assert np.array_equal(np.rint(np.exp(law.ln_pmf) * 64).astype(int), first)


def test_structural_law_is_monotone_in_density():
    """Common random numbers: every sampled mask grows with the density, so the rank law shifts upward."""
    means = [structural_law(30, 40, d, samples=32, seed=0).mean() for d in (0.01, 0.02, 0.03, 0.05, 0.08)]
    assert all(b >= a for a, b in zip(means, means[1:]))
    for low, high in ((0.01, 0.02), (0.03, 0.05)):
        cdf_low = np.exp(structural_law(30, 40, low, samples=32, seed=0).ln_pmf).cumsum()
        cdf_high = np.exp(structural_law(30, 40, high, samples=32, seed=0).ln_pmf).cumsum()
        assert np.all(cdf_high <= cdf_low + 1e-12)  # first-order stochastic dominance, sample by sample


def test_structural_law_disk_cache(tmp_path, monkeypatch):
    law = structural_law(6, 7, 0.2, samples=50, seed=9, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    rank_module._STRUCTURAL_CACHE.clear()

    def refuse(*args, **kwargs):
        raise AssertionError("sampled again instead of reading the cache")

    monkeypatch.setattr(rank_module, "sample_rank_pairs", refuse)
    cached = structural_law(6, 7, 0.2, samples=50, seed=9, cache_dir=tmp_path)
    assert np.array_equal(cached.ln_pmf, law.ln_pmf)


def test_rank_model_validation():
    with pytest.raises(InvalidInputError, match="rank model 'gaussian' is unknown; accepted: dense"):
        RankModel("gaussian")
    with pytest.raises(InvalidInputError, match="paper_p0 is an option of the binomial"):
        RankModel("structural", paper_p0=True)
    with pytest.raises(InvalidInputError, match="density is 1.2"):
        binomial_law(3, 3, 1.2)
    with pytest.raises(InvalidInputError, match="samples is 0"):
        structural_law(3, 3, 0.5, samples=0)
