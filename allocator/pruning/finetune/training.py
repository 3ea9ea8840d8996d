"""Training and evaluation on in-memory tensors, paper 1's recipe by default, seeded and reproducible on CPU.

Recipe: SGD, learning rate 0.01, momentum 0.9, Nesterov, no weight decay, batch 128, 15 epochs, cross-entropy,
no schedule. The checkpoint with the lowest loss on the *validation* split is kept (``select_on``); the
authors selected on the test split (``select_on="test"``, an explicit option) and ``"last"`` keeps the final
epoch. The data order of epoch ``e`` comes from a generator seeded by ``(seed, e)``.

Pruned models train as they are: ``torch.nn.utils.prune`` multiplies by the mask in every forward pass, so
masked weights get zero gradient and stay zero (fine-tuning with masks fixed).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from allocator.data import Dataset
from allocator.errors import InvalidInputError
from allocator.pruning.finetune.config import SELECT_ON, EpochRecord, TrainConfig, TrainResult  # noqa: F401
from allocator.pruning.finetune.loop import AfterStep, run_epochs


def set_threads(threads: int = 1) -> None:
    """Set torch's intra-op threads deliberately (one by default: on a loaded 2-core machine two threads
    made training 70x slower through libgomp spinning)."""
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass(frozen=True)
class Tensors:
    """A data set as torch tensors (float32 images, int64 labels)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> "Tensors":
        return cls(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (
            dataset.train_x, dataset.train_y, dataset.val_x, dataset.val_y, dataset.test_x, dataset.test_y)))

    def reshaped(self, shape: tuple[int, ...]) -> "Tensors":
        """The same examples, each reshaped to ``shape`` (same number of values)."""
        return Tensors(*(x.reshape(len(x), *shape) if i % 2 == 0 else x for i, x in enumerate(
            (self.train_x, self.train_y, self.val_x, self.val_y, self.test_x, self.test_y))))

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return {"validation": (self.val_x, self.val_y), "test": (self.test_x, self.test_y),
                "train": (self.train_x, self.train_y)}[name]


def evaluate(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction correct) of ``model`` on ``inputs``."""
    if len(targets) == 0:
        raise InvalidInputError("cannot evaluate on an empty split")
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(targets), batch_size):
            logits = model(inputs[start:start + batch_size])
            y = targets[start:start + batch_size]
            total_loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    return total_loss / len(targets), correct / len(targets)


Progress = Callable[[int, int, EpochRecord], None]


class _StateCheckpoint:
    """The selected weights of one model: a deep copy of its whole state (parameters and buffers)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.state: dict[str, torch.Tensor] | None = None

    def keep(self, improved: torch.Tensor) -> None:
        if bool(improved[0]):
            self.state = copy.deepcopy(self.model.state_dict())

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def train(
    model: nn.Module,
    data: Tensors,
    config: TrainConfig,
    seed: int,
    progress: Progress | None = None,
    after_step: AfterStep | None = None,
) -> TrainResult:
    """Train ``model`` in place by ``config`` through ``loop.run_epochs`` (one cell); at the end it holds the
    selected checkpoint's weights.

    ``after_step(step)`` is called after every optimiser step (steps count from 1), e.g. to record snapshots;
    a true return value ends training there.
    """
    if config.select_on == "validation" and len(data.val_y) == 0:
        raise InvalidInputError("select_on='validation' needs a validation split; hold one out or pass select_on")
    split = "validation" if config.select_on == "last" else config.select_on

    def batch_losses(index: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(model(data.train_x[index]), data.train_y[index]).reshape(1)

    def select() -> tuple[torch.Tensor, torch.Tensor] | None:
        inputs, targets = data.split(split)
        if len(targets) == 0:
            return None
        loss, accuracy = evaluate(model, inputs, targets)
        return torch.tensor([loss], dtype=torch.float64), torch.tensor([accuracy], dtype=torch.float64)

    report = None if progress is None else (lambda epoch, epochs, records: progress(epoch, epochs, records[0]))
    return run_epochs(model, model.parameters(), config, seed, cells=1, samples=len(data.train_y),
                      batch_losses=batch_losses, select=select, checkpoint=_StateCheckpoint(model),
                      progress=report, after_step=after_step)[0]
