"""Fine-tune many pruned copies of one model at once, as one batched ReLU chain (paper 1's sweep, made cheap).

Paper 1's protocol fine-tunes every (density, allocation) cell of a seed from the same dense model with the same
data order. At densities around 0.001 a cell's arithmetic is tiny and its time is per-step overhead, so
``finetune_cells`` trains ``C`` cells as one module: the linear chain ``fc1 -> ReLU -> ... -> fcL`` of every cell,
side by side. Activations are kept feature-major, ``h`` of shape ``(C * width, batch)``, cell ``c`` owning rows
``c * width .. (c + 1) * width - 1``. A layer is computed in one of two modes:

- ``sparse`` (every cell's layer pruned to density <= ``max_density``): the kept weights of all cells form one
  block-diagonal sparse matrix, ``values`` with global ``rows``/``cols``, and ``out[rows[i]] += values[i] *
  h[cols[i]]`` is one gather and one ``index_add`` over contiguous rows of ``batch`` numbers;
- ``dense``: a weight tensor ``W`` of shape ``(C, out, in)`` (times the masks where the layer is pruned) applied by
  one batched matrix product.

The loss is ``sum_c CE_c`` with ``CE_c`` the mean cross-entropy of cell ``c`` over the batch, so the gradient of a
cell's parameters is exactly that cell's own gradient; SGD with (Nesterov) momentum and weight decay acts
element-wise, so every cell follows the trajectory it would follow alone (masked entries have zero gradient and
keep zero momentum). Checkpoint selection is per cell: after every epoch each cell keeps its weights if its own
selection loss fell (``allocator.pruning.finetune.training.train``'s rule). The tests hold the result equal to training
each cell alone to 1e-5.

The chain's input is the input of its first linear layer, computed once by the model's feature prefix (a flatten
for the MLPs; the convolutions for LeNet-5, which therefore stay fixed: ``frozen features``). ``check_chain``
verifies numerically that a model really is that chain over those features before anything trains.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from allocator.errors import InvalidInputError
from allocator.pruning.description import linear_chain
from allocator.pruning.masks import is_pruned
from allocator.pruning.finetune.sparse import DEFAULT_MAX_DENSITY  # the measured sparse/dense crossover
from allocator.pruning.finetune.config import TrainConfig, TrainResult
from allocator.pruning.finetune.loop import run_epochs
from allocator.pruning.finetune.training import Tensors

MAX_CELL_PARAMETERS = 10_000_000  # parameters (all cells together) per batched module; more are split into chunks


def chain_names(model: nn.Module) -> list[str]:
    """Module names of the model's linear chain, in order (``pruning.description.linear_chain``)."""
    return linear_chain(model)


