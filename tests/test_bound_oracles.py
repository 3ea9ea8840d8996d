import pytest
"""The log-space recursion, the exact recursion and explicit enumeration of J agree on random small networks."""

import math
from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from allocator import Network
from allocator.bound import RankModel, expected_bound, ln_expected_bound
from allocator.bound.recursion import (
    bound_for_ranks_by_enumeration,
    expected_bound_by_enumeration,
    expected_bound_exact,
    ln_expected_bound_from_laws,
)

DENSITIES = [Fraction(0), Fraction(1, 10), Fraction(1, 3), Fraction(1, 2), Fraction(7, 8), Fraction(1)]


pytestmark = pytest.mark.pure


@st.composite
def small_networks(draw, max_width=5, max_entries=None):
    input_width = draw(st.integers(1, max_width))
    depth = draw(st.integers(1, 3))
    widths = []
    previous = input_width
    for _ in range(depth):
        upper = max_width if max_entries is None else max(1, min(max_width, max_entries // previous))
        width = draw(st.integers(1, upper))
        widths.append(width)
        previous = width
    densities = [draw(st.sampled_from(DENSITIES)) for _ in widths]
    return input_width, widths, densities


def _exact_laws(model, input_width, widths, densities):
    shapes = zip(widths, [input_width] + widths[:-1])
    return [model.law(rows, cols, d, exact=True) for (rows, cols), d in zip(shapes, densities)]


@given(small_networks())
def test_three_methods_agree_binomial(case):
    input_width, widths, densities = case
    laws = _exact_laws(RankModel("binomial"), input_width, widths, densities)
    pmfs = [law.fractions() for law in laws]
    by_enumeration = expected_bound_by_enumeration(input_width, widths, pmfs)
    by_recursion = expected_bound_exact(input_width, widths, pmfs)
    assert by_recursion == by_enumeration
    fast = ln_expected_bound_from_laws(input_width, widths, [law.ln_pmf for law in laws])
    assert fast == np.float64(math.log(by_enumeration)) or abs(fast - math.log(by_enumeration)) < 1e-11


@given(small_networks(max_width=4, max_entries=12))
def test_three_methods_agree_exact_structural(case):
    input_width, widths, densities = case
    laws = _exact_laws(RankModel("exact-structural"), input_width, widths, densities)
    pmfs = [law.fractions() for law in laws]
    by_enumeration = expected_bound_by_enumeration(input_width, widths, pmfs)
    assert expected_bound_exact(input_width, widths, pmfs) == by_enumeration
    fast = ln_expected_bound_from_laws(input_width, widths, [law.ln_pmf for law in laws])
    assert abs(fast - math.log(by_enumeration)) < 1e-11


@given(small_networks(max_width=4, max_entries=12))
def test_binomial_bound_is_above_the_structural_bound(case):
    """The binomial rank is pointwise >= the structural rank and B(k) is monotone, so E[B] orders the same way."""
    input_width, widths, densities = case
    net = Network(input_width, tuple(widths))
    binomial = expected_bound(net, densities, "binomial", exact=True).exact_value
    structural = expected_bound(net, densities, "exact-structural", exact=True).exact_value
    assert binomial >= structural


@given(
    st.integers(1, 4),
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
    st.data(),
)
def test_bound_never_decreases_when_a_rank_grows(input_width, widths, data):
    maxima = [min(w, c) for w, c in zip(widths, [input_width] + widths[:-1])]
    ranks = [data.draw(st.integers(0, m)) for m in maxima]
    layer = data.draw(st.integers(0, len(widths) - 1))
    if ranks[layer] == maxima[layer]:
        return
    grown = list(ranks)
    grown[layer] += 1
    assert bound_for_ranks_by_enumeration(input_width, widths, grown) >= bound_for_ranks_by_enumeration(
        input_width, widths, ranks
    )


@given(st.integers(1, 5), st.lists(st.integers(1, 5), min_size=1, max_size=3), st.data())
def test_production_recursion_is_monotone_in_each_rank(input_width, widths, data):
    """The log-space recursion with point-mass rank laws equals B(k) and never decreases as a rank grows."""
    maxima = [min(w, c) for w, c in zip(widths, [input_width] + widths[:-1])]
    ranks = [data.draw(st.integers(0, m)) for m in maxima]

    def point_masses(values):
        return [np.where(np.arange(m + 1) == k, 0.0, -np.inf) for k, m in zip(values, maxima)]

    value = ln_expected_bound_from_laws(input_width, widths, point_masses(ranks))
    assert abs(value - math.log(bound_for_ranks_by_enumeration(input_width, widths, ranks))) < 1e-11
    for layer in range(len(widths)):
        if ranks[layer] < maxima[layer]:
            grown = list(ranks)
            grown[layer] += 1
            assert ln_expected_bound_from_laws(input_width, widths, point_masses(grown)) >= value - 1e-12


def test_large_networks_fast_equals_exact():
    """Widths of hundreds: the float64 log-space value equals the exact rational one to 1e-9 nats."""
    for arch, densities in [
        ("60,40,30,10", [0.05, 0.2, 1.0]),
        ("120,50,50,50,10", [0.01, 0.03, 0.3, 1.0]),
    ]:
        net = Network.from_arch(arch)
        exact = expected_bound(net, densities, "binomial", exact=True).ln_bound
        assert abs(ln_expected_bound(net, densities, "binomial") - exact) < 1e-9


@given(st.lists(st.sampled_from([0.0005, 0.001, 0.003, 0.01, 0.1, 0.5, 1.0]), min_size=2, max_size=2), st.data())
def test_bound_is_monotone_in_density(densities, data):
    net = Network.from_arch("784,100,100,10")
    layer = data.draw(st.integers(0, 1))
    higher = list(densities)
    higher[layer] = min(1.0, higher[layer] * 2)
    assert ln_expected_bound(net, higher + [1.0]) >= ln_expected_bound(net, densities + [1.0]) - 1e-12


@pytest.mark.pure
def test_exact_mode_finishes_in_seconds_and_agrees_with_the_float_path_to_1e_12():
    """784-100-100-10 at 0.001 (628 s with Fractions): exact integers over shared denominators; its ln from the
    integer quotient agrees with the float path and with a 60-digit decimal reference of the same integers."""
    from decimal import Decimal, getcontext

    from allocator.bound import expected_bound, ln_expected_bound
    from allocator.bound.exact import expected_bound_scaled
    from allocator.bound.rank import binomial_law

    net = Network.from_arch("784,100,100,10")
    for density in (0.001,):
        densities = [density, density, 1.0]
        exact = expected_bound(net, densities, exact=True)
        assert abs(exact.ln_bound - ln_expected_bound(net, densities)) < 1e-12
        laws = [binomial_law(100, 784, density, exact=True), binomial_law(100, 100, density, exact=True),
                binomial_law(10, 100, 1.0, exact=True)]
        numerator, denominator = expected_bound_scaled(784, [100, 100, 10], [law.scaled() for law in laws])
        getcontext().prec = 60
        reference = float((Decimal(numerator) / Decimal(denominator)).ln())
        assert abs(exact.ln_bound - reference) < 1e-13
        assert exact.exact_value == Fraction(numerator, denominator)
