"""Reference values of bound.md, each by more than one method."""

import math

import pytest

from allocator import Network
from allocator.bound import expected_bound, ln_expected_bound
from allocator.bound.recursion import bound_for_ranks_by_enumeration


pytestmark = pytest.mark.pure


@pytest.mark.parametrize(
    "arch, value", [([3, 4, 4], 161), ([2, 5, 3, 2], 400), ([4, 3, 6, 2], 496), ([5, 6, 6, 3], 19068)]
)
def test_dense_small_reference_values_three_ways(arch, value):
    net = Network.from_arch(arch)
    ones = [1.0] * net.n_weight_layers
    ranks = [min(rows, cols) for rows, cols in net.shapes]
    assert bound_for_ranks_by_enumeration(arch[0], arch[1:], ranks) == value
    assert expected_bound(net, ones, "dense", exact=True).exact_value == value
    assert math.exp(ln_expected_bound(net, ones, "dense")) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("arch, ln_value", [("784,100,100,10", 144.92), ("400,120,84,10", 148.33)])
def test_dense_paper_networks(arch, ln_value):
    net = Network.from_arch(arch)
    fast = ln_expected_bound(net, [1.0, 1.0, 1.0], "dense")
    exact = expected_bound(net, [1.0, 1.0, 1.0], "dense", exact=True)
    assert round(fast, 2) == ln_value
    assert exact.ln_bound == pytest.approx(fast, abs=1e-9)
    assert exact.exact_value.denominator == 1  # a dense bound is an integer


@pytest.mark.parametrize("densities, ln_value", [((0.001, 0.001, 1.0), 119.80), ((0.000583, 0.00427, 1.0), 137.80)])
def test_binomial_reference_values(densities, ln_value):
    net = Network.from_arch("784,100,100,10")
    assert round(ln_expected_bound(net, densities, "binomial"), 2) == ln_value


def test_output_layer_convention_changes_the_bound():
    with_output = Network.from_arch("784,100,100,10")
    without = Network.from_arch("784,100,100,10", include_output_layer=False)
    dense = [1.0, 1.0, 1.0]
    ln_with = ln_expected_bound(with_output, dense, "dense")
    ln_without = ln_expected_bound(without, dense, "dense")
    # Without the classifier the bound is that of the two hidden layers alone.
    assert math.exp(ln_without) == pytest.approx(
        float(expected_bound(Network.from_arch("784,100,100"), [1.0, 1.0], "dense", exact=True).exact_value),
        rel=1e-12,
    )
    assert ln_with > ln_without


def test_result_reports_conventions():
    net = Network.from_arch("784,100,100,10")
    result = expected_bound(net, [0.001, 0.001, 1.0])
    assert result.rank_model == "binomial"
    assert result.include_output_layer is True
    assert result.log2_bound == pytest.approx(result.ln_bound / math.log(2))
    assert result.scientific() == "1.07e+52"
    assert [layer.in_bound for layer in result.layers] == [True, True, True]
    assert result.layers[0].expected_kept == pytest.approx(78.4)
