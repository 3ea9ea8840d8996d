"""``Network`` and ``LayerSpec``: the framework-neutral description the bound and the solver work on.

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
from allocator.network.conv import ConvGeometry
from allocator.network.program import Relu, Step, check_program, program_domains

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
        conv: the convolution's geometry when the bound sees the conv (its unrolled matrix), else ``None``.

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
    conv: ConvGeometry | None = None

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
        program: the bound's steps (``allocator.network.program``) when the network is not a plain chain (a CNN
            with its convolutions inside the bound); then ``layer_shapes`` gives every weight matrix, ``widths`` the
            units of every weight layer (``c_out H' W'`` for a conv) and ``convs`` the geometry of every conv.
        layer_shapes: ``(rows, cols)`` of every weight matrix (a conv's: ``c_out`` by ``c_in kh kw``); default the
            chain ``(n_l, n_{l-1})``.
        convs: per weight layer its ``ConvGeometry`` or ``None``.
        parameters: every parameter of the model (weights, biases, BatchNorm), the numerator of a compression
            ratio; default the weights plus one bias per row.

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
    program: tuple[Step, ...] = field(default=())
    layer_shapes: tuple[tuple[int, int], ...] = field(default=())
    convs: tuple[ConvGeometry | None, ...] = field(default=())
    parameters: int | None = None

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
        convs = tuple(self.convs) if self.convs else (None,) * n_layers
        if len(convs) != n_layers or any(c is not None and not isinstance(c, ConvGeometry) for c in convs):
            raise InvalidInputError(f"convs is {convs!r}; expected {n_layers} entries, a ConvGeometry or None each")
        object.__setattr__(self, "convs", convs)
        shapes = tuple(tuple(s) for s in self.layer_shapes) if self.layer_shapes else ()
        if shapes and (len(shapes) != n_layers or any(len(s) != 2 or min(s) < 1 for s in shapes)):
            raise InvalidInputError(f"layer_shapes is {shapes!r}; expected {n_layers} pairs (rows, cols) >= 1")
        for name, geometry, shape in zip(names, convs, shapes or ((None, None),) * n_layers):
            if geometry is not None and shape != (geometry.out_channels, geometry.weights // geometry.out_channels):
                raise InvalidInputError(f"layer {name}: shape {shape} does not match its convolution {geometry}")
        object.__setattr__(self, "layer_shapes", shapes)
        if any(c is not None for c in convs) and not self.flops_per_weight:
            object.__setattr__(self, "flops_per_weight", tuple(1.0 if c is None else float(c.output_positions)
                                                                  for c in convs))
        if any(c is not None for c in convs) and not self.kernels:
            object.__setattr__(self, "kernels", tuple(() if c is None else c.kernel for c in convs))
        flops = tuple(self.flops_per_weight) if self.flops_per_weight else (1.0,) * n_layers
        if len(flops) != n_layers or any(not (isinstance(f, (int, float)) and f > 0) for f in flops):
            raise InvalidInputError(
                f"flops_per_weight is {flops!r}; expected {n_layers} positive numbers, one per weight layer"
            )
        object.__setattr__(self, "flops_per_weight", tuple(float(f) for f in flops))
        kernels = tuple(tuple(k) for k in self.kernels) if self.kernels else ((),) * n_layers
        if len(kernels) != n_layers:
            raise InvalidInputError(f"{len(kernels)} kernels given for {n_layers} weight layers: {kernels!r}")
        previous = tuple(c for _, c in shapes) if shapes else (self.input_width,) + widths[:-1]
        for name, kernel, cols in zip(names, kernels, previous):
            if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in kernel):
                raise InvalidInputError(f"kernel of {name} is {kernel!r}; expected positive integers such as (3, 3)")
            if kernel and cols % math.prod(kernel):
                raise InvalidInputError(f"layer {name} has {cols} inputs, not a multiple of its kernel size "
                                        f"{math.prod(kernel)} ({kernel!r})")
        object.__setattr__(self, "kernels", kernels)
        if any(c is not None for c in convs) and not self.program:
            raise InvalidInputError("convs describe the convolutions of a bound program: give program (and "
                                    "layer_shapes) too, e.g. through allocator.network.ProgramBuilder")
        if self.program:
            if not shapes:
                raise InvalidInputError("a network with a program needs layer_shapes (its weight matrices)")
            object.__setattr__(self, "program", tuple(self.program))
            check_program(self.program, n_layers)
        if self.parameters is not None and (isinstance(self.parameters, bool) or not isinstance(self.parameters, int)
                                            or self.parameters < sum(r * c for r, c in self.shapes)):
            raise InvalidInputError(f"parameters is {self.parameters!r}; expected an integer >= the weights "
                                    f"{sum(r * c for r, c in self.shapes)}")
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

    @functools.cached_property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """``(n_l, n_{l-1})`` for every weight layer: rows are outputs, columns inputs."""
        if self.layer_shapes:
            return self.layer_shapes
        previous = (self.input_width,) + self.widths[:-1]
        return tuple((rows, cols) for rows, cols in zip(self.widths, previous))

    @functools.cached_property
    def weights(self) -> tuple[int, ...]:
        """Number of weights ``n_l * n_{l-1}`` of every weight layer."""
        return tuple(rows * cols for rows, cols in self.shapes)

    @functools.cached_property
    def prunable_weights(self) -> int:
        """Total weights over the prunable layers: the denominator of a global density."""
        return sum(w for w, p in zip(self.weights, self.prunable) if p)

    @property
    def bound_layers(self) -> tuple[int, ...]:
        """Indices of the weight layers that enter the bound (in program order for a program)."""
        if self.program:
            return tuple(layer for step in self.program for layer in step.layers())
        n = self.n_weight_layers
        return tuple(range(n if self.include_output_layer else n - 1))

    @functools.cached_property
    def layers(self) -> tuple[LayerSpec, ...]:
        """One ``LayerSpec`` per weight layer, in order (derived once: the bound asks for it on every evaluation)."""
        in_bound = set(self.bound_layers)
        return tuple(
            LayerSpec(name, "conv" if kernel else "linear", rows, cols, kernel, flops, prunable, index in in_bound,
                      geometry if index in in_bound else None)
            for index, (name, (rows, cols), kernel, flops, prunable, geometry) in enumerate(
                zip(self.names, self.shapes, self.kernels, self.flops_per_weight, self.prunable, self.convs))
        )

    @functools.cached_property
    def bound_program(self) -> tuple[Step, ...]:
        """The program the bound evaluates: ``program`` if given, else the chain ``Relu(l, n_l)`` over the bound
        layers."""
        if self.program:
            return self.program
        return tuple(Relu(layer, self.widths[layer]) for layer in self.bound_layers)

    @property
    def is_chain(self) -> bool:
        """Whether the bound is the plain chain of bound.md (no program given)."""
        return not self.program

    @functools.cached_property
    def max_ranks(self) -> tuple[int, ...]:
        """The largest rank each weight layer's matrix can have: ``min(rows, cols)``, of the unrolled matrix for a
        conv the bound sees."""
        return tuple(min(g.rows, g.cols) if g is not None else min(rows, cols)
                     for g, (rows, cols) in zip(self.convs, self.shapes))

    @functools.cached_property
    def domains(self) -> tuple[int, ...]:
        """``D_s``, the largest dimension entering each program step (``allocator.network.program``)."""
        return program_domains(self.input_width, self.bound_program, self.max_ranks)

    @functools.cached_property
    def rank_caps(self) -> dict[int, int]:
        """Per bound layer, the dimension its rank is capped at: ``D_s`` of its step (only ``min(rank, D_s)``
        matters)."""
        return {layer: self.domains[position] for position, step in enumerate(self.bound_program)
                for layer in step.layers()}

    @property
    def all_parameters(self) -> int:
        """Every parameter: ``parameters`` when given, else every weight and one bias per row (output unit or
        channel): the numerator of a compression ratio."""
        if self.parameters is not None:
            return self.parameters
        return sum(self.weights) + sum(rows for rows, _ in self.shapes)

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
