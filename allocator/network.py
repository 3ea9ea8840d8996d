"""The framework-neutral description of a ReLU network that the bound and the solver work on.

A network has an input width ``n0`` and weight layers ``l = 1..L`` of widths ``n_1..n_L``; layer ``l``
holds a weight matrix of shape ``(n_l, n_{l-1})`` (rows = outputs, columns = inputs, as in torch). The
last layer is the classifier. By the papers' convention it enters the bound as a last factor although
it has no ReLU (``include_output_layer=True``); the theory-clean bound drops it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Sequence

from allocator.errors import InvalidInputError

#: Widest layer accepted: the bound's arrays are as long as the widths (8 bytes per entry, per layer).
MAX_WIDTH = 1_000_000

#: Layer kinds a ``LayerSpec`` can have. A ``conv`` layer's weight matrix is the unrolled kernel: ``rows`` output
#: channels by ``cols = in_channels * prod(kernel)``; one kept weight costs ``output_positions`` multiply-adds.
LAYER_KINDS = ("linear", "conv")


@dataclass(frozen=True)
class LayerSpec:
    """One weight layer as the bound, the solver and the baselines see it.

    Attributes:
        name: the PyTorch fully qualified name of its weight tensor (``fc1.weight``).
        kind: ``linear`` or ``conv`` (``LAYER_KINDS``).
        rows / cols: the weight matrix, rows = outputs; for a conv, cols = in_channels * prod(kernel).
        kernel: the kernel's spatial size, ``()`` for a linear layer.
        output_positions: positions each output is computed at (1 for linear; H_out * W_out for a conv), so one
            kept weight costs ``flops_per_weight = output_positions`` multiply-adds per example.
        prunable: whether the layer is in the budget.
        in_bound: whether the layer enters the bound.

    Example:
        >>> LayerSpec("conv1.weight", "conv", 6, 25, (5, 5), 576, True, False).tensor_shape
        (6, 1, 5, 5)
    """

    name: str
    kind: str
    rows: int
    cols: int
    kernel: tuple[int, ...]
    output_positions: float
    prunable: bool
    in_bound: bool

    @property
    def weights(self) -> int:
        """``rows * cols``."""
        return self.rows * self.cols

    @property
    def flops_per_weight(self) -> float:
        """Multiply-adds per example that one kept weight costs."""
        return float(self.output_positions)

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        """The weight tensor's shape: ``(rows, cols)``, or ``(out, in, *kernel)`` for a conv."""
        if not self.kernel:
            return (self.rows, self.cols)
        return (self.rows, self.cols // math.prod(self.kernel), *self.kernel)


def _parse_int_list(text: str, what: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    values: list[int] = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise InvalidInputError(
                f"{what}: {part!r} in {text!r} is not an integer; expected comma-separated "
                f"positive integers such as 784,100,100,10"
            ) from None
        values.append(value)
    return values


@dataclass(frozen=True)
class Network:
    """Widths, names and prunability of the weight layers of a feed-forward ReLU network.

    Attributes:
        input_width: ``n0``, the dimension of the input space seen by the first weight layer.
        widths: ``(n_1, ..., n_L)``; ``n_L`` is the classifier's output width.
        names: one name per weight layer, the PyTorch fully qualified name of its weight tensor
            (default ``fc1.weight`` .. ``fcL.weight``).
        prunable: one flag per weight layer; default every layer but the last (the classifier).
        include_output_layer: whether the last weight layer enters the bound (papers' convention: yes).
        flops_per_weight: multiply-adds per example that one kept weight of each layer costs (default 1,
            a linear layer; a convolution's is its number of output positions).
        kernels: per weight layer its kernel's spatial size, ``()`` for a linear layer (the default for every
            layer); a layer with a kernel is a ``conv`` layer whose ``n_{l-1}`` is in_channels * prod(kernel).

    Example:
        >>> net = Network.from_arch("784,100,100,10")
        >>> net.shapes
        ((100, 784), (100, 100), (10, 100))
        >>> net.prunable
        (True, True, False)
    """

    input_width: int
    widths: tuple[int, ...]
    names: tuple[str, ...] = field(default=())
    prunable: tuple[bool, ...] = field(default=())
    include_output_layer: bool = True
    flops_per_weight: tuple[float, ...] = field(default=())
    kernels: tuple[tuple[int, ...], ...] = field(default=())

    def __post_init__(self) -> None:
        widths = tuple(self.widths)
        for label, value in [("input width n0", self.input_width)] + [
            (f"width of weight layer {i + 1}", w) for i, w in enumerate(widths)
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{label} is {value!r}; widths must be integers >= 1")
            if value > MAX_WIDTH:
                raise InvalidInputError(f"{label} is {value!r}; widths above {MAX_WIDTH:,} are not supported")
        if len(widths) == 0:
            raise InvalidInputError("the network has no weight layers; give at least one width after n0")
        object.__setattr__(self, "widths", widths)
        n_layers = len(widths)
        names = tuple(self.names) if self.names else tuple(f"fc{i + 1}.weight" for i in range(n_layers))
        if len(names) != n_layers:
            raise InvalidInputError(f"{len(names)} layer names given for {n_layers} weight layers: {names!r}")
        if len(set(names)) != n_layers:
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInputError(f"layer names must be unique; repeated: {duplicates!r}")
        object.__setattr__(self, "names", names)
        prunable = tuple(self.prunable) if self.prunable else tuple(i < n_layers - 1 for i in range(n_layers))
        if len(prunable) != n_layers:
            raise InvalidInputError(
                f"{len(prunable)} prunable flags given for {n_layers} weight layers: {prunable!r}"
            )
        object.__setattr__(self, "prunable", tuple(bool(p) for p in prunable))
        flops = tuple(self.flops_per_weight) if self.flops_per_weight else (1.0,) * n_layers
        if len(flops) != n_layers or any(not (isinstance(f, (int, float)) and f > 0) for f in flops):
            raise InvalidInputError(
                f"flops_per_weight is {flops!r}; expected {n_layers} positive numbers, one per weight layer"
            )
        object.__setattr__(self, "flops_per_weight", tuple(float(f) for f in flops))
        kernels = tuple(tuple(k) for k in self.kernels) if self.kernels else ((),) * n_layers
        if len(kernels) != n_layers:
            raise InvalidInputError(f"{len(kernels)} kernels given for {n_layers} weight layers: {kernels!r}")
        previous = (self.input_width,) + widths[:-1]
        for name, kernel, cols in zip(names, kernels, previous):
            if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in kernel):
                raise InvalidInputError(f"kernel of {name} is {kernel!r}; expected positive integers such as (3, 3)")
            if kernel and cols % math.prod(kernel):
                raise InvalidInputError(f"layer {name} has {cols} inputs, not a multiple of its kernel size "
                                        f"{math.prod(kernel)} ({kernel!r})")
        object.__setattr__(self, "kernels", kernels)
        if not self.include_output_layer and n_layers < 2:
            raise InvalidInputError(
                "excluding the output layer (--exclude-output-layer, include_output_layer=False) leaves no layer in the "
                "bound for a network with one weight layer"
            )

    @classmethod
    def from_arch(cls, arch: str | Sequence[int], *, include_output_layer: bool = True) -> "Network":
        """Build from ``"n0,n1,...,nL"`` (or a sequence of ints); every layer but the last is prunable."""
        values = _parse_int_list(arch, "--arch") if isinstance(arch, str) else [int(v) for v in arch]
        if len(values) < 2:
            raise InvalidInputError(
                f"--arch {arch!r} has {len(values)} entr{'y' if len(values) == 1 else 'ies'}; expected the "
                f"input width then at least one layer width, such as 784,100,100,10"
            )
        return cls(values[0], tuple(values[1:]), include_output_layer=include_output_layer)

    @property
    def n_weight_layers(self) -> int:
        """``L``, the number of weight layers (the classifier included)."""
        return len(self.widths)

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """``(n_l, n_{l-1})`` for every weight layer: rows are outputs, columns inputs."""
        previous = (self.input_width,) + self.widths[:-1]
        return tuple((rows, cols) for rows, cols in zip(self.widths, previous))

    @property
    def weights(self) -> tuple[int, ...]:
        """Number of weights ``n_l * n_{l-1}`` of every weight layer."""
        return tuple(rows * cols for rows, cols in self.shapes)

    @property
    def prunable_weights(self) -> int:
        """Total weights over the prunable layers: the denominator of a global density."""
        return sum(w for w, p in zip(self.weights, self.prunable) if p)

    @property
    def bound_layers(self) -> tuple[int, ...]:
        """Indices of the weight layers that enter the bound."""
        n = self.n_weight_layers
        return tuple(range(n if self.include_output_layer else n - 1))

    @functools.cached_property
    def layers(self) -> tuple[LayerSpec, ...]:
        """One ``LayerSpec`` per weight layer, in order (derived once: the bound asks for it on every evaluation)."""
        in_bound = set(self.bound_layers)
        return tuple(
            LayerSpec(name, "conv" if kernel else "linear", rows, cols, kernel, flops, prunable, index in in_bound)
            for index, (name, (rows, cols), kernel, flops, prunable) in enumerate(
                zip(self.names, self.shapes, self.kernels, self.flops_per_weight, self.prunable))
        )

    @property
    def all_parameters(self) -> int:
        """Every weight and one bias per output unit: the numerator of a compression ratio."""
        return sum(self.weights) + sum(self.widths)

    def compression_ratio(self, kept_total: int) -> float:
        """All parameters / non-zero parameters (ShrinkBench's convention) when the prunable layers keep
        ``kept_total`` weights: biases and non-prunable weights count as non-zero.

        Example:
            >>> round(Network.from_arch("784,100,100,10").compression_ratio(88), 2)
            69.04
        """
        return self.all_parameters / (self.all_parameters - self.prunable_weights + kept_total)

    def arch_string(self) -> str:
        """``"n0,n1,...,nL"``."""
        return ",".join(str(v) for v in (self.input_width,) + self.widths)

    def check_densities(self, densities: Sequence[float]) -> tuple[float, ...]:
        """Check one density in [0, 1] per weight layer; return them as floats.

        Raises:
            InvalidInputError: naming the layer and the value when the count or a value is off.
        """
        values = tuple(densities)
        if len(values) != self.n_weight_layers:
            raise InvalidInputError(
                f"{len(values)} densities given for {self.n_weight_layers} weight layers "
                f"({', '.join(self.names)}); give one per weight layer, the output layer included"
            )
        checked: list[float] = []
        for name, value in zip(self.names, values):
            try:
                density = float(value)
            except (TypeError, ValueError):
                raise InvalidInputError(f"density of {name} is {value!r}; expected a number in [0, 1]") from None
            if not math.isfinite(density) or not 0.0 <= density <= 1.0:
                raise InvalidInputError(f"density of {name} is {value!r}; densities must lie in [0, 1]")
            checked.append(density)
        return tuple(checked)

    def expand_densities(self, densities: Sequence[float]) -> tuple[float, ...]:
        """One value means "this density for every prunable layer, 1 for the others"; else one per layer."""
        values = tuple(densities)
        if len(values) == 1:
            values = tuple(values[0] if p else 1.0 for p in self.prunable)
        return self.check_densities(values)
