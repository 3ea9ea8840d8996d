"""Regions of a torch MLP on the plane through three data points: count, bound and picture."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from allocator.errors import InvalidInputError
from allocator.regions.geometry import Slice, enumerate_regions, make_slice, sampled_patterns


@dataclass(frozen=True)
class PlaneBound:
    """Serra et al.'s rank bound for the network restricted to a plane (``plane_bound``): the widths and ranks of
    the restricted layers and the bound itself (an integer: an upper bound on the regions of the whole plane)."""

    widths: tuple[int, ...]
    ranks: tuple[int, ...]
    max_regions: int


@dataclass(frozen=True)
class RegionCount:
    """The exact count on one slice, how long it took, a grid lower bound, and the plane's rank bound."""

    regions: int
    seconds: float
    sampled_lower_bound: int
    grid_resolution: int
    hidden_widths: tuple[int, ...]
    densities: tuple[float, ...]
    plane: PlaneBound

    def to_json(self) -> dict[str, object]:
        return {"regions": self.regions, "seconds": self.seconds, "sampled_lower_bound": self.sampled_lower_bound,
                "grid_resolution": self.grid_resolution, "hidden_widths": list(self.hidden_widths),
                "densities": list(self.densities), "plane_widths": list(self.plane.widths),
                "plane_ranks": list(self.plane.ranks), "plane_bound": self.plane.max_regions}


def plane_bound(hidden: Sequence[tuple[np.ndarray, np.ndarray]], plane: Slice) -> PlaneBound:
    """An upper bound on the linear regions that the hidden layers ``hidden`` (``(W_l, b_l)``, masks applied) cut
    the whole plane ``x = origin + basis (a, b)`` into, for these very weights (no expectation).

    On the plane the network is one with input ``(a, b)``: its first layer is ``M_1 = W_1 basis`` (``n_1 x 2``).
    A neuron whose row of ``M_l`` is zero is constant on the plane (it adds to the next layer's bias and splits
    nothing), so it is dropped, and the next layer keeps only the columns of the neurons left:
    ``M_{l+1} = W_{l+1}[:, S_l]`` restricted to its non-zero rows ``S_{l+1}``. The regions are the activation
    patterns of the neurons left, which Serra, Tjandraatmadja & Ramalingam's bound (ICML 2018) caps with
    ``B(k) = sum over J(k) of prod_l C(n'_l, j_l)``, ``n'_l = |S_l|``, ``k_l = rank M_l``, input width 2
    (``allocator.bound.recursion``: the recursion with every rank law a point mass). With one hidden layer of rank 2 it
    is the count of an arrangement of ``n'_1`` lines in general position, ``1 + n'_1 + C(n'_1, 2)`` (rank 1,
    parallel lines: ``1 + n'_1``): on a slice the count follows how many first-layer rows vary on the plane, not the
    layer's density. The expected bound ``E[B]`` of the
    pruned layer (input width 784 or 2) is not a model of this: the plane's first layer is ``W_1 basis``, dense in
    every row that keeps a weight where the plane moves.
    """
    from allocator.bound.recursion import expected_bound_exact

    widths, ranks = [], []
    matrix = hidden[0][0] @ plane.basis  # M_1
    for layer in range(len(hidden)):
        keep = np.nonzero(np.any(matrix != 0, axis=1))[0]
        if keep.size == 0:
            break  # every later neuron is constant on the plane
        rows = matrix[keep]
        if layer + 1 < len(hidden):
            matrix = hidden[layer + 1][0][:, keep]  # M_{l+1}: the columns of this layer's neurons left
        widths.append(int(keep.size))
        # numpy's tolerance, relative to the largest singular value (scale-free): a singular value counts unless it
        # is rounding noise of an exact deficiency (repeated rows); an error leans to a higher rank, which is safe
        ranks.append(int(np.linalg.matrix_rank(rows)))
    if not widths:
        return PlaneBound((), (), 1)
    laws = []
    for layer, (width, rank) in enumerate(zip(widths, ranks)):
        cols = 2 if layer == 0 else widths[layer - 1]
        laws.append([int(k == rank) for k in range(min(width, cols) + 1)])
    return PlaneBound(tuple(widths), tuple(ranks), int(expected_bound_exact(2, widths, laws)))


