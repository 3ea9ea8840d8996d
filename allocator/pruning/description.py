"""``describe``: the allocator's network description from a torch model, by tracing one forward pass.

Each weighted module type has a *describer* in a registry keyed by its type (``register_describer``): from the
module and its traced output shape it gives the layer's ``LayerSpec`` (kind, matrix shape, kernel, output
positions). ``describe`` traces the model, asks the registry for every weighted module it saw, and assembles the
linear chain the bound models (``ModelDescription.network``) and the convolutions before it. A layer kind the
bound learns (convolutions) registers a describer and a rank law; nothing else here changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from allocator.errors import InvalidInputError
from allocator.network import LayerSpec, Network

#: Modules with parameters that are not weight layers but are accepted in a model (they are not pruned).
_ALLOWED_WITH_PARAMETERS: tuple[type, ...] = (nn.BatchNorm1d, nn.BatchNorm2d)

Describer = Callable[[str, nn.Module, tuple[int, ...]], LayerSpec]
_DESCRIBERS: dict[type, tuple[str, Describer]] = {}


def register_describer(module_type: type, kind: str) -> Callable[[Describer], Describer]:
    """Decorator: ``function(weight name, module, output shape) -> LayerSpec`` for modules of ``module_type``, whose
    layers are of ``kind`` (a ``linear`` describer must not need the output shape: the chain is found without a
    forward pass)."""

    def wrap(function: Describer) -> Describer:
        _DESCRIBERS[module_type] = (kind, function)
        return function

    return wrap


def _describer(module: nn.Module) -> tuple[str, Describer] | None:
    for module_type, entry in _DESCRIBERS.items():
        if isinstance(module, module_type):
            return entry
    return None


@register_describer(nn.Linear, "linear")
def _linear(name: str, module: nn.Module, output_shape: tuple[int, ...]) -> LayerSpec:
    rows, cols = module.weight.shape
    return LayerSpec(name, "linear", int(rows), int(cols), (), 1, True, True)


@register_describer(nn.Conv2d, "conv")
def _conv2d(name: str, module: nn.Module, output_shape: tuple[int, ...]) -> LayerSpec:
    out_channels, in_channels, *kernel = module.weight.shape
    positions = int(math.prod(output_shape[-2:]))
    return LayerSpec(name, "conv", int(out_channels), int(in_channels * math.prod(kernel)), tuple(int(k) for k in kernel),
                     positions, False, False)


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


def linear_chain(model: nn.Module) -> list[str]:
    """Module names of the model's linear layers in the order they are defined, which must chain (each one's input
    width the previous one's output width), found without a forward pass: the chain the batched engine trains.

    ``describe`` takes the order the layers are *called* in, from a trace; where the two differ (layers defined out
    of order, an unused layer), ``batched.check_chain`` finds that the chain does not reproduce the model's output,
    and the one-cell engines train it instead.

    Raises:
        InvalidInputError: no Linear layer, or Linear layers whose widths do not chain.
    """
    linear = []
    for name, module in model.named_modules():
        entry = _describer(module)
        if entry is not None and entry[0] == "linear":
            linear.append((name, entry[1](f"{name}.weight", module, ())))
    if not linear:
        raise InvalidInputError(f"{type(model).__name__} has no Linear layer; the bound needs a chain of linear layers")
    for (previous_name, previous), (name, spec) in zip(linear, linear[1:]):
        if spec.cols != previous.rows:
            raise InvalidInputError(
                f"linear layers do not chain: {previous_name} gives {previous.rows} features, {name} takes {spec.cols}"
            )
    return [name for name, _ in linear]


def _check_modules(model: nn.Module, names: dict[nn.Module, str]) -> None:
    accepted = tuple(_DESCRIBERS) + _ALLOWED_WITH_PARAMETERS
    for module, name in names.items():
        if list(module.children()):
            continue
        if any(True for _ in module.parameters(recurse=False)) and not isinstance(module, accepted):
            raise InvalidInputError(
                f"layer {name!r} ({type(module).__name__}) has parameters and is not supported; describe accepts "
                f"{', '.join(t.__name__ for t in accepted)} layers with parameters"
            )


def _trace(model: nn.Module, example_input: torch.Tensor, names: dict[nn.Module, str]) -> list[tuple[LayerSpec, nn.Module]]:
    """The weighted modules in forward order, each with its ``LayerSpec``."""
    calls: list[tuple[LayerSpec, nn.Module]] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        calls.append((_describer(module)[1](f"{names[module]}.weight", module, tuple(output.shape)), module))  # type: ignore[index]

    handles = [m.register_forward_hook(hook) for m in names if _describer(m) is not None]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input[:1])
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return calls


#: Functions and modules that keep the linear chain a ReLU chain (anything else after the first Linear is refused).
_CHAIN_MODULES: tuple[type, ...] = (nn.Linear, nn.ReLU, nn.Dropout, nn.Identity, nn.Flatten, nn.BatchNorm1d)


def _check_linear_part(model: nn.Module) -> None:
    """Refuse, by name, anything after the first Linear layer that is not a ReLU chain: another activation (Tanh,
    sigmoid, GELU, ...) or a tensor combined with another (a residual addition): the chain bound would not hold.
    Read from the model's ``torch.fx`` graph; a model fx cannot trace is refused too."""
    import operator

    import torch.nn.functional as F
    from torch import fx

    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as error:  # noqa: BLE001 - any tracing failure is one refusal
        raise InvalidInputError(f"{type(model).__name__} cannot be traced by torch.fx ({type(error).__name__}); the "
                                f"description needs a graph it can read to prove the layers form a ReLU chain") from None
    modules = dict(model.named_modules())
    downstream: set = set()
    allowed_functions = {F.relu, torch.relu, torch.flatten, F.dropout, operator.getitem, getattr}
    allowed_methods = {"relu", "flatten", "view", "reshape", "size", "dim"}
    for node in graph.nodes:
        module = modules.get(node.target) if node.op == "call_module" else None
        starts = isinstance(module, nn.Linear) and not downstream
        feeds = any(isinstance(a, fx.Node) and a in downstream for a in node.all_input_nodes)
        if not (starts or feeds) or node.op == "output":
            continue
        downstream.add(node)
        tensors = [a for a in node.all_input_nodes if a.op != "get_attr"]
        if len(tensors) > 1 and not (node.op == "call_method" and node.target in ("view", "reshape")):
            raise InvalidInputError(f"node {node.name!r} ({getattr(node.target, '__name__', node.target)}) combines "
                                    f"{len(tensors)} tensors after the first Linear layer (a skip connection?); the "
                                    f"linear-chain bound holds for a plain ReLU chain only")
        ok = (isinstance(module, _CHAIN_MODULES) or _describer(module) is not None if module is not None else
              node.target in allowed_functions if node.op == "call_function" else
              node.target in allowed_methods if node.op == "call_method" else True)
        if not ok:
            what = type(module).__name__ if module is not None else getattr(node.target, "__name__", str(node.target))
            raise InvalidInputError(f"node {node.name!r} ({what}) after the first Linear layer is not supported: the "
                                    f"bound counts the regions of ReLU networks; accepted there: Linear, ReLU, "
                                    f"Dropout, Identity, Flatten, BatchNorm1d")


