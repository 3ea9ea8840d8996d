"""``ProgramBuilder``: a CNN's bound program and weight layers, written layer by layer (no torch).

The registry's CNNs are described with it by hand, and the fx translator of ``allocator.pruning.description`` emits
the same calls from a traced graph; tests hold the two equal. Shapes are tracked as ``(C, H, W)`` until a flatten,
then as a width. BatchNorm folds into the conv before it (an affine change per channel never raises a rank), so it
only adds parameters.

Example (LeNet-5 for 28x28 grey input, its convolutions inside the bound):
    >>> b = ProgramBuilder((1, 28, 28))
    >>> _ = b.conv("conv1.weight", 6, 5, padding=2, pool=2), b.conv("conv2.weight", 16, 5, pool=2)
    >>> b.flatten()
    >>> _ = b.linear("fc1.weight", 120), b.linear("fc2.weight", 84), b.output("fc3.weight", 10)
    >>> net = b.build()
    >>> net.input_width, net.domains
    (784, (784, 784, 400, 400, 120, 84, 10))
"""

from __future__ import annotations

from dataclasses import dataclass

from allocator.errors import InvalidInputError
from allocator.network.conv import ConvGeometry
from allocator.network.program import Cap, Relu, ReluMaxPool, Residual, Step
from allocator.network.spec import Network


@dataclass(frozen=True)
class _Layer:
    name: str
    rows: int
    cols: int
    units: int
    conv: ConvGeometry | None


