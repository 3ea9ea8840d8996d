"""Full-input measures of a ReLU MLP's regions: activation patterns over data, and exact pieces along lines.

A hidden unit is *on* at ``x`` when its pre-activation is positive; the *activation pattern* of ``x`` is the on/off
vector of every hidden unit, and an *activation region* is a connected set of inputs sharing one pattern (the network
is affine there). Two measures that see all 784 input dimensions, unlike a 2-D slice:

- ``distinct_patterns(layers, x)``: how many patterns the rows of ``x`` realise (e.g. the 10k test images): a lower
  bound on the regions the data set visits.
- ``line_pieces(layers, start, end)``: the exact number of activation regions the segment ``x(t) = start + t (end -
  start)``, ``t`` in ``[0, 1]``, passes through (a region entered twice counts twice). Layer by layer, on each piece
  the layer's input is affine in ``t``, ``h(t) = a + t b``, so each pre-activation ``z(t) = (W a + c) + t (W b)`` is
  affine there and changes sign at most once, at ``t* = -(W a + c) / (W b)``; splitting every piece at the ``t*``
  inside it gives pieces on which the layer's pattern is constant, and on each of them the layer's output is affine
  again (``ReLU`` keeps the on units). Exact up to float64 rounding of the crossing points (crossings closer than
  ``MERGE_T`` in ``t`` are one).

``layers`` is a list of ``(W, c)`` for the hidden layers only (``allocator.regions.model.mlp_layers`` without the
last): the output layer has no ReLU and does not cut regions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from allocator.errors import InvalidInputError

#: Crossing points closer than this (in the segment's parameter t) are treated as one.
MERGE_T = 1e-12


def _patterns(layers: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """Every row's pattern as a boolean matrix (rows x hidden units, all layers side by side)."""
    h = np.asarray(x, dtype=float)
    parts = []
    for weight, bias in layers:
        z = h @ weight.T + bias
        on = z > 0
        parts.append(on)
        h = np.where(on, z, 0.0)
    return np.concatenate(parts, axis=1)


def distinct_patterns(layers: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> int:
    """The number of distinct activation patterns among the rows of ``x`` (module docstring)."""
    if len(x) == 0:
        return 0
    packed = np.packbits(_patterns(layers, x), axis=1)
    return int(np.unique(packed, axis=0).shape[0])


def line_pieces(layers: Sequence[tuple[np.ndarray, np.ndarray]], start: np.ndarray, end: np.ndarray) -> int:
    """The exact number of activation regions along the segment from ``start`` to ``end`` (module docstring)."""
    return len(line_piece_bounds(layers, start, end)) - 1


def line_piece_bounds(layers: Sequence[tuple[np.ndarray, np.ndarray]], start: np.ndarray, end: np.ndarray
                      ) -> np.ndarray:
    """The pieces' end points ``0 = t_0 < t_1 < ... < t_P = 1``: the pattern is constant on each ``(t_i, t_{i+1})``
    and differs between neighbours."""
    start = np.asarray(start, dtype=float).ravel()
    direction = np.asarray(end, dtype=float).ravel() - start
    # each piece: its t-interval and the layer input on it, a + t b
    pieces = [(0.0, 1.0, start, direction)]
    for weight, bias in layers:
        refined = []
        for low, high, a, b in pieces:
            offset, slope = weight @ a + bias, weight @ b
            with np.errstate(divide="ignore", invalid="ignore"):
                crossing = -offset / slope
            inside = (slope != 0) & (crossing > low + MERGE_T) & (crossing < high - MERGE_T)
            cuts = np.unique(crossing[inside])
            if cuts.size > 1:
                cuts = cuts[np.concatenate(([True], np.diff(cuts) > MERGE_T))]
            bounds = np.concatenate(([low], cuts, [high]))
            for left, right in zip(bounds[:-1], bounds[1:]):
                middle = (left + right) / 2
                on = offset + middle * slope > 0
                refined.append((left, right, np.where(on, offset, 0.0), np.where(on, slope, 0.0)))
        pieces = refined
    return np.array([low for low, _, _, _ in pieces] + [1.0])


def random_lines(points: np.ndarray, count: int, low: float, high: float, rng: np.random.Generator
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` segments, each the whole chord of the box ``[low, high]^n`` of valid inputs along the line through two
    distinct random rows of ``points`` (rows inside the box: the chord contains the segment between them). A random
    Gaussian direction would not do for images: most pixels sit on a face of the box (background), so almost every
    direction leaves the box at once."""
    if count > 0 and len(np.unique(np.asarray(points).reshape(len(points), -1), axis=0)) < 2:
        raise InvalidInputError(f"random lines need two distinct points; the {len(points)} given are all one point")
    lines = []
    while len(lines) < count:
        first, second = (np.asarray(points[i], dtype=float).ravel() for i in rng.choice(len(points), 2, replace=False))
        direction = second - first
        if not np.any(direction):
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            to_high, to_low = (high - first) / direction, (low - first) / direction
        forward = np.min(np.where(direction > 0, to_high, np.where(direction < 0, to_low, np.inf)))
        backward = np.min(np.where(direction > 0, -to_low, np.where(direction < 0, -to_high, np.inf)))
        lines.append((first - backward * direction, first + forward * direction))
    return lines