def mlp_layers(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(W, b)`` of every Linear layer in forward order (masks applied); refuses anything but an MLP."""
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            raise InvalidInputError(f"layer {name!r} is a convolution; region counting takes MLPs only")
        if isinstance(module, nn.Linear):
            layers.append((module.weight.detach().double().numpy().copy(), module.bias.detach().double().numpy().copy()))
    if len(layers) < 2:
        raise InvalidInputError("region counting needs an MLP with at least one hidden layer")
    return layers


def data_slice(points: Sequence[np.ndarray], mean: float, std: float) -> Slice:
    """The slice through three normalised images, inside the box of valid normalised pixel values."""
    if len(points) != 3:
        raise InvalidInputError(f"a slice needs three points; got {len(points)}")
    return make_slice(*(np.asarray(p).ravel() for p in points), (0.0 - mean) / std, (1.0 - mean) / std)


def count_model_regions(model: nn.Module, plane: Slice, resolution: int = 300) -> RegionCount:
    """Exact regions of ``model``'s hidden layers on ``plane`` (inside its valid polygon), a grid lower bound, and
    the plane's rank bound (``plane_bound``: never below the count)."""
    layers = mlp_layers(model)
    hidden = layers[:-1]
    weights, biases = [w for w, _ in hidden], [b for _, b in hidden]
    start = time.perf_counter()
    cells = enumerate_regions(weights, biases, plane)
    seconds = time.perf_counter() - start
    sampled, _, _ = sampled_patterns(weights, biases, plane, resolution)
    densities = tuple(float(np.count_nonzero(w)) / w.size for w, _ in layers)
    return RegionCount(len(cells), seconds, sampled, resolution, tuple(w.shape[0] for w in weights), densities,
                       plane_bound(hidden, plane))


def plot_regions(models: dict[str, nn.Module], plane: Slice, path: str | Path, resolution: int = 500,
                 title: str = "", exact_counts: dict[str, int] | None = None) -> None:
    """The slice coloured by region (a ``resolution`` x ``resolution`` grid, random colours), one panel per model,
    saved as PNG; each panel's title gives the exact count (``exact_counts``) beside the regions the grid shows."""
    from allocator.plotting import pyplot, save_figure

    figure, axes = pyplot().subplots(1, len(models), figsize=(5.2 * len(models), 5), squeeze=False)
    for axis, (label, model) in zip(axes[0], models.items()):
        layers = mlp_layers(model)[:-1]
        count, points, labels = sampled_patterns([w for w, _ in layers], [b for _, b in layers], plane, resolution)
        rng = np.random.default_rng(0)
        colours = rng.random((max(count, 1), 3))
        image = np.ones((len(labels), 3))
        image[labels >= 0] = colours[labels[labels >= 0]]
        image = image.reshape(resolution, resolution, 3)
        extent = (points[:, 0].min(), points[:, 0].max(), points[:, 1].min(), points[:, 1].max())
        axis.imshow(image, origin="lower", extent=extent, aspect="auto", interpolation="nearest")
        corners = np.array([[0, 0], [1, 0], [0, 1]])
        axis.scatter(corners[:, 0], corners[:, 1], c="black", s=25, marker="x")
        exact = "" if exact_counts is None or label not in exact_counts else f"{exact_counts[label]} regions (exact); "
        axis.set(title=f"{label}: {exact}{count} seen on the {resolution}x{resolution} grid",
                 xlabel="a (towards x1)", ylabel="b (towards x2)")
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)


def images(tensor: torch.Tensor, indices: Sequence[int]) -> list[np.ndarray]:
    """Rows of a data tensor as flat float64 arrays."""
    if any(not 0 <= i < len(tensor) for i in indices):
        raise InvalidInputError(f"point indices {list(indices)} must lie in [0, {len(tensor)})")
    return [tensor[i].double().numpy().ravel() for i in indices]
