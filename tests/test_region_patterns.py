"""Full-input region measures: patterns over data and exact pieces along a line, held to independent oracles."""

import numpy as np
import pytest

from allocator.regions.patterns import distinct_patterns, line_piece_bounds, line_pieces, random_lines

pytestmark = pytest.mark.pure


def _net(rng, widths, density=1.0):
    layers = []
    for rows, cols in zip(widths[1:], widths[:-1]):
        weight = rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < density)
        layers.append((weight, rng.standard_normal(rows) * 0.5))
    return layers


def _pattern(layers, x):
    h, bits = np.asarray(x, float), []
    for weight, bias in layers:
        z = weight @ h + bias
        bits += list(z > 0)
        h = np.maximum(z, 0.0)
    return tuple(bits)


def test_one_hidden_layer_pieces_are_one_plus_the_crossings_of_its_hyperplanes():
    rng = np.random.default_rng(0)
    for _ in range(20):
        (weight, bias), = _net(rng, [5, 12])
        start, end = rng.standard_normal(5) * 3, rng.standard_normal(5) * 3
        a, b = weight @ start + bias, weight @ (end - start)
        crossings = {round(t, 9) for t in -a / b if 0 < t < 1}  # each unit's hyperplane, crossed at most once
        assert line_pieces([(weight, bias)], start, end) == 1 + len(crossings)


@pytest.mark.parametrize("widths, density", [([6, 10, 8], 1.0), ([6, 10, 8, 7], 0.4), ([30, 20, 20], 0.1)])
def test_every_sample_inside_a_piece_has_the_pieces_pattern_and_neighbours_differ(widths, density):
    rng = np.random.default_rng(len(widths))
    for _ in range(5):
        layers = _net(rng, widths, density)
        start, end = rng.standard_normal(widths[0]) * 3, rng.standard_normal(widths[0]) * 3
        bounds = line_piece_bounds(layers, start, end)
        middles = [_pattern(layers, start + (lo + hi) / 2 * (end - start)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        assert all(left != right for left, right in zip(middles[:-1], middles[1:]))
        for t in rng.random(4000):
            piece = int(np.searchsorted(bounds, t, side="right")) - 1
            if min(t - bounds[piece], bounds[piece + 1] - t) > 1e-9:  # away from a crossing
                assert _pattern(layers, start + t * (end - start)) == middles[piece]


def test_distinct_patterns_equals_a_set_of_patterns():
    rng = np.random.default_rng(5)
    layers = _net(rng, [8, 9, 7], 0.5)
    x = rng.standard_normal((500, 8))
    assert distinct_patterns(layers, x) == len({_pattern(layers, row) for row in x})
    assert distinct_patterns(layers, x[:0]) == 0


def test_random_lines_are_chords_of_the_box_through_two_data_points():
    rng = np.random.default_rng(2)
    points = rng.uniform(-1.0, 2.0, size=(10, 6))
    for start, end in random_lines(points, 20, -1.0, 2.0, rng):
        assert np.all(start >= -1.0 - 1e-9) and np.all(start <= 2.0 + 1e-9)
        assert np.all(end >= -1.0 - 1e-9) and np.all(end <= 2.0 + 1e-9)
        for end_point in (start, end):  # each end on a face of the box
            assert np.minimum(np.abs(end_point + 1.0), np.abs(end_point - 2.0)).min() < 1e-9
        direction = end - start
        ts = (points - start) @ direction / (direction @ direction)
        residuals = np.linalg.norm(points - start - ts[:, None] * direction, axis=1)
        assert np.sum((residuals < 1e-9) & (ts >= 0) & (ts <= 1)) >= 2  # through two of the data points
