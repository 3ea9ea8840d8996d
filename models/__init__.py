"""Registry of named models (installed as ``allocator.models``).

Each entry knows its bound-side description (a ``Network``: widths, layer names, prunable flags) without
torch, and builds the ``torch.nn.Module`` on demand, so the solver can take ``--model mlp-2x100``
without importing torch. The torch modules' parameter names equal the description's layer names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from allocator.errors import InvalidInputError
from allocator.network import Network


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its description for the bound, a factory for the torch module, its input shape.

    ``network`` covers the chain of linear layers (behind the conv stack, if any): that is what the bound
    models and what allocations are solved for. ``describe(entry.build(), example)`` gives the same network.
    """

    name: str
    network: Network
    build: Callable[[], object]
    summary: str
    input_shape: tuple[int, ...] = (1, 28, 28)


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



def _build(factory_name: str, **kwargs: object) -> Callable[[], object]:
    def build() -> object:
        from allocator.models import convnets

        return getattr(convnets, factory_name)(**kwargs)

    return build


_REGISTRY["lenet5"] = ModelEntry(
    "lenet5", Network(400, (120, 84, 10)), _build("LeNet5", in_channels=1, padding=2),
    "LeNet-5 for 28x28 grey images; fc1 and fc2 prunable, n0 = 400 (paper 1)", (1, 28, 28),
)
_REGISTRY["lenet5-cifar"] = ModelEntry(
    "lenet5-cifar", Network(400, (120, 84, 10)), _build("LeNet5", in_channels=3, padding=0),
    "LeNet-5 for 32x32 colour images (CIFAR-10); fc1 and fc2 prunable, n0 = 400", (3, 32, 32),
)
_REGISTRY["mnistnet"] = ModelEntry(
    "mnistnet", Network(800, (500, 10)), _build("MnistNet"),
    "MnistNet (paper 2): conv 20, conv 50, fc 800->500->10; fc1 prunable in the bound", (1, 28, 28),
)
_REGISTRY["resnet20"] = ModelEntry(
    "resnet20", Network(64, (10,), names=("fc.weight",), prunable=(False,)), _build("ResNet20"),
    "ResNet-20 for CIFAR-10 (3x3 basic blocks, 16/32/64 channels); its bound has no prunable layer", (3, 32, 32),
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
