"""``describe``: the allocator's network description from a torch model, by tracing one forward pass."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from allocator.errors import InvalidInputError
from allocator.network import Network

_WEIGHTED = (nn.Linear, nn.Conv2d)
_ALLOWED_WITH_PARAMETERS = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class ConvLayer:
    """A convolution seen in the trace: it can be pruned by a criterion but does not enter the bound."""

    name: str
    shape: tuple[int, ...]
    weights: int
    output_positions: int  # multiply-adds per example per kept weight


@dataclass(frozen=True)
class ModelDescription:
    """The linear chain as a ``Network`` (names are ``<module>.weight``), and the convolutions before it."""

    network: Network
    conv_layers: tuple[ConvLayer, ...]
    parameters: int

    @property
    def weight_names(self) -> tuple[str, ...]:
        """Every weight tensor of a Linear or Conv2d layer, in forward order."""
        return tuple(c.name for c in self.conv_layers) + self.network.names


def describe(model: nn.Module, example_input: torch.Tensor, *, include_output_layer: bool = True) -> ModelDescription:
    """Trace ``model(example_input)`` and return its description.

    The model must be a stack of convolutions followed by a chain of linear layers (each Linear's input width
    the previous one's output width); ``n0`` is the input width of the first Linear (400 for LeNet-5). Every
    Linear but the last (the classifier) is prunable. Modules with parameters other than Linear, Conv2d and
    BatchNorm are refused by name.

    Raises:
        InvalidInputError: an unsupported layer, no Linear layer, or linear layers that do not form a chain.
    """
    names = {module: name for name, module in model.named_modules()}
    for module, name in names.items():
        if list(module.children()):
            continue
        if any(True for _ in module.parameters(recurse=False)) and not isinstance(module, _ALLOWED_WITH_PARAMETERS):
            raise InvalidInputError(
                f"layer {name!r} ({type(module).__name__}) has parameters and is not supported; describe accepts "
                f"Linear, Conv2d and BatchNorm layers with parameters"
            )
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        calls.append((names[module], module, tuple(output.shape)))

    handles = [m.register_forward_hook(hook) for m in names if isinstance(m, _WEIGHTED)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input[:1])
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    linear = [(name, module) for name, module, _ in calls if isinstance(module, nn.Linear)]
    if not linear:
        raise InvalidInputError("the model has no Linear layer; the bound needs a chain of linear layers")
    first_linear = next(i for i, (_, m, _) in enumerate(calls) if isinstance(m, nn.Linear))
    late_convs = [name for name, m, _ in calls[first_linear:] if isinstance(m, nn.Conv2d)]
    if late_convs:
        raise InvalidInputError(f"convolution {late_convs[0]!r} comes after a linear layer; not supported")
    for (prev_name, prev), (name, module) in zip(linear, linear[1:]):
        if module.in_features != prev.out_features:
            raise InvalidInputError(
                f"linear layers do not chain: {prev_name} gives {prev.out_features} features, {name} takes "
                f"{module.in_features}"
            )
    conv_layers = tuple(
        ConvLayer(f"{name}.weight", tuple(module.weight.shape), module.weight.numel(), int(shape[-1] * shape[-2]))
        for name, module, shape in calls[:first_linear]
    )
    network = Network(
        linear[0][1].in_features,
        tuple(m.out_features for _, m in linear),
        tuple(f"{name}.weight" for name, _ in linear),
        include_output_layer=include_output_layer,
    )
    return ModelDescription(network, conv_layers, sum(p.numel() for p in model.parameters()))
