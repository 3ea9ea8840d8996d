"""``translate``: a torch model's bound program, read from its ``torch.fx`` graph, where the structure can be proven.

The graph is traced symbolically (``torch.fx.symbolic_trace``) and its shapes propagated on one example. It must be
a chain of these pieces, each written exactly so (anything else is refused by name, before any work):

- ``Conv2d`` [``BatchNorm2d``] ``ReLU`` [``MaxPool2d``] (or the pool before the ReLU: they commute), one group,
  dilation 1, zero padding given as numbers; ``Linear`` [``BatchNorm1d``] ``ReLU``;
- ``AvgPool2d`` / ``avg_pool2d``, ``AdaptiveAvgPool2d(1)`` / ``adaptive_avg_pool2d(x, 1)``, ``flatten`` (any
  spelling, or ``view``/``reshape`` to ``(N, -1)``), ``Dropout`` and ``Identity`` (no-ops at inference);
- a residual block: ``x`` used twice, ``conv1 [bn] relu conv2 [bn]`` on one branch and, on the other, ``x`` itself
  (or an ``Identity``), He et al.'s option A (``x[:, :, ::s, ::s]`` then ``F.pad`` of channels only), or a 1x1
  ``Conv2d`` [``BatchNorm2d``]; the two added (``+``, ``torch.add``) and rectified;
- the last ``Linear`` is the classifier (no ReLU after it).

ReLU may be ``nn.ReLU``, ``F.relu``, ``torch.relu`` or ``x.relu()``. A Tanh, a sigmoid, a residual addition of
anything else, a second input or output: refused, naming the node and what is accepted.
"""

from __future__ import annotations

import operator
import torch
import torch.nn.functional as F
from torch import fx, nn

from allocator.errors import InvalidInputError
from allocator.network import Network, ProgramBuilder

ACCEPTED = ("Conv2d, Linear, BatchNorm, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), flatten, Dropout, Identity "
            "and residual additions of an identity, option-A or 1x1-conv shortcut")

_RELU = {F.relu, torch.relu}
_ADD = {operator.add, torch.add}
_FLATTEN = {torch.flatten}


def _name(node: fx.Node) -> str:
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return f"{node.name!r} ({target})"


class _Graph:
    """The traced graph with helpers to read it."""

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        try:
            self.traced = fx.symbolic_trace(model)
        except Exception as error:  # noqa: BLE001 - any tracing failure is one refusal
            raise InvalidInputError(f"{type(model).__name__} cannot be traced by torch.fx ({type(error).__name__}: "
                                    f"{str(error).splitlines()[0] if str(error) else ''}); the bound needs a graph it "
                                    f"can read") from None
        from torch.fx.passes.shape_prop import ShapeProp

        was_training = model.training
        self.traced.eval()
        with torch.no_grad():
            ShapeProp(self.traced).propagate(example[:1])
        model.train(was_training)
        self.modules = dict(self.traced.named_modules())

    def module(self, node: fx.Node) -> nn.Module | None:
        return self.modules.get(node.target) if node.op == "call_module" else None  # type: ignore[arg-type]

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else ()

    @staticmethod
    def users(node: fx.Node) -> list[fx.Node]:
        """The nodes that use ``node``'s value (``getattr`` and ``x.size()`` only read its shape: not counted)."""
        return [user for user in node.users
                if not (user.op == "call_function" and user.target is getattr)
                and not (user.op == "call_method" and user.target in ("size", "dim"))]

    def only_user(self, node: fx.Node) -> fx.Node:
        users = self.users(node)
        if len(users) != 1:
            raise InvalidInputError(f"node {_name(node)} feeds {len(users)} nodes; the translator proves chains and "
                                    f"residual blocks only ({ACCEPTED})")
        return users[0]

    def is_relu(self, node: fx.Node) -> bool:
        return (isinstance(self.module(node), nn.ReLU) or (node.op == "call_function" and node.target in _RELU)
                or (node.op == "call_method" and node.target == "relu"))

    def is_noop(self, node: fx.Node) -> bool:
        return (isinstance(self.module(node), (nn.Dropout, nn.Identity))
                or (node.op == "call_function" and node.target is F.dropout))

    def is_bn(self, node: fx.Node, kind: type) -> bool:
        return isinstance(self.module(node), kind)

    def max_pool(self, node: fx.Node) -> tuple[int, int] | None:
        """``(kernel, stride)`` of a plain max-pool node, else ``None``."""
        module = self.module(node)
        if isinstance(module, nn.MaxPool2d):
            kernel, stride = module.kernel_size, module.stride if module.stride is not None else module.kernel_size
            plain = module.padding in (0, (0, 0)) and module.dilation in (1, (1, 1)) and not module.ceil_mode
        elif node.op == "call_function" and node.target in (F.max_pool2d, torch.max_pool2d):
            args = list(node.args) + [None] * 6
            kernel = node.kwargs.get("kernel_size", args[1])
            stride = node.kwargs.get("stride", args[2]) or kernel
            plain = (node.kwargs.get("padding", args[3] or 0) in (0, (0, 0))
                     and node.kwargs.get("dilation", args[4] or 1) in (1, (1, 1))
                     and not node.kwargs.get("ceil_mode", args[5] or False))
        else:
            return None
        square = [v if isinstance(v, int) else (v[0] if len(set(v)) == 1 else None) for v in (kernel, stride)]
        if not plain or None in square:
            raise InvalidInputError(f"max-pool {_name(node)}: only square windows without padding, dilation or "
                                    f"ceil_mode are supported")
        return square[0], square[1]  # type: ignore[return-value]