def describe(model: nn.Module, example_input: torch.Tensor, *, include_output_layer: bool = True) -> ModelDescription:
    """Trace ``model(example_input)`` and return its description.

    The model must be a stack of convolutions followed by a chain of linear layers (each Linear's input width
    the previous one's output width); ``n0`` is the input width of the first Linear (400 for LeNet-5). Every
    Linear but the last (the classifier) is prunable. Modules with parameters other than the registered weight
    layers (Linear, Conv2d) and BatchNorm are refused by name, and so is anything after the first Linear that keeps
    the layers from being a ReLU chain (another activation, a skip connection: ``_check_linear_part``). This is the
    frozen-convs description (paper 1's convention); ``allocator.pruning.fx_program.translate`` gives the whole CNN
    inside the bound.

    Raises:
        InvalidInputError: an unsupported layer, no Linear layer, or linear layers that do not form a chain.
    """
    names = {module: name for name, module in model.named_modules()}
    _check_modules(model, names)
    _check_linear_part(model)
    calls = _trace(model, example_input, names)
    linear = [(spec, module) for spec, module in calls if spec.kind == "linear"]
    if not linear:
        raise InvalidInputError("the model has no Linear layer; the bound needs a chain of linear layers")
    first_linear = next(i for i, (spec, _) in enumerate(calls) if spec.kind == "linear")
    late_convs = [spec.name for spec, _ in calls[first_linear:] if spec.kind == "conv"]
    if late_convs:
        raise InvalidInputError(f"convolution {late_convs[0].removesuffix('.weight')!r} comes after a linear layer; "
                                f"not supported")
    for (previous, _), (spec, _) in zip(linear, linear[1:]):
        if spec.cols != previous.rows:
            raise InvalidInputError(
                f"linear layers do not chain: {previous.name.removesuffix('.weight')} gives {previous.rows} features, "
                f"{spec.name.removesuffix('.weight')} takes {spec.cols}"
            )
    conv_layers = tuple(ConvLayer(spec.name, tuple(module.weight.shape), spec.weights, int(spec.output_positions))
                        for spec, module in calls[:first_linear])
    network = Network(
        linear[0][0].cols,
        tuple(spec.rows for spec, _ in linear),
        tuple(spec.name for spec, _ in linear),
        include_output_layer=include_output_layer,
    )
    return ModelDescription(network, conv_layers, sum(p.numel() for p in model.parameters()))
