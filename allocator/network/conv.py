"""``ConvGeometry``: the shape of one 2-D convolution, all the bound needs to build its unrolled matrix.

A convolution with ``c_in`` input and ``c_out`` output channels, a ``kh x kw`` kernel, stride ``(sh, sw)`` and zero
padding ``(ph, pw)`` on an ``H x W`` grid is the linear map ``T`` of shape ``(c_out * H' * W') x (c_in * H * W)``
with ``H' = (H + 2 ph - kh) // sh + 1`` (same for ``W'``): output ``(o, y, x)`` reads input
``(i, y sh - ph + a, x sw - pw + b)`` with weight ``K[o, i, a, b]`` wherever that input lies on the grid. Dilation 1
and one group only.
"""

from __future__ import annotations

from dataclasses import dataclass

from allocator.errors import InvalidInputError


def _pair(value: int | tuple[int, int], what: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair):
        raise InvalidInputError(f"{what} is {value!r}; expected an integer >= {minimum} or a pair of them")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class ConvGeometry:
    """One 2-D convolution's shape (see the module docstring for the unrolled matrix it defines).

    Example:
        >>> g = ConvGeometry(1, 6, (5, 5), (28, 28), padding=(2, 2))
        >>> g.output_size, g.rows, g.cols, g.weights
        ((28, 28), 4704, 784, 150)
    """

    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    input_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        for what, value in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"convolution {what} is {value!r}; expected an integer >= 1")
        object.__setattr__(self, "kernel", _pair(self.kernel, "convolution kernel", 1))
        object.__setattr__(self, "input_size", _pair(self.input_size, "convolution input size", 1))
        object.__setattr__(self, "stride", _pair(self.stride, "convolution stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "convolution padding", 0))
        if min(self.output_size) < 1:
            raise InvalidInputError(f"convolution with kernel {self.kernel}, padding {self.padding} on an input of "
                                    f"{self.input_size} has no output position")

    @property
    def output_size(self) -> tuple[int, int]:
        """``(H', W')``."""
        return tuple((n + 2 * p - k) // s + 1 for n, p, k, s in  # type: ignore[return-value]
                     zip(self.input_size, self.padding, self.kernel, self.stride))

    @property
    def output_positions(self) -> int:
        """``H' W'``: the multiply-adds per example one kept weight costs."""
        return self.output_size[0] * self.output_size[1]

    @property
    def rows(self) -> int:
        """Rows of the unrolled matrix: ``c_out H' W'``, the layer's units."""
        return self.out_channels * self.output_positions

    @property
    def cols(self) -> int:
        """Columns of the unrolled matrix: ``c_in H W``."""
        return self.in_channels * self.input_size[0] * self.input_size[1]

    @property
    def weights(self) -> int:
        """Kernel entries ``c_out c_in kh kw``: what pruning counts."""
        return self.out_channels * self.in_channels * self.kernel[0] * self.kernel[1]

    @property
    def tensor_shape(self) -> tuple[int, int, int, int]:
        """The weight tensor's shape ``(c_out, c_in, kh, kw)``."""
        return (self.out_channels, self.in_channels, *self.kernel)  # type: ignore[return-value]

    def key(self) -> tuple[int, ...]:
        """A flat tuple naming this shape (cache keys)."""
        return (self.in_channels, self.out_channels, *self.kernel, *self.input_size, *self.stride, *self.padding)
