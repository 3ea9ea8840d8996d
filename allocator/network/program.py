"""The bound's *program*: typed steps for networks that are not a plain chain of ReLU layers (conv.md).

A region's carried dimension ``d`` enters each step; each step multiplies the count of regions by a factor that
depends on ``d`` and on the ranks of its weight layers, and passes a (possibly smaller) dimension on. The steps and
their rigorous factors (``allocator.bound.program`` evaluates them):

- ``Relu(layer, width)``: a ReLU layer (linear or conv) of ``n = width`` units whose weight matrix has rank ``k``:
  ``sum_{j <= min(d, k)} C(n, j)`` regions, carried ``min(n - j, d, k)`` (bound.md).
- ``ReluMaxPool(layer, width, windows, window_size)``: the ReLU layer followed by a max-pool of ``u = windows``
  windows of ``w = window_size`` units: ``max(0, z_1..z_w)`` is a maxout unit with ``w + 1`` pieces, so with
  ``c = min(d, k)`` at most ``min(sum_{j <= c} C(u C(w+1, 2), j), (w+1)^u)`` regions (Serra et al.'s maxout count,
  capped), carried ``min(d, k, u)``.
- ``Cap(outputs, label)``: a linear map without a split (average pool, global average pool, flatten): carried
  ``min(d, outputs)``.
- ``Residual(first, first_width, second, width, shortcut_rank, shortcut_layer)``: ``y = ReLU(conv2(ReLU(conv1 x)) +
  S x)``. The first ReLU splits by ``sum_{j <= min(d, k1)} C(n_h, j)`` but carries the full ``d`` (the skip keeps
  ``x``); the second is a ReLU layer of ``n_y = width`` units whose pre-activation has rank at most
  ``kappa = min(n_y, min(k1, k2) + rank S)``: ``rank S = shortcut_rank`` for an identity (``n_y``) or a
  parameter-free option-A shortcut (``c_in H' W'``), or the rank of the 1x1-conv weight layer ``shortcut_layer``.

A ResNet computed as a plain chain of its convolutions is *not* an upper bound (the skip keeps dimensions a pruned
conv would cap): programs exist so that it is never computed that way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

from allocator.errors import InvalidInputError


@dataclass(frozen=True)
class Relu:
    """A ReLU layer: weight layer ``layer`` (index into the network's weight layers), ``width`` units."""

    layer: int
    width: int

    def layers(self) -> tuple[int, ...]:
        return (self.layer,)


@dataclass(frozen=True)
class ReluMaxPool:
    """Weight layer ``layer`` (``width`` units), ReLU, then a max-pool of ``windows`` windows of ``window_size``."""

    layer: int
    width: int
    windows: int
    window_size: int

    def layers(self) -> tuple[int, ...]:
        return (self.layer,)


@dataclass(frozen=True)
class Cap:
    """A linear map with ``outputs`` outputs and no split; ``label`` says which (``flatten``, ``avgpool``, ...)."""

    outputs: int
    label: str = "cap"

    def layers(self) -> tuple[int, ...]:
        return ()


@dataclass(frozen=True)
class Residual:
    """A basic residual block (module docstring); exactly one of ``shortcut_rank`` / ``shortcut_layer`` is set."""

    first: int
    first_width: int
    second: int
    width: int
    shortcut_rank: int | None = None
    shortcut_layer: int | None = None

    def layers(self) -> tuple[int, ...]:
        return (self.first, self.second) + (() if self.shortcut_layer is None else (self.shortcut_layer,))


Step = Union[Relu, ReluMaxPool, Cap, Residual]


def check_program(program: Sequence[Step], n_layers: int) -> None:
    """Every step well formed and every weight layer in at most one step.

    Raises:
        InvalidInputError: naming the step and the bad value.
    """
    seen: set[int] = set()
    for position, step in enumerate(program):
        if not isinstance(step, (Relu, ReluMaxPool, Cap, Residual)):
            raise InvalidInputError(f"program step {position} is {step!r}; expected Relu, ReluMaxPool, Cap or Residual")
        sizes = {"width": getattr(step, "width", 1), "outputs": getattr(step, "outputs", 1),
                 "windows": getattr(step, "windows", 1), "window_size": getattr(step, "window_size", 1),
                 "first_width": getattr(step, "first_width", 1)}
        for what, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"program step {position} ({type(step).__name__}) has {what} {value!r}; "
                                        f"expected an integer >= 1")
        if isinstance(step, Residual) and (step.shortcut_rank is None) == (step.shortcut_layer is None):
            raise InvalidInputError(f"program step {position} (Residual) needs exactly one of shortcut_rank and "
                                    f"shortcut_layer")
        if isinstance(step, Residual) and step.shortcut_rank is not None and step.shortcut_rank < 0:
            raise InvalidInputError(f"program step {position} (Residual) has shortcut_rank {step.shortcut_rank!r}; "
                                    f"expected an integer >= 0")
        for layer in step.layers():
            if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
                raise InvalidInputError(f"program step {position} names weight layer {layer!r}; the network has "
                                        f"{n_layers} (0..{n_layers - 1})")
            if layer in seen:
                raise InvalidInputError(f"weight layer {layer} appears in two program steps; each enters once")
            seen.add(layer)


def program_domains(input_width: int, program: Sequence[Step], max_ranks: Sequence[int]) -> tuple[int, ...]:
    """``D_s``: the largest dimension that can enter step ``s`` (``s = 0..len(program)``, the last after every
    step), with ``max_ranks[l]`` the largest rank weight layer ``l`` can have (``min(rows, cols)`` of its matrix).

    Example:
        >>> program_domains(784, [Relu(0, 100), Relu(1, 100), Relu(2, 10)], [100, 100, 10])
        (784, 100, 100, 10)
    """
    domains = [input_width]
    d = input_width
    for step in program:
        if isinstance(step, Relu):
            d = min(d, step.width, max_ranks[step.layer])
        elif isinstance(step, ReluMaxPool):
            d = min(d, max_ranks[step.layer], step.windows)
        elif isinstance(step, Cap):
            d = min(d, step.outputs)
        else:
            d = min(d, step.width)
        domains.append(d)
    return tuple(domains)