def _conv_spec(graph: _Graph, node: fx.Node) -> tuple[str, int, tuple[int, int], tuple[int, int], tuple[int, int], bool]:
    module = graph.module(node)
    assert isinstance(module, nn.Conv2d)
    if module.groups != 1 or module.dilation != (1, 1) or module.padding_mode != "zeros" or isinstance(module.padding,
                                                                                                          str):
        raise InvalidInputError(f"conv {node.target!r}: groups {module.groups}, dilation {module.dilation}, padding "
                                f"{module.padding!r} ({module.padding_mode}); supported: one group, dilation 1, zero "
                                f"padding given as numbers")
    return (f"{node.target}.weight", module.out_channels, module.kernel_size, module.stride, module.padding,  # type: ignore[return-value]
            module.bias is not None)


def _skip_bn(graph: _Graph, node: fx.Node, kind: type) -> fx.Node:
    """The node after ``node`` once an optional BatchNorm of ``kind`` is passed."""
    user = graph.only_user(node)
    return graph.only_user(user) if graph.is_bn(user, kind) else user


def _is_option_a(graph: _Graph, node: fx.Node, source: fx.Node) -> int | None:
    """The stride of an option-A shortcut ``pad(source[:, :, ::s, ::s])`` ending at ``node``, else ``None``."""
    if not (node.op == "call_function" and node.target is F.pad):
        return None
    sliced = node.args[0]
    padding = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
    if not (isinstance(sliced, fx.Node) and sliced.op == "call_function" and sliced.target is operator.getitem
            and sliced.args[0] is source and isinstance(padding, (tuple, list)) and len(padding) == 6
            and tuple(padding[:4]) == (0, 0, 0, 0)):
        return None
    index = sliced.args[1]
    if not (isinstance(index, tuple) and len(index) == 4 and all(isinstance(i, slice) for i in index)):
        return None
    full = slice(None, None, None)
    if index[0] != full or index[1] != full or index[2].start or index[3].start or index[2].stop or index[3].stop:
        return None
    strides = {index[2].step or 1, index[3].step or 1}
    return strides.pop() if len(strides) == 1 else None