def chain_features(model: nn.Module, inputs: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """The input of ``fc1`` for every row of ``inputs`` (flattened), computed by running ``model`` in eval mode."""
    first = model.get_submodule(chain_names(model)[0])
    captured: list[torch.Tensor] = []
    handle = first.register_forward_hook(lambda module, args, output: captured.append(args[0].detach().flatten(1)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                model(inputs[start:start + batch_size])
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured) if captured else inputs.new_zeros(0, first.in_features)


def layer_density(module: nn.Linear) -> float:
    """Fraction of the layer's weights kept (1 where the layer is not pruned)."""
    return float(module.weight_mask.mean()) if is_pruned(module, "weight") else 1.0


def layer_modes(model: nn.Module, max_density: float) -> tuple[str, ...]:
    """``sparse`` for every pruned chain layer at density <= ``max_density``, else ``dense``."""
    modes = []
    for name in chain_names(model):
        module = model.get_submodule(name)
        sparse = is_pruned(module, "weight") and layer_density(module) <= max_density
        modes.append("sparse" if sparse else "dense")
    return tuple(modes)


@dataclass(frozen=True)
class _Segment:
    """Where cell ``c``'s kept weights sit in a sparse layer's ``values``: ``values[start:stop]``."""

    start: int
    stop: int
    rows: torch.Tensor
    cols: torch.Tensor


class BatchedChain(nn.Module):
    """``C`` pruned chains side by side (module docstring); ``forward`` returns logits ``(C, classes, batch)``."""

    def __init__(self, models: Sequence[nn.Module], modes: Sequence[str]) -> None:
        super().__init__()
        if not models:
            raise InvalidInputError("no models to batch")
        self.cells = len(models)
        self.names = chain_names(models[0])
        if len(modes) != len(self.names):
            raise InvalidInputError(f"{len(modes)} modes for {len(self.names)} chain layers")
        self.modes = tuple(modes)
        self.widths: list[tuple[int, int]] = []
        self.segments: list[list[_Segment]] = []
        self.owners: dict[str, torch.Tensor] = {}  # parameter name -> cell index of each slice along dim 0
        self.pruned: list[bool] = []
        self.has_bias: list[bool] = []
        for index, (name, mode) in enumerate(zip(self.names, self.modes)):
            modules = [m.get_submodule(name) for m in models]
            out_width, in_width = modules[0].weight.shape
            if any(tuple(m.weight.shape) != (out_width, in_width) for m in modules):
                raise InvalidInputError(f"layer {name} has different shapes across the models")
            pruned = [is_pruned(m, "weight") for m in modules]
            if len(set(pruned)) != 1:
                raise InvalidInputError(f"layer {name} is pruned in some models and not in others")
            if any(is_pruned(m, "bias") for m in modules):
                raise InvalidInputError(f"layer {name} has a pruned bias; the batched engine prunes weights only")
            has_bias = {m.bias is not None for m in modules}
            if len(has_bias) != 1:
                raise InvalidInputError(f"layer {name} has a bias in some models and not in others")
            self.pruned.append(pruned[0])
            self.widths.append((in_width, out_width))
            self.has_bias.append(has_bias.pop())
            if self.has_bias[-1]:
                biases = [m.bias.detach() for m in modules]
                self.register_parameter(f"bias{index}", nn.Parameter(torch.cat(biases).clone()))
                self.owners[f"bias{index}"] = torch.arange(self.cells).repeat_interleave(out_width)
            if mode == "sparse":
                if not pruned[0]:
                    raise InvalidInputError(f"layer {name} is not pruned; only pruned layers can be sparse")
                rows, cols, values, owners, segments = [], [], [], [], []
                start = 0
                for cell, module in enumerate(modules):
                    r, c = module.weight_mask.bool().nonzero(as_tuple=True)
                    rows.append(r + cell * out_width)
                    cols.append(c + (cell * in_width if index > 0 else 0))  # fc1 reads the shared features
                    values.append(module.weight_orig.detach()[r, c])
                    owners.append(torch.full((len(r),), cell, dtype=torch.long))
                    segments.append(_Segment(start, start + len(r), r, c))
                    start += len(r)
                self.register_buffer(f"rows{index}", torch.cat(rows))
                self.register_buffer(f"cols{index}", torch.cat(cols))
                self.register_parameter(f"values{index}", nn.Parameter(torch.cat(values).clone()))
                self.owners[f"values{index}"] = torch.cat(owners)
                self.segments.append(segments)
            elif mode == "dense":
                weights = [(m.weight_orig if p else m.weight).detach() for m, p in zip(modules, pruned)]
                self.register_parameter(f"weight{index}", nn.Parameter(torch.stack(weights).clone()))
                self.owners[f"weight{index}"] = torch.arange(self.cells)
                if pruned[0]:
                    self.register_buffer(f"mask{index}", torch.stack([m.weight_mask.detach() for m in modules]).clone())
                self.segments.append([])
            else:
                raise InvalidInputError(f"mode {mode!r} is unknown; accepted: sparse, dense")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` ``(batch, n0)`` shared by every cell -> logits ``(C, classes, batch)``."""
        batch = features.shape[0]
        hidden = features.t().contiguous()  # (n0, batch), shared
        last = len(self.names) - 1
        for index, mode in enumerate(self.modes):
            in_width, out_width = self.widths[index]
            if mode == "sparse":
                values = getattr(self, f"values{index}")
                gathered = hidden[getattr(self, f"cols{index}")] * values[:, None]
                out = hidden.new_zeros(self.cells * out_width, batch).index_add(0, getattr(self, f"rows{index}"), gathered)
            else:
                weight = getattr(self, f"weight{index}")
                if self.pruned[index]:
                    weight = weight * getattr(self, f"mask{index}")
                if index == 0:
                    out = weight.reshape(self.cells * out_width, in_width) @ hidden
                else:
                    out = torch.bmm(weight, hidden.view(self.cells, in_width, batch)).reshape(self.cells * out_width, batch)
            hidden = out + getattr(self, f"bias{index}")[:, None] if self.has_bias[index] else out
            if index < last:
                hidden = torch.relu(hidden)
        return hidden.view(self.cells, self.widths[last][1], batch)

    def cell_losses(self, features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per cell: mean cross-entropy over the rows and the number of correct predictions, both shape ``(C,)``."""
        logits = self(features)  # (C, K, B)
        expanded = targets[:, None].expand(-1, self.cells)
        losses = nn.functional.cross_entropy(logits.permute(2, 1, 0), expanded, reduction="none")  # (B, C)
        correct = (logits.argmax(1) == targets[None, :]).sum(1)
        return losses.mean(0), correct

    def evaluate(self, features: torch.Tensor, targets: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Per cell mean cross-entropy and accuracy on a whole split."""
        if len(targets) == 0:
            raise InvalidInputError("cannot evaluate on an empty split")
        total = torch.zeros(self.cells, dtype=torch.float64)
        correct = torch.zeros(self.cells, dtype=torch.long)
        with torch.no_grad():
            for start in range(0, len(targets), batch_size):
                y = targets[start:start + batch_size]
                losses, right = self.cell_losses(features[start:start + batch_size], y)
                total += losses.double() * len(y)
                correct += right
        return total / len(targets), correct.double() / len(targets)

    def write_back(self, models: Sequence[nn.Module]) -> None:
        """Copy every cell's chain weights into its model (kept positions of ``weight_orig`` where pruned)."""
        with torch.no_grad():
            for cell, model in enumerate(models):
                for index, (name, mode) in enumerate(zip(self.names, self.modes)):
                    module = model.get_submodule(name)
                    out_width = self.widths[index][1]
                    if self.has_bias[index]:
                        module.bias.copy_(getattr(self, f"bias{index}")[cell * out_width:(cell + 1) * out_width])
                    if mode == "sparse":
                        segment = self.segments[index][cell]
                        module.weight_orig[segment.rows, segment.cols] = getattr(self, f"values{index}")[segment.start:segment.stop]
                    elif self.pruned[index]:
                        mask = module.weight_mask.bool()
                        module.weight_orig[mask] = getattr(self, f"weight{index}")[cell][mask]
                    else:
                        module.weight.copy_(getattr(self, f"weight{index}")[cell])


def check_chain(model: nn.Module, inputs: torch.Tensor, tolerance: float = 1e-4) -> None:
    """Raise unless ``model(inputs)`` equals its linear chain with ReLUs applied to ``chain_features(inputs)``,
    in eval mode and in training mode (a chain with dropout, say, differs in training mode and is refused)."""
    chain = BatchedChain([model], layer_modes(model, 0.0))
    was_training = model.training
    try:
        for training in (False, True):
            model.train(training)
            with torch.no_grad():
                torch.manual_seed(0)
                expected = model(inputs)
                features = chain_features(model, inputs)
                got = chain(features)[0].t()
            scale = max(1.0, float(expected.abs().max()))
            if expected.shape != got.shape or float((expected - got).abs().max()) > tolerance * scale:
                mode = "training" if training else "eval"
                raise InvalidInputError(
                    f"{type(model).__name__} is not a ReLU chain of its linear layers (in the order they are defined) over the input of the first (in {mode} "
                    "mode); batched fine-tuning does not apply (run with sparse_finetune off)")
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class ChainData:
    """The chain's inputs for every split (features of ``fc1``), with the labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor

    @classmethod
    def from_model(cls, model: nn.Module, data: Tensors) -> "ChainData":
        return cls(chain_features(model, data.train_x), data.train_y, chain_features(model, data.val_x), data.val_y)

    @classmethod
    def with_test(cls, model: nn.Module, data: Tensors) -> "ChainData":
        """Selection on the test split (``select_on='test'``): ``val`` holds the test split."""
        return cls(chain_features(model, data.train_x), data.train_y, chain_features(model, data.test_x), data.test_y)


EpochProgress = Callable[[int, int, float], None]


class _OwnedCheckpoint:
    """The selected weights of every cell: a copy of each parameter, refreshed where its owning cell improved."""

    def __init__(self, chain: BatchedChain) -> None:
        self.chain = chain
        self.parameters = dict(chain.named_parameters())
        self.best = {name: p.detach().clone() for name, p in self.parameters.items()}

    def keep(self, improved: torch.Tensor) -> None:
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                take = improved[self.chain.owners[name]]
                take = take.view(-1, *([1] * (parameter.dim() - 1)))
                self.best[name] = torch.where(take, parameter.detach(), self.best[name])

    def restore(self) -> None:
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                parameter.copy_(self.best[name])


def _train_batched(chain: BatchedChain, data: ChainData, config: TrainConfig, seed: int,
                   progress: EpochProgress | None) -> list[TrainResult]:
    """``allocator.pruning.finetune.training.train`` for every cell of ``chain`` at once, through the same loop."""

    def select() -> tuple[torch.Tensor, torch.Tensor] | None:
        return chain.evaluate(data.val_x, data.val_y) if len(data.val_y) else None

    report = None if progress is None else (lambda epoch, epochs, records: progress(epoch, epochs, records[0].seconds))
    return run_epochs(chain, chain.parameters(), config, seed, cells=chain.cells, samples=len(data.train_y),
                      batch_losses=lambda index: chain.cell_losses(data.train_x[index], data.train_y[index])[0],
                      select=select, checkpoint=_OwnedCheckpoint(chain), progress=report)


def finetune_cells(
    models: Sequence[nn.Module],
    data: ChainData,
    config: TrainConfig,
    seed: int,
    *,
    max_density: float = DEFAULT_MAX_DENSITY,
    progress: Callable[[str], None] | None = None,
    on_chunk: Callable[[list[int], list[TrainResult], float], None] | None = None,
) -> list[TrainResult]:
    """Fine-tune every pruned model of ``models`` with masks fixed, batched (module docstring); returns one
    ``TrainResult`` per model, in order. Models are grouped by their per-layer modes (sparse below
    ``max_density``), and groups larger than ``MAX_CELL_PARAMETERS`` are split; every model ends holding its
    selected checkpoint's chain weights (the feature prefix is not trained). ``on_chunk(positions, results,
    seconds)`` is called as soon as each batch of models is done (to write results as they land)."""
    if not models:
        return []
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, model in enumerate(models):
        groups.setdefault(layer_modes(model, max_density), []).append(position)
    results: list[TrainResult | None] = [None] * len(models)
    for modes, positions in groups.items():
        per_cell = sum(p.numel() for p in BatchedChain([models[positions[0]]], modes).parameters())
        chunk = max(1, MAX_CELL_PARAMETERS // max(1, 5 * per_cell))  # parameter, gradient, momentum, best, mask
        for first in range(0, len(positions), chunk):
            members = positions[first:first + chunk]
            start = time.perf_counter()
            chain = BatchedChain([models[p] for p in members], modes)
            label = f"{len(members)} cell(s), layers {'/'.join(modes)}"
            report = None
            if progress is not None:
                report = lambda e, n, s, label=label: progress(f"fine-tuning {label}: epoch {e}/{n} ({s:.1f} s)")
            trained = _train_batched(chain, data, config, seed, report)
            chain.write_back([models[p] for p in members])
            for position, result in zip(members, trained):
                results[position] = result
            if on_chunk is not None:
                on_chunk(members, trained, time.perf_counter() - start)
    return [r for r in results if r is not None]

