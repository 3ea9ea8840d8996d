"""Exact linear regions of a ReLU MLP on a 2-D affine slice, by splitting convex polygons layer by layer.

The slice is ``x(a, b) = x0 + a (x1 - x0) + b (x2 - x0)`` through three inputs, restricted to the points whose
every coordinate lies in ``[low, high]`` (the valid normalised pixel values): a convex polygon in ``(a, b)``.
On a cell where the activation pattern of layers ``1..l-1`` is fixed, the pre-activations of layer ``l`` are
affine in ``p = (a, b)``: ``z = A p + c``. Each neuron's line ``A_j p + c_j = 0`` splits the cell; a cell that
no line crosses has one sign per neuron, so after the last hidden layer every cell has one activation pattern.
The set of points with a given full pattern is an intersection of half-planes, hence convex: each pattern is
one cell, and the number of cells is the number of linear regions in the slice.

Cells thinner than ``area_tolerance`` (relative to the slice's area) are dropped as numerical slivers; a neuron
whose values on a cell's vertices are all within ``side_tolerance`` of 0 does not split it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from allocator.errors import InvalidInputError


@dataclass(frozen=True)
class Cell:
    """A convex polygon (vertices counter-clockwise, ``(k, 2)``) and its activation pattern per hidden layer."""

    vertices: np.ndarray
    pattern: tuple[tuple[bool, ...], ...]

    @property
    def area(self) -> float:
        return polygon_area(self.vertices)

    def interior_point(self) -> np.ndarray:
        return self.vertices.mean(axis=0)


@dataclass(frozen=True)
class Slice:
    """The plane through ``x0, x1, x2``: ``x = origin + basis @ (a, b)``, and its valid polygon in ``(a, b)``."""

    origin: np.ndarray
    basis: np.ndarray  # (n0, 2)
    polygon: np.ndarray  # (k, 2) vertices of the valid region


def polygon_area(vertices: np.ndarray) -> float:
    """Shoelace area (positive for counter-clockwise vertices)."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def clip(vertices: np.ndarray, normal: np.ndarray, offset: float, keep_positive: bool) -> np.ndarray:
    """The part of a convex polygon where ``normal . p + offset >= 0`` (or ``<= 0``): Sutherland-Hodgman."""
    values = vertices @ normal + offset
    if not keep_positive:
        values = -values
    out = []
    count = len(vertices)
    for i in range(count):
        current, following = vertices[i], vertices[(i + 1) % count]
        v_current, v_following = values[i], values[(i + 1) % count]
        if v_current >= 0:
            out.append(current)
        if (v_current >= 0) != (v_following >= 0):
            t = v_current / (v_current - v_following)
            out.append(current + t * (following - current))
    return np.array(out) if out else np.zeros((0, 2))


def make_slice(x0: np.ndarray, x1: np.ndarray, x2: np.ndarray, low: float, high: float) -> Slice:
    """The plane through three inputs and its polygon of points with every coordinate in ``[low, high]``."""
    x0, x1, x2 = (np.asarray(v, dtype=np.float64).ravel() for v in (x0, x1, x2))
    basis = np.stack([x1 - x0, x2 - x0], axis=1)
    if np.linalg.matrix_rank(basis) < 2:
        raise InvalidInputError("the three points are collinear; they do not span a plane")
    tolerance = 1e-5 * (high - low)  # data normalised in float32 sits a few ulps outside the float64 box
    if np.any(x0 < low - tolerance) or np.any(x0 > high + tolerance):
        raise InvalidInputError(f"x0 has coordinates outside [{low}, {high}]")
    x0 = np.clip(x0, low, high)
    # A square surely containing the polygon: every point is within the box, |basis p| <= diameter.
    radius = 4.0 * (high - low) * np.sqrt(len(x0)) / np.linalg.svd(basis, compute_uv=False)[-1]
    polygon = np.array([[-radius, -radius], [radius, -radius], [radius, radius], [-radius, radius]])
    active = np.any(np.abs(basis) > 0, axis=1)
    for i in np.nonzero(active)[0]:
        polygon = clip(polygon, basis[i], x0[i] - low, True)  # x_i >= low
        polygon = clip(polygon, -basis[i], high - x0[i], True)  # x_i <= high
        if len(polygon) < 3:
            raise InvalidInputError("the valid region of the plane is empty")
    return Slice(x0, basis, polygon)


