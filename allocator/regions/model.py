"""Regions of a torch MLP on the plane through three data points: count, bound and picture."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from allocator.bound import ln_expected_bound
from allocator.errors import InvalidInputError
from allocator.network import Network
from allocator.regions.geometry import Slice, enumerate_regions, make_slice, sampled_patterns


@dataclass(frozen=True)
class RegionCount:
    """The exact count on one slice, how long it took, a grid lower bound, and the bound for ``n0 = 2``."""

    regions: int
    seconds: float
    sampled_lower_bound: int
    grid_resolution: int
    hidden_widths: tuple[int, ...]
    densities: tuple[float, ...]
    ln_bound_n0_2: float  # output layer excluded (the regions counted are those of the hidden layers)
    ln_bound_n0_2_with_output: float  # papers' convention

    def to_json(self) -> dict[str, object]:
        return {"regions": self.regions, "seconds": self.seconds, "sampled_lower_bound": self.sampled_lower_bound,
                "grid_resolution": self.grid_resolution, "hidden_widths": list(self.hidden_widths),
                "densities": list(self.densities), "ln_bound_n0_2": self.ln_bound_n0_2,
                "ln_bound_n0_2_with_output": self.ln_bound_n0_2_with_output,
                "bound_n0_2": float(np.exp(self.ln_bound_n0_2))}


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
    """Exact regions of ``model``'s hidden layers on ``plane`` and the bound for the same widths with n0 = 2."""
    layers = mlp_layers(model)
    hidden = layers[:-1]
    weights, biases = [w for w, _ in hidden], [b for _, b in hidden]
    start = time.perf_counter()
    cells = enumerate_regions(weights, biases, plane)
    seconds = time.perf_counter() - start
    sampled, _, _ = sampled_patterns(weights, biases, plane, resolution)
    densities = tuple(float(np.count_nonzero(w)) / w.size for w, _ in layers)
    widths = tuple(w.shape[0] for w, _ in layers)
    clean = Network(2, widths, include_output_layer=False)
    papers = Network(2, widths)
    return RegionCount(len(cells), seconds, sampled, resolution, tuple(w.shape[0] for w in weights), densities,
                       ln_expected_bound(clean, densities), ln_expected_bound(papers, densities))


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
