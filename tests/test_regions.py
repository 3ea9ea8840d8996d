"""Linear regions on a 2-D slice: the geometric count against the MIP enumeration and hand-checked cases."""

import numpy as np
import pytest

from allocator import InvalidInputError
from allocator.regions import enumerate_regions, make_slice, sampled_patterns
from allocator.regions.geometry import polygon_area


def _random_case(rng, pruned):
    n0 = int(rng.integers(3, 7))
    widths = [int(rng.integers(2, 6)), int(rng.integers(2, 6))]
    weights = [rng.standard_normal((widths[0], n0)) * 3, rng.standard_normal((widths[1], widths[0]))]
    if pruned:
        weights = [w * (rng.random(w.shape) < 0.5) for w in weights]
    biases = [rng.standard_normal(widths[0]), rng.standard_normal(widths[1])]
    points = rng.random((3, n0))
    return weights, biases, make_slice(points[0], points[1], points[2], 0.0, 1.0)


@pytest.mark.solver
@pytest.mark.parametrize("pruned", [False, True])
def test_geometric_count_equals_mip_enumeration(pruned):
    from allocator.regions.mip import count_regions_mip

    rng = np.random.default_rng(11 if pruned else 7)
    totals = 0
    for _ in range(12):
        weights, biases, plane = _random_case(rng, pruned)
        cells = enumerate_regions(weights, biases, plane)
        count, patterns = count_regions_mip(weights, biases, plane)
        assert len(cells) == count
        assert {c.pattern for c in cells} == set(patterns)
        totals += count
    assert totals > 40  # the cases are not all trivial


@pytest.mark.pure
def test_cells_tile_the_slice_and_patterns_are_distinct():
    rng = np.random.default_rng(3)
    weights = [rng.standard_normal((12, 8)) * 4, rng.standard_normal((10, 12))]
    biases = [rng.standard_normal(12), rng.standard_normal(10)]
    points = rng.random((3, 8))
    plane = make_slice(points[0], points[1], points[2], 0.0, 1.0)
    cells = enumerate_regions(weights, biases, plane)
    assert sum(c.area for c in cells) == pytest.approx(polygon_area(plane.polygon), rel=1e-9)
    assert len({c.pattern for c in cells}) == len(cells)
    # each cell's pattern is the network's pattern at its interior point
    for cell in cells[:50]:
        h = plane.origin + plane.basis @ cell.interior_point()
        for w, b, layer_pattern in zip(weights, biases, cell.pattern):
            z = w @ h + b
            assert tuple(bool(v) for v in z > 0) == layer_pattern
            h = np.maximum(z, 0)
    sampled, _, labels = sampled_patterns(weights, biases, plane, resolution=300)
    assert sampled <= len(cells)  # a lower bound
    assert sampled >= 0.8 * len(cells)


@pytest.mark.pure
def test_one_layer_arrangement_by_hand():
    """Three lines in general position through the valid square cut it into 7 regions when all cross inside."""
    origin = np.array([0.5, 0.5])
    plane = make_slice(origin, origin + np.array([0.5, 0.0]), origin + np.array([0.0, 0.5]), 0.0, 1.0)
    # in (a, b) the square is [-1, 1]^2; lines a = 0.1, b = -0.2, a + b = 0.5 (crossing pairwise inside)
    w = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    b = -w @ origin + np.array([-0.1, 0.2, -0.5])
    cells = enumerate_regions([w], [b], plane)
    assert len(cells) == 7
    assert polygon_area(plane.polygon) == pytest.approx(4.0)


@pytest.mark.pure
def test_slice_validation():
    with pytest.raises(InvalidInputError, match="collinear"):
        make_slice(np.zeros(4), np.ones(4), 2 * np.ones(4) * 0.5, 0.0, 1.0)
    with pytest.raises(InvalidInputError, match="outside"):
        make_slice(np.full(3, 2.0), np.zeros(3), np.eye(3)[0], 0.0, 1.0)
