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


def _deep_pruned_case(rng):
    """2-3 hidden layers, heavy pruning, and points that agree on half their coordinates (like images' common
    background), so some first-layer rows are constant on the plane and some later layers lose rank."""
    n0 = int(rng.integers(4, 9))
    widths = [int(rng.integers(3, 9)) for _ in range(int(rng.integers(2, 4)))]
    fan_in = [n0] + widths[:-1]
    weights = [rng.standard_normal((w, f)) * (rng.random((w, f)) < 0.4) for w, f in zip(widths, fan_in)]
    if rng.random() < 0.5:  # a repeated row: rank below the number of rows
        weights[1][1] = weights[1][0]
    biases = [rng.standard_normal(w) for w in widths]
    points = rng.random((3, n0))
    shared = rng.random(n0) < 0.5
    shared[:3] = False  # three free coordinates: the points span a plane
    points[1:, shared] = points[0, shared]
    return weights, biases, make_slice(points[0], points[1], points[2], 0.0, 1.0)


@pytest.mark.pure
def test_plane_bound_is_never_below_the_exact_count():
    """Serra et al.'s rank bound of the network restricted to the plane against the exact count on 60 random
    pruned nets; its integer against listing J(k) (a second method), and tight on one layer of three lines."""
    from allocator.bound.recursion import bound_for_ranks_by_enumeration
    from allocator.regions.model import PlaneBound, plane_bound

    rng = np.random.default_rng(5)
    dropped = deficient = 0
    for _ in range(60):
        weights, biases, plane = _deep_pruned_case(rng)
        count = len(enumerate_regions(weights, biases, plane))
        bound = plane_bound(list(zip(weights, biases)), plane)
        assert count <= bound.max_regions
        if bound.widths:
            assert bound.max_regions == bound_for_ranks_by_enumeration(2, list(bound.widths), list(bound.ranks))
        dropped += bound.widths[:1] != (weights[0].shape[0],)
        deficient += any(r < min(w, 2 if i == 0 else bound.widths[i - 1])
                         for i, (w, r) in enumerate(zip(bound.widths, bound.ranks)))
    assert dropped >= 10 and deficient >= 10  # the cases exercise both reductions
    origin = np.array([0.5, 0.5])
    plane = make_slice(origin, origin + np.array([0.5, 0.0]), origin + np.array([0.0, 0.5]), 0.0, 1.0)
    w = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [0.0, 0.0]])  # the last row is constant on the plane
    b = -w @ origin + np.array([-0.1, 0.2, -0.5, 0.3])
    assert len(enumerate_regions([w], [b], plane)) == 7
    assert plane_bound([(w, b)], plane) == PlaneBound(widths=(3,), ranks=(2,), max_regions=7)


@pytest.mark.pure
def test_plane_bound_dead_layers_and_scale():
    """A first layer constant on the plane leaves one region; a dead second layer leaves the first layer's
    arrangement; a plane spanned by points 1e-13 apart keeps its ranks (the tolerance is relative)."""
    from allocator.regions.model import PlaneBound, plane_bound

    origin = np.array([0.5, 0.5, 0.5])
    plane = make_slice(origin, origin + np.array([0.5, 0.0, 0.0]), origin + np.array([0.0, 0.5, 0.0]), 0.0, 1.0)
    flat = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -2.0]])  # only the coordinate the plane does not move
    assert plane_bound([(flat, np.zeros(2))], plane) == PlaneBound((), (), 1)
    assert len(enumerate_regions([flat], [np.zeros(2)], plane)) == 1
    lines = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 2.0, 0.0]])
    offsets = -lines @ origin + np.array([-0.1, 0.2, -0.5])
    dead = np.zeros((4, 3))
    assert plane_bound([(lines, offsets), (dead, np.ones(4))], plane) == PlaneBound((3,), (2,), 7)
    assert len(enumerate_regions([lines, dead], [offsets, np.ones(4)], plane)) == 7
    tiny = make_slice(origin, origin + np.array([1e-13, 0.0, 0.0]), origin + np.array([0.0, 1e-13, 0.0]), 0.0, 1.0)
    count = len(enumerate_regions([lines], [-lines @ origin + 1e-13 * np.array([-0.1, 0.2, -0.5])], tiny))
    assert plane_bound([(lines, offsets)], tiny) == PlaneBound((3,), (2,), 7) and count <= 7
