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
    """A registered model: its description for the bound and a factory for the torch module."""

    name: str
    network: Network
    build: Callable[[], object]
    summary: str


def _mlp_entry(name: str, input_width: int, hidden: tuple[int, ...], classes: int, summary: str) -> ModelEntry:
    widths = hidden + (classes,)

    def build() -> object:
        from allocator.models.mlp import MLP

        return MLP(input_width, hidden, classes)

    return ModelEntry(name, Network(input_width, widths), build, summary)


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
