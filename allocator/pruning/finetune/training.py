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
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from allocator.data import Dataset
from allocator.errors import InvalidInputError

SELECT_ON = ("validation", "test", "last")


def set_threads(threads: int = 1) -> None:
    """Set torch's intra-op threads deliberately (one by default: on a loaded 2-core machine two threads
    made training 70x slower through libgomp spinning)."""
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; defaults are paper 1's recipe."""

    epochs: int = 15
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    batch_size: int = 128
    select_on: str = "validation"

    def __post_init__(self) -> None:
        if self.select_on not in SELECT_ON:
            raise InvalidInputError(f"select_on is {self.select_on!r}; accepted: {', '.join(SELECT_ON)}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise InvalidInputError(f"epochs is {self.epochs!r}; expected an integer >= 0")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InvalidInputError(f"batch size is {self.batch_size!r}; expected an integer >= 1")
        if not self.lr > 0:
            raise InvalidInputError(f"learning rate is {self.lr!r}; expected a positive number")


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

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return {"validation": (self.val_x, self.val_y), "test": (self.test_x, self.test_y),
                "train": (self.train_x, self.train_y)}[name]


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    select_loss: float
    select_accuracy: float
    seconds: float


@dataclass
class TrainResult:
    """History per epoch and the epoch whose weights were kept (0: the weights before training)."""

    select_on: str
    best_epoch: int
    history: list[EpochRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"select_on": self.select_on, "best_epoch": self.best_epoch,
                "history": [asdict(record) for record in self.history]}


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


def train(
    model: nn.Module,
    data: Tensors,
    config: TrainConfig,
    seed: int,
    progress: Progress | None = None,
    after_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place by ``config``; at the end it holds the selected checkpoint's weights.

    ``after_step(step)`` is called after every optimiser step (steps count from 1), e.g. to record snapshots.
    """
    if config.select_on == "validation" and len(data.val_y) == 0:
        raise InvalidInputError("select_on='validation' needs a validation split; hold one out or pass select_on")
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    result = TrainResult(config.select_on, 0)
    best_state = None
    best_loss = float("inf")
    if config.select_on != "last":
        best_loss, _ = evaluate(model, *data.split(config.select_on))
        best_state = copy.deepcopy(model.state_dict())
    n = len(data.train_y)
    step = 0
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        model.train()
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator)
        running, batches = 0.0, 0
        for first in range(0, n, config.batch_size):
            index = order[first:first + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data.train_x[index]), data.train_y[index])
            loss.backward()
            optimizer.step()
            step += 1
            if after_step is not None:
                after_step(step)
            running += loss.item()
            batches += 1
        if config.select_on == "last":
            select_loss, select_accuracy = evaluate(model, data.val_x, data.val_y) if len(data.val_y) else (float("nan"),) * 2
        else:
            select_loss, select_accuracy = evaluate(model, *data.split(config.select_on))
        record = EpochRecord(epoch, running / max(1, batches), select_loss, select_accuracy, time.perf_counter() - start)
        result.history.append(record)
        if config.select_on == "last" or select_loss < best_loss:
            best_loss, result.best_epoch = select_loss, epoch
            if config.select_on != "last":
                best_state = copy.deepcopy(model.state_dict())
        if progress is not None:
            progress(epoch, config.epochs, record)
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