def _residual(graph: _Graph, builder: ProgramBuilder, source: fx.Node) -> fx.Node:
    """Read the residual block whose input is ``source`` (two users); return the block's rectified output node."""
    users = graph.users(source)
    convs = [u for u in users if isinstance(graph.module(u), nn.Conv2d)]
    main = None
    for conv in convs:  # the main branch: conv1 [bn] relu conv2 [bn] -> add
        after = _skip_bn(graph, conv, nn.BatchNorm2d)
        if not graph.is_relu(after):
            continue
        conv2 = graph.only_user(after)
        if not isinstance(graph.module(conv2), nn.Conv2d):
            continue
        end = _skip_bn(graph, conv2, nn.BatchNorm2d)
        if end.op == "call_function" and end.target in _ADD:
            main = (conv, conv2, end)
            break
    if main is None or len(users) != 2:
        raise InvalidInputError(f"node {_name(source)} feeds {len(users)} nodes but not a residual block the "
                                f"translator can prove (conv [bn] relu conv [bn] + shortcut, then relu)")
    conv1, conv2, add = main
    other = next(u for u in users if u is not conv1)
    operands = [a for a in add.args if isinstance(a, fx.Node)]
    if len(operands) != 2 or add.kwargs:
        raise InvalidInputError(f"residual addition {_name(add)} must add exactly two tensors")
    first = _conv_spec(graph, conv1) + (graph.is_bn(graph.only_user(conv1), nn.BatchNorm2d),)
    second = _conv_spec(graph, conv2) + (graph.is_bn(graph.only_user(conv2), nn.BatchNorm2d),)
    if other is add or (graph.is_noop(other) and graph.only_user(other) is add):
        builder.residual_block(first, second, "identity")
    elif isinstance(graph.module(other), nn.Conv2d) and _skip_bn(graph, other, nn.BatchNorm2d) is add:
        name, channels, kernel, stride, padding, _ = _conv_spec(graph, other)
        if kernel != (1, 1) or padding != (0, 0) or stride[0] != stride[1]:
            raise InvalidInputError(f"shortcut conv {other.target!r}: only 1x1 convs without padding are supported")
        builder.residual_block(first, second, "conv", (name, stride[0], graph.is_bn(graph.only_user(other),
                                                                                      nn.BatchNorm2d)))
    else:
        pad = next((a for a in operands if a is not _skip_bn_end(graph, conv2)), None)
        stride = _is_option_a(graph, pad, source) if pad is not None else None
        if stride is None or stride != first[3][0]:
            raise InvalidInputError(f"residual addition {_name(add)}: its shortcut is not x, an Identity, option A "
                                    f"(x[:, :, ::s, ::s] then F.pad of channels) or a 1x1 conv")
        builder.residual_block(first, second, "option-a")
    after = graph.only_user(add)
    if not graph.is_relu(after):
        raise InvalidInputError(f"residual addition {_name(add)} must be followed by a ReLU, not {_name(after)}")
    return after


def _skip_bn_end(graph: _Graph, conv: fx.Node) -> fx.Node:
    user = graph.only_user(conv)
    return user if graph.is_bn(user, nn.BatchNorm2d) else conv


def translate(model: nn.Module, input_shape: tuple[int, ...], *, include_output_layer: bool = True) -> Network:
    """The bound program of ``model`` on inputs of ``input_shape`` ``(C, H, W)`` (module docstring).

    Raises:
        InvalidInputError: a node or a structure the translator cannot prove, named (an unexpected failure while
            reading the graph too, as one line).
    """
    try:
        return _translate(model, input_shape, include_output_layer)
    except InvalidInputError:
        raise
    except Exception as error:  # noqa: BLE001 - a graph the reader did not expect: one line, not a traceback
        raise InvalidInputError(f"{type(model).__name__}: the fx translator could not read the graph "
                                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                                f"accepted: {ACCEPTED}") from None