def _split(cell_vertices: np.ndarray, normals: np.ndarray, offsets: np.ndarray, min_area: float, side_tolerance: float):
    """Split one polygon by the lines ``normals[j] . p + offsets[j] = 0``; returns [(vertices, signs)].

    All neurons are evaluated on the vertices at once; only the lines that cross the cell split it, one after
    the other (each piece is tested again, as a later line may miss some pieces).
    """
    values = cell_vertices @ normals.T + offsets  # (vertices, neurons)
    scale = side_tolerance * (1.0 + np.abs(values).max(axis=0))
    crossing = np.nonzero(np.any(values > scale, axis=0) & np.any(values < -scale, axis=0))[0]
    base = values.mean(axis=0) > 0
    pieces = [(cell_vertices, base.copy())]
    for j in crossing:
        next_pieces = []
        for vertices, signs in pieces:
            piece_values = vertices @ normals[j] + offsets[j]
            if np.all(piece_values >= -scale[j]) or np.all(piece_values <= scale[j]):
                signs[j] = float(np.mean(piece_values)) > 0
                next_pieces.append((vertices, signs))
                continue
            for keep_positive in (True, False):
                part = clip(vertices, normals[j], offsets[j], keep_positive)
                if len(part) >= 3 and polygon_area(part) > min_area:
                    piece_signs = signs.copy()
                    piece_signs[j] = keep_positive
                    next_pieces.append((part, piece_signs))
        pieces = next_pieces
    return pieces


def enumerate_regions(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    region: Slice,
    *,
    area_tolerance: float = 1e-12,
    side_tolerance: float = 1e-12,
) -> list[Cell]:
    """Every linear region of the hidden layers ``ReLU(W_l h + b_l)`` on the slice (module docstring).

    ``weights[l]`` has shape ``(n_l, n_{l-1})``; pass the hidden layers only (the output layer is affine and
    creates no region).
    """
    if len(weights) != len(biases) or not weights:
        raise InvalidInputError("give one bias per weight matrix, and at least one hidden layer")
    total_area = polygon_area(region.polygon)
    min_area = area_tolerance * total_area
    # Each cell carries the affine map p -> h (the current layer's input): h = M p + v.
    cells = [(region.polygon, (), region.basis, region.origin)]
    for w, b in zip(weights, biases):
        w = np.asarray(w, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        next_cells = []
        for vertices, pattern, m, v in cells:
            normals = w @ m  # (n_l, 2): z = normals p + offsets
            offsets = w @ v + b
            for piece, signs in _split(vertices, normals, offsets, min_area, side_tolerance):
                next_cells.append((piece, pattern + (tuple(bool(x) for x in signs),), normals * signs[:, None],
                                   offsets * signs))
        cells = next_cells
    return [Cell(vertices, pattern) for vertices, pattern, _, _ in cells]


def sampled_patterns(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], region: Slice,
                     resolution: int = 400) -> tuple[int, np.ndarray, np.ndarray]:
    """A lower bound: distinct activation patterns at the grid points inside the slice's polygon.

    Returns the count, the grid's ``(a, b)`` points and an integer region label per point (-1 outside).
    """
    low, high = region.polygon.min(axis=0), region.polygon.max(axis=0)
    a, b = np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))
    points = np.stack([a.ravel(), b.ravel()], axis=1)
    inside = np.ones(len(points), dtype=bool)
    polygon = region.polygon
    for i in range(len(polygon)):
        edge = polygon[(i + 1) % len(polygon)] - polygon[i]
        inside &= (edge[0] * (points[:, 1] - polygon[i, 1]) - edge[1] * (points[:, 0] - polygon[i, 0])) >= 0
    h = region.origin[None, :] + points[inside] @ region.basis.T
    codes = []
    for w, bias in zip(weights, biases):
        z = h @ np.asarray(w, dtype=np.float64).T + bias
        codes.append(z > 0)
        h = np.maximum(z, 0)
    pattern = np.concatenate(codes, axis=1)
    _, labels = np.unique(np.packbits(pattern, axis=1), axis=0, return_inverse=True)
    full = np.full(len(points), -1)
    full[inside] = labels.ravel()
    return int(labels.max() + 1) if len(labels) else 0, points, full
