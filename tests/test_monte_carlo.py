"""The structural rank model's Monte-Carlo discipline: a stated standard error that matches the spread over seeds,
the stratified estimate (exact law of the non-empty lines), a target precision, and caches that are not trusted."""

import json

import numpy as np
import pytest

from allocator import Network
from allocator.bound import RankModel, ln_expected_bound
from allocator.bound.rank import binomial_law
from allocator.bound.structural import structural_law
from allocator.bound.uncertainty import ln_bound_standard_error
from allocator.cli.main import main

@pytest.mark.pure
@pytest.mark.parametrize("arch, density", [("60,20,20,5", 0.05),
                                           pytest.param("100,30,30,10", 0.02, marks=pytest.mark.slow)])  # 15 s
def test_the_reported_standard_error_matches_the_spread_over_20_seeds(arch, density):
    network = Network.from_arch(arch)
    densities = [density] * (len(network.widths) - 1) + [1.0]
    values, errors = [], []
    for seed in range(20):
        model = RankModel("structural", samples=64, seed=seed)
        values.append(ln_expected_bound(network, densities, model))
        errors.append(ln_bound_standard_error(network, densities, model))
    ratio = float(np.mean(errors)) / float(np.std(values, ddof=1))
    assert 1 / 1.5 < ratio < 1.5, ratio


@pytest.mark.pure
def test_the_stratified_estimate_is_exact_where_the_deficiency_is_zero_and_below_the_binomial():
    one_row = structural_law(1, 50, 0.03, samples=40, seed=2, reduce_variance=True)
    assert np.allclose(np.exp(one_row.ln_pmf), np.exp(binomial_law(1, 50, 0.03).ln_pmf))  # rank = R exactly
    rng = np.random.default_rng(5)
    for _ in range(8):
        rows, cols = int(rng.integers(3, 30)), int(rng.integers(3, 60))
        density = float(rng.uniform(0.01, 0.3))
        stratified = structural_law(rows, cols, density, samples=64, seed=1, reduce_variance=True)
        binomial = binomial_law(rows, cols, density)
        assert abs(np.exp(stratified.ln_pmf).sum() - 1) < 1e-9
        # the binomial law is the law of R >= rank: its CDF lies below the structural one
        assert np.all(np.exp(binomial.ln_pmf).cumsum() <= np.exp(stratified.ln_pmf).cumsum() + 1e-9)


@pytest.mark.pure
def test_variance_reduction_where_the_plain_estimate_is_noisy():
    network = Network.from_arch("784,100,100,10")
    densities = [0.0001, 0.0001, 1.0]
    spreads = {}
    for reduce in (False, True):
        values = [ln_expected_bound(network, densities, RankModel("structural", samples=32, seed=s,
                                                                   reduce_variance=reduce)) for s in range(6)]
        spreads[reduce] = float(np.std(values, ddof=1))
    assert spreads[True] * 10 < spreads[False]  # measured 0.05 against 3.9 nats at 64 masks


@pytest.mark.pure
def test_precision_is_reached_or_the_budget_says_so(capsys):
    argv = ["bound", "--arch", "100,30,30,10", "--density", "0.02", "--rank-model", "structural", "--samples", "16"]
    assert main(argv + ["--precision", "0.05"]) == 0
    err = capsys.readouterr().err
    assert "precision reached: standard error" in err
    assert main(argv + ["--precision", "0.0001", "--precision-seconds", "0.01"]) == 0
    err = capsys.readouterr().err
    assert "precision NOT reached" in err and "target 0.0001" in err
    assert main(["bound", "--arch", "100,30,10", "--density", "0.1", "--precision", "0.1"]) == 2
    assert "--precision applies to --rank-model structural" in capsys.readouterr().err


@pytest.mark.pure
def test_a_cache_file_that_does_not_match_its_key_is_recomputed(tmp_path):
    law = structural_law(6, 7, 0.2, samples=20, seed=4, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.json")
    stored = json.loads(path.read_text())
    stored["rows"] = 99
    path.write_text(json.dumps(stored))
    from allocator.bound import structural as rank_module

    rank_module._STRUCTURAL_CACHE.clear()
    again = structural_law(6, 7, 0.2, samples=20, seed=4, cache_dir=tmp_path)
    assert np.array_equal(again.sampled_ranks, law.sampled_ranks)
    assert json.loads(path.read_text())["rows"] == 6  # rewritten, not trusted


@pytest.mark.solver
def test_an_allocation_under_the_structural_model_records_its_standard_error(tmp_path):
    from allocator.allocation import allocate
    from allocator.allocation.file import load, save

    result = allocate(Network.from_arch("60,20,20,5"), density=0.05, rank_model=RankModel("structural", samples=32))
    assert result.ln_bound_standard_error is not None and 0 < result.ln_bound_standard_error < 1
    save(result, tmp_path / "a.json")
    assert load(tmp_path / "a.json").ln_bound_standard_error == result.ln_bound_standard_error
    assert allocate(Network.from_arch("60,20,20,5"), density=0.05).ln_bound_standard_error is None


@pytest.mark.solver
def test_a_monte_carlo_decision_is_re_estimated_on_fresh_masks():
    from allocator.allocation import allocate

    result = allocate(Network.from_arch("784,100,100,10"), density=0.001,
                      rank_model=RankModel("structural", samples=64, seed=3), baselines=("uniform", "erk"))
    stability = result.stability
    assert stability["fresh_seed"] == 4 and set(stability["against"]) == {"uniform", "erk"}
    against_uniform = stability["against"]["uniform"]
    assert against_uniform["resolved"] and against_uniform["advantage_nats"] > 2 * against_uniform["standard_error_nats"]
    assert "on fresh masks (seed 4) ours - baseline" in result.certificate