def _translate(model: nn.Module, input_shape: tuple[int, ...], include_output_layer: bool) -> Network:
    if len(input_shape) != 3:
        raise InvalidInputError(f"input shape {input_shape!r}: a CNN's bound program needs (C, H, W)")
    graph = _Graph(model, torch.zeros(1, *input_shape))
    nodes = list(graph.traced.graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise InvalidInputError(f"{type(model).__name__} takes {len(inputs)} inputs; the translator reads one")
    builder = ProgramBuilder(tuple(int(v) for v in input_shape))  # type: ignore[arg-type]
    current = inputs[0]
    rectified = False  # whether the current signal has passed a ReLU (pools and flattens keep that)
    while True:
        users = graph.users(current)
        if len(users) == 2:
            current = _residual(graph, builder, current)
            rectified = True
            continue
        node = graph.only_user(current)
        module = graph.module(node)
        if node.op == "output":
            raise InvalidInputError(f"{type(model).__name__} ends without a Linear classifier")
        if isinstance(module, nn.Conv2d):
            name, channels, kernel, stride, padding, bias = _conv_spec(graph, node)
            after = graph.only_user(node)
            batch_norm = graph.is_bn(after, nn.BatchNorm2d)
            if batch_norm:
                after = graph.only_user(after)
            pool = graph.max_pool(after)
            if pool is not None:  # pool then ReLU (they commute)
                relu = graph.only_user(after)
                if not graph.is_relu(relu):
                    raise InvalidInputError(f"max-pool {_name(after)} after conv {node.target!r} must meet a ReLU")
                end = relu
            elif graph.is_relu(after):
                end = after
                nxt = graph.users(after)
                pool = graph.max_pool(nxt[0]) if len(nxt) == 1 else None
                if pool is not None:
                    end = nxt[0]
            else:
                raise InvalidInputError(f"conv {node.target!r} is followed by {_name(after)}; the translator needs a "
                                        f"ReLU (after an optional BatchNorm) unless it is in a residual block")
            builder.conv(name, channels, kernel, stride=stride, padding=padding, bias=bias, batch_norm=batch_norm,
                         pool=None if pool is None else pool[0], pool_stride=None if pool is None else pool[1])
            current, rectified = end, True
        elif isinstance(module, nn.Linear):
            after = graph.users(node)
            name = f"{node.target}.weight"
            if len(after) == 1 and after[0].op == "output":
                if len(builder.shape) != 1 or builder.shape[0] != module.in_features:
                    raise InvalidInputError(f"classifier {node.target!r} takes {module.in_features} features, the "
                                            f"graph gives {builder.shape}")
                builder.output(name, module.out_features, bias=module.bias is not None)
                break
            end = after[0] if len(after) == 1 else None
            if end is not None and graph.is_bn(end, nn.BatchNorm1d):
                end = graph.only_user(end)
            if end is None or not graph.is_relu(end):
                raise InvalidInputError(f"linear {node.target!r} is followed by "
                                        f"{_name(after[0]) if after else 'nothing'}; a Linear must meet a ReLU unless "
                                        f"it is the classifier (the last node)")
            if len(builder.shape) == 3:
                raise InvalidInputError(f"linear {node.target!r} gets a {builder.shape} activation; flatten it first")
            if builder.shape[0] != module.in_features:
                raise InvalidInputError(f"linear {node.target!r} takes {module.in_features} features, the graph gives "
                                        f"{builder.shape[0]}")
            builder.linear(name, module.out_features, bias=module.bias is not None)
            current, rectified = end, True
        elif graph.is_noop(node):
            current = node  # dropout, identity: no change
        elif graph.is_relu(node):
            if not rectified:
                raise InvalidInputError(f"ReLU {_name(node)} acts on a signal no ReLU has rectified yet (the input, or "
                                        f"a pool or flatten of it): its hyperplanes are not in the bound's program")
            current = node  # a ReLU of a rectified activation: no change
        elif isinstance(module, nn.AdaptiveAvgPool2d) or (node.op == "call_function"
                                                           and node.target is F.adaptive_avg_pool2d):
            size = module.output_size if module is not None else (node.args[1] if len(node.args) > 1
                                                                  else node.kwargs.get("output_size"))
            if size not in (1, (1, 1)):
                raise InvalidInputError(f"adaptive average pool {_name(node)} to {size!r}: only output size 1")
            builder.global_avg_pool()
            current = node
        elif isinstance(module, nn.AvgPool2d) or (node.op == "call_function" and node.target is F.avg_pool2d):
            if module is not None:
                kernel, stride = module.kernel_size, module.stride or module.kernel_size
                plain = module.padding in (0, (0, 0)) and not module.ceil_mode and module.divisor_override is None
            else:
                args = list(node.args) + [None] * 6
                kernel = node.kwargs.get("kernel_size", args[1])
                stride = node.kwargs.get("stride", args[2]) or kernel
                plain = (node.kwargs.get("padding", args[3] or 0) in (0, (0, 0))
                         and not node.kwargs.get("ceil_mode", args[4] or False)
                         and node.kwargs.get("divisor_override", None) is None)
            if not plain or not isinstance(kernel, int) or not isinstance(stride, int):
                raise InvalidInputError(f"average pool {_name(node)}: only square windows given as one integer, "
                                        f"without padding, ceil_mode or divisor_override")
            builder.avg_pool(kernel, stride)
            current = node
        elif (isinstance(module, nn.Flatten) or (node.op == "call_function" and node.target in _FLATTEN)
              or (node.op == "call_method" and node.target in ("flatten", "view", "reshape"))):
            shape = graph.shape(node)
            if len(shape) != 2:
                raise InvalidInputError(f"node {_name(node)} reshapes to {shape}; only a flatten to (N, features)")
            builder.flatten()
            current = node
        else:
            raise InvalidInputError(f"node {_name(node)} is not supported in the bound program; accepted: {ACCEPTED}")
    return builder.build(include_output_layer=include_output_layer,
                         parameters=sum(p.numel() for p in model.parameters()))
