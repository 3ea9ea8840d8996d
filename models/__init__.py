"""Registry of named models (installed as ``allocator.models``).

Each entry knows its bound-side description (a ``Network``: widths, layer names, prunable flags) without
torch, and builds the ``torch.nn.Module`` on demand, so the solver can take ``--model mlp-2x100``
without importing torch. The torch modules' parameter names equal the description's layer names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Callable

from allocator.errors import InvalidInputError
from allocator.network import Network, ProgramBuilder


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its description for the bound, a factory for the torch module, its input shape.

    ``network`` covers the chain of linear layers (behind the conv stack, if any), the convolutions frozen with
    ``n0`` = their flattened output (paper 1's convention); ``describe(entry.build(), example)`` gives the same
    network. ``conv_network`` (CNNs only) is the whole model inside the bound: every conv and linear layer, ``n0``
    the input's ``C H W``, as a hand-written program that the tests hold equal to the model's ``torch.fx`` trace.
    """

    name: str
    network: Network
    build: Callable[[], object]
    summary: str
    input_shape: tuple[int, ...] = (1, 28, 28)
    conv_builder: Callable[[bool], Network] | None = None

    @property
    def conv_network(self) -> Network | None:
        """The whole CNN inside the bound, classifier included (papers' convention); ``None`` for an MLP."""
        return None if self.conv_builder is None else self.conv_builder(True)

    def bound_network(self, frozen_convs: bool = False, include_output_layer: bool = True) -> Network:
        """The convolutions inside the bound (``conv_builder``) unless ``frozen_convs`` or the model has none; then
        ``network`` (paper 1's convention for a CNN)."""
        if frozen_convs or self.conv_builder is None:
            return replace(self.network, include_output_layer=include_output_layer)
        return self.conv_builder(include_output_layer)


def _mlp_entry(name: str, input_width: int, hidden: tuple[int, ...], classes: int, summary: str) -> ModelEntry:
    widths = hidden + (classes,)

    def build() -> object:
        from allocator.models.mlp import MLP

        return MLP(input_width, hidden, classes)

    shape = (1, 28, 28) if input_width == 784 else (3, 32, 32)
    return ModelEntry(name, Network(input_width, widths), build, summary, shape)


_REGISTRY: dict[str, ModelEntry] = {}
for _inputs, _suffix, _data in ((784, "", "MNIST / Fashion-MNIST"), (3072, "-cifar", "CIFAR-10")):
    for _width in (100, 200, 400):
        _name = f"mlp-2x{_width}{_suffix}"
        _REGISTRY[_name] = _mlp_entry(
            _name, _inputs, (_width, _width), 10, f"two hidden ReLU layers of {_width}, {_inputs} inputs ({_data})"
        )
_REGISTRY["lenet-300-100"] = _mlp_entry(
    "lenet-300-100", 784, (300, 100), 10, "LeNet-300-100: hidden ReLU layers 300 and 100, 784 inputs"
)
# the study's deeper MLPs (issue 14): three equal hidden layers, and four of falling widths
_REGISTRY["mlp-3x300"] = _mlp_entry(
    "mlp-3x300", 784, (300, 300, 300), 10, "three hidden ReLU layers of 300, 784 inputs (MNIST / Fashion-MNIST)"
)
_REGISTRY["mlp-1000-500-250-100"] = _mlp_entry(
    "mlp-1000-500-250-100", 784, (1000, 500, 250, 100), 10,
    "hidden ReLU layers 1000, 500, 250, 100 (unequal widths), 784 inputs (MNIST / Fashion-MNIST)"
)



def _build(factory_name: str, **kwargs: object) -> Callable[[], object]:
    def build() -> object:
        from allocator.models import convnets

        return getattr(convnets, factory_name)(**kwargs)

    return build


@functools.lru_cache(maxsize=None)
def _lenet5_program(channels: int, size: int, padding: int, include_output_layer: bool = True) -> Network:
    b = ProgramBuilder((channels, size, size))
    b.conv("conv1.weight", 6, 5, padding=padding, pool=2)
    b.conv("conv2.weight", 16, 5, pool=2)
    b.flatten()
    b.linear("fc1.weight", 120)
    b.linear("fc2.weight", 84)
    b.output("fc3.weight", 10)
    return b.build(include_output_layer=include_output_layer)