class ProgramBuilder:
    """Accumulates weight layers and program steps; ``build()`` gives the ``Network`` (see the module docstring)."""

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        if len(input_shape) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in input_shape):
            raise InvalidInputError(f"input shape is {input_shape!r}; expected (channels, height, width) >= 1")
        self.input_shape = tuple(input_shape)
        self._shape: tuple[int, ...] = tuple(input_shape)
        self._layers: list[_Layer] = []
        self._steps: list[Step] = []
        self._parameters = 0
        self._output: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The current activation shape: ``(C, H, W)``, or ``(width,)`` after a flatten."""
        return self._shape

    def _grid(self, what: str) -> tuple[int, int, int]:
        if len(self._shape) != 3:
            raise InvalidInputError(f"{what} needs a (C, H, W) activation; the network is flat here ({self._shape})")
        return self._shape  # type: ignore[return-value]

    def _add(self, name: str, rows: int, cols: int, units: int, conv: ConvGeometry | None, bias: bool,
             batch_norm: bool) -> int:
        if any(layer.name == name for layer in self._layers):
            raise InvalidInputError(f"weight layer {name!r} is described twice")
        if self._output is not None:
            raise InvalidInputError(f"weight layer {name!r} comes after the classifier")
        self._layers.append(_Layer(name, rows, cols, units, conv))
        self._parameters += rows * cols + (rows if bias else 0) + (2 * rows if batch_norm else 0)
        return len(self._layers) - 1

    def _conv_layer(self, name: str, channels: int, kernel: int | tuple[int, int], stride: int | tuple[int, int],
                    padding: int | tuple[int, int], bias: bool, batch_norm: bool,
                    shape: tuple[int, int, int] | None = None) -> tuple[int, ConvGeometry]:
        c, h, w = shape if shape is not None else self._grid(f"conv {name}")
        geometry = ConvGeometry(c, channels, kernel, (h, w), stride, padding)  # type: ignore[arg-type]
        index = self._add(name, channels, geometry.weights // channels, geometry.rows, geometry, bias, batch_norm)
        return index, geometry

    def conv(self, name: str, channels: int, kernel: int | tuple[int, int], *, stride: int | tuple[int, int] = 1,
             padding: int | tuple[int, int] = 0, bias: bool = True, batch_norm: bool = False,
             pool: int | None = None, pool_stride: int | None = None) -> int:
        """Conv (+ BatchNorm) + ReLU, then an optional ``pool x pool`` max-pool (stride ``pool_stride``, default
        ``pool``); returns the weight layer's index."""
        index, geometry = self._conv_layer(name, channels, kernel, stride, padding, bias, batch_norm)
        h, w = geometry.output_size
        if pool is None:
            self._steps.append(Relu(index, geometry.rows))
            self._shape = (channels, h, w)
            return index
        step = pool if pool_stride is None else pool_stride
        if pool < 1 or step < 1 or pool > min(h, w):
            raise InvalidInputError(f"max-pool {pool} (stride {step}) after {name} does not fit its {h}x{w} output")
        ph, pw = (h - pool) // step + 1, (w - pool) // step + 1
        self._steps.append(ReluMaxPool(index, geometry.rows, channels * ph * pw, pool * pool))
        self._shape = (channels, ph, pw)
        return index

    def avg_pool(self, kernel: int, stride: int | None = None, label: str = "avgpool") -> None:
        """An average pool (no split, a cap on the carried dimension)."""
        c, h, w = self._grid("average pool")
        step = kernel if stride is None else stride
        self._shape = (c, (h - kernel) // step + 1, (w - kernel) // step + 1)
        self._steps.append(Cap(c * self._shape[1] * self._shape[2], label))

    def global_avg_pool(self) -> None:
        """Global average pooling: ``C`` outputs, then flat."""
        c, _, _ = self._grid("global average pool")
        self._steps.append(Cap(c, "global-avgpool"))
        self._shape = (c,)

    def flatten(self) -> None:
        """Flatten ``(C, H, W)`` to ``C H W`` features (no cap beyond the width)."""
        if len(self._shape) == 3:
            c, h, w = self._shape
            self._shape = (c * h * w,)
            self._steps.append(Cap(c * h * w, "flatten"))

    def linear(self, name: str, features: int, *, bias: bool = True) -> int:
        """Linear + ReLU on a flat activation."""
        if len(self._shape) != 1:
            raise InvalidInputError(f"linear {name} needs a flat activation; add a flatten or a global average pool "
                                    f"after the {self._shape} activation")
        index = self._add(name, features, self._shape[0], features, None, bias, False)
        self._steps.append(Relu(index, features))
        self._shape = (features,)
        return index

    def output(self, name: str, classes: int, *, bias: bool = True) -> int:
        """The classifier (no ReLU); it enters the bound as a last factor by the papers' convention."""
        if len(self._shape) != 1:
            raise InvalidInputError(f"classifier {name} needs a flat activation, not {self._shape}")
        index = self._add(name, classes, self._shape[0], classes, None, bias, False)
        self._output = index
        self._shape = (classes,)
        return index

    def residual(self, prefix: str, channels: int, *, stride: int = 1, shortcut: str = "identity",
                 batch_norm: bool = True) -> None:
        """He et al.'s basic block ``ReLU(bn2(conv2(ReLU(bn1(conv1 x)))) + S x)`` with 3x3 convs (padding 1),
        ``conv1`` with ``stride``, weight names ``<prefix>.conv1.weight`` / ``.conv2`` / ``.shortcut.0`` (see
        ``residual_block``)."""
        self.residual_block(
            (f"{prefix}.conv1.weight", channels, 3, stride, 1, not batch_norm, batch_norm),
            (f"{prefix}.conv2.weight", channels, 3, 1, 1, not batch_norm, batch_norm),
            shortcut, (f"{prefix}.shortcut.0.weight", stride, batch_norm))

    def residual_block(self, first: tuple, second: tuple, shortcut: str = "identity",
                       projection: tuple | None = None) -> None:
        """A residual block ``ReLU(conv2(ReLU(conv1 x)) + S x)``; ``first`` / ``second`` are ``(weight name,
        channels, kernel, stride, padding, bias, batch_norm)``; ``shortcut``: ``identity``, ``option-a`` (subsample
        by the first conv's stride and zero-pad channels, no parameters) or ``conv`` (a 1x1 conv, ``projection`` =
        ``(weight name, stride, batch_norm)``). The block's output must have the second conv's shape.

        Raises:
            InvalidInputError: shapes that do not add up, or an unknown shortcut.
        """
        c, h, w = self._grid(f"residual block at {first[0]}")
        if shortcut not in ("identity", "option-a", "conv"):
            raise InvalidInputError(f"residual block at {first[0]}: shortcut {shortcut!r}; accepted: identity, "
                                    f"option-a, conv")
        name1, channels1, kernel1, stride1, padding1, bias1, bn1 = first
        name2, channels2, kernel2, stride2, padding2, bias2, bn2 = second
        index1, g1 = self._conv_layer(name1, channels1, kernel1, stride1, padding1, bias1, bn1)
        h1, w1 = g1.output_size
        index2, g2 = self._conv_layer(name2, channels2, kernel2, stride2, padding2, bias2, bn2,
                                      shape=(channels1, h1, w1))
        out_shape = (channels2, *g2.output_size)
        if shortcut == "identity":
            if out_shape != (c, h, w):
                raise InvalidInputError(f"residual block at {name1}: an identity shortcut adds a {(c, h, w)} input to "
                                        f"a {out_shape} output")
            self._steps.append(Residual(index1, g1.rows, index2, g2.rows, shortcut_rank=g2.rows))
        elif shortcut == "option-a":
            s = g1.stride[0]
            sub = (len(range(0, h, s)), len(range(0, w, s)))
            if sub != g2.output_size or channels2 < c:
                raise InvalidInputError(f"residual block at {name1}: an option-A shortcut of a {(c, h, w)} input "
                                        f"(stride {s}) does not fit the {out_shape} output")
            self._steps.append(Residual(index1, g1.rows, index2, g2.rows, shortcut_rank=c * sub[0] * sub[1]))
        else:
            name_s, stride_s, bn_s = projection  # type: ignore[misc]
            index_s, g_s = self._conv_layer(name_s, channels2, 1, stride_s, 0, False, bn_s, shape=(c, h, w))
            if (channels2, *g_s.output_size) != out_shape:
                raise InvalidInputError(f"residual block at {name1}: the 1x1 shortcut {name_s} gives "
                                        f"{(channels2, *g_s.output_size)}, the block {out_shape}")
            self._steps.append(Residual(index1, g1.rows, index2, g2.rows, shortcut_layer=index_s))
        self._shape = out_shape

    def add_parameters(self, count: int) -> None:
        """Parameters outside the weight layers (e.g. a BatchNorm after the stem that ``conv`` was not told of)."""
        self._parameters += int(count)

    def build(self, *, include_output_layer: bool = True, parameters: int | None = None) -> Network:
        """The ``Network``: every weight layer prunable but the classifier; the classifier's step is added when
        ``include_output_layer`` (papers' convention); ``parameters`` overrides the count the builder kept (a
        traced model's own).

        Raises:
            InvalidInputError: no classifier was described.
        """
        if self._output is None:
            raise InvalidInputError("the network has no classifier; describe it with output()")
        steps = list(self._steps)
        classifier = self._layers[self._output]
        if include_output_layer:
            steps.append(Relu(self._output, classifier.units))
        c, h, w = self.input_shape
        return Network(
            c * h * w,
            tuple(layer.units for layer in self._layers),
            tuple(layer.name for layer in self._layers),
            prunable=tuple(i != self._output for i in range(len(self._layers))),
            include_output_layer=include_output_layer,
            program=tuple(steps),
            layer_shapes=tuple((layer.rows, layer.cols) for layer in self._layers),
            convs=tuple(layer.conv for layer in self._layers),
            parameters=self._parameters if parameters is None else parameters,
        )