@functools.lru_cache(maxsize=None)
def _mnistnet_program(include_output_layer: bool = True) -> Network:
    b = ProgramBuilder((1, 28, 28))
    b.conv("conv1.weight", 20, 5, pool=2)
    b.conv("conv2.weight", 50, 5, pool=2)
    b.flatten()
    b.linear("fc1.weight", 500)
    b.output("fc2.weight", 10)
    return b.build(include_output_layer=include_output_layer)


@functools.lru_cache(maxsize=None)
def _resnet_program(channels: int, size: int, blocks: int, include_output_layer: bool = True) -> Network:
    """He et al.'s CIFAR ResNet (option-A shortcuts) with ``blocks`` basic blocks per stage."""
    b = ProgramBuilder((channels, size, size))
    b.conv("conv1.weight", 16, 3, padding=1, bias=False, batch_norm=True)
    in_channels = 16
    for stage, width in enumerate((16, 32, 64)):
        for index in range(blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            shortcut = "identity" if stride == 1 and in_channels == width else "option-a"
            b.residual(f"layer{stage + 1}.{index}", width, stride=stride, shortcut=shortcut)
            in_channels = width
    b.global_avg_pool()
    b.output("fc.weight", 10)
    return b.build(include_output_layer=include_output_layer)


@functools.lru_cache(maxsize=None)
def _vgg_small_program(include_output_layer: bool = True) -> Network:
    b = ProgramBuilder((1, 28, 28))
    b.conv("conv1.weight", 16, 3, padding=1)
    b.conv("conv2.weight", 16, 3, padding=1, pool=2)
    b.conv("conv3.weight", 32, 3, padding=1)
    b.conv("conv4.weight", 32, 3, padding=1, pool=2)
    b.flatten()
    b.linear("fc1.weight", 128)
    b.output("fc2.weight", 10)
    return b.build(include_output_layer=include_output_layer)


_REGISTRY["lenet5"] = ModelEntry(
    "lenet5", Network(400, (120, 84, 10)), _build("LeNet5", in_channels=1, padding=2),
    "LeNet-5 for 28x28 grey images; convs inside the bound (n0 = 784), or frozen with n0 = 400 (paper 1)",
    (1, 28, 28), functools.partial(_lenet5_program, 1, 28, 2),
)
_REGISTRY["lenet5-cifar"] = ModelEntry(
    "lenet5-cifar", Network(400, (120, 84, 10)), _build("LeNet5", in_channels=3, padding=0),
    "LeNet-5 for 32x32 colour images (CIFAR-10); convs inside (n0 = 3072) or frozen (n0 = 400)", (3, 32, 32),
    functools.partial(_lenet5_program, 3, 32, 0),
)
_REGISTRY["mnistnet"] = ModelEntry(
    "mnistnet", Network(800, (500, 10)), _build("MnistNet"),
    "MnistNet (paper 2): conv 20, conv 50, fc 800->500->10; convs inside the bound or frozen (n0 = 800)", (1, 28, 28),
    _mnistnet_program,
)
_REGISTRY["resnet20"] = ModelEntry(
    "resnet20", Network(64, (10,), names=("fc.weight",), prunable=(False,)), _build("ResNet20"),
    "ResNet-20 for CIFAR-10 (3x3 basic blocks, 16/32/64 channels, option-A shortcuts); 19 convs + fc in the bound",
    (3, 32, 32), functools.partial(_resnet_program, 3, 32, 3),
)
_REGISTRY["resnet8"] = ModelEntry(
    "resnet8", Network(64, (10,), names=("fc.weight",), prunable=(False,)), _build("ResNet20", blocks=1, in_channels=1),
    "ResNet-8 for 28x28 grey images (one basic block per stage, 16/32/64 channels); 7 convs + fc in the bound",
    (1, 28, 28), functools.partial(_resnet_program, 1, 28, 1),
)
_REGISTRY["vgg-small"] = ModelEntry(
    "vgg-small", Network(1568, (128, 10)), _build("VGGSmall"),
    "small VGG-style net for 28x28 grey images: 4 3x3 convs (16, 16, 32, 32), 2 max-pools, fc 1568->128->10",
    (1, 28, 28), _vgg_small_program,
)


def model_names() -> tuple[str, ...]:
    """Names of every registered model, sorted."""
    return tuple(sorted(_REGISTRY))


def get_model(name: str) -> ModelEntry:
    """The registered entry ``name``.

    Raises:
        InvalidInputError: ``name`` is not registered (the message lists those that are).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInputError(f"model {name!r} is not registered; accepted: {', '.join(model_names())}") from None
