"""The one training loop: seeded epochs of minibatch SGD with per-cell checkpoint selection.

Both engines run it: ``training.train`` (one model, ``cells = 1``) and ``batched.finetune_cells`` (``C`` pruned
cells side by side). Per epoch ``e`` the data order is ``randperm(n)`` from a generator seeded by
``seed * 100_003 + e``; each minibatch's loss is ``sum_c CE_c`` (``CE_c`` the mean cross-entropy of cell ``c``),
so every cell's parameters receive exactly that cell's own gradient, and SGD with (Nesterov) momentum acts
element-wise. After every epoch the selection split is evaluated per cell; a cell keeps its weights when its
selection loss fell below its best (``select_on="last"``: always), and at the end each cell is restored to its
kept checkpoint.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Protocol

import torch
from torch import nn

from allocator.errors import InvalidInputError
from allocator.pruning.finetune.config import EpochRecord, TrainConfig, TrainResult

#: ``after_step(step) -> stop``: called after every optimiser step (steps count from 1); a true value ends
#: training at once (no evaluation of that epoch; the kept checkpoint is restored when selecting), e.g. when a
#: window of snapshots is complete.
AfterStep = Callable[[int], "bool | None"]


class Checkpoint(Protocol):
    """Where the selected weights are kept: ``keep(improved)`` stores the cells whose flag is true."""

    def keep(self, improved: torch.Tensor) -> None: ...

    def restore(self) -> None: ...


def run_epochs(
    module: nn.Module,
    parameters: Iterable[nn.Parameter],
    config: TrainConfig,
    seed: int,
    *,
    cells: int,
    samples: int,
    batch_losses: Callable[[torch.Tensor], torch.Tensor],
    select: Callable[[], tuple[torch.Tensor, torch.Tensor] | None],
    checkpoint: Checkpoint,
    progress: Callable[[int, int, list[EpochRecord]], None] | None = None,
    after_step: AfterStep | None = None,
) -> list[TrainResult]:
    """Train ``module`` (module docstring); returns one ``TrainResult`` per cell.

    ``batch_losses(index)`` gives the per-cell mean losses ``(cells,)`` of the training rows ``index``;
    ``select()`` the per-cell loss and accuracy on the selection split, or ``None`` when there is none (then the
    history records nan). With ``select_on != "last"`` a selection split is required.
    """
    optimizer = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    results = [TrainResult(config.select_on, 0) for _ in range(cells)]
    selecting = config.select_on != "last"
    best_loss = torch.full((cells,), float("inf"), dtype=torch.float64)
    if selecting:
        initial = select()
        if initial is None:
            raise InvalidInputError(f"select_on={config.select_on!r} needs a non-empty selection split")
        best_loss = initial[0]
        checkpoint.keep(torch.ones(cells, dtype=torch.bool))
    step = 0
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        module.train()
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(samples, generator=generator)
        running = torch.zeros(cells, dtype=torch.float64)
        batches = 0
        for first in range(0, samples, config.batch_size):
            index = order[first:first + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            losses = batch_losses(index)
            losses.sum().backward()
            optimizer.step()
            step += 1
            if after_step is not None and after_step(step):
                if selecting:  # the weights of the kept checkpoint, as at the end of a full run
                    checkpoint.restore()
                return results
            running += losses.detach().double()
            batches += 1
        measured = select()
        if measured is None:
            select_loss = select_accuracy = torch.full((cells,), float("nan"), dtype=torch.float64)
        else:
            select_loss, select_accuracy = measured
        seconds = time.perf_counter() - start
        improved = (select_loss < best_loss) if selecting else torch.ones(cells, dtype=torch.bool)
        records = []
        for cell in range(cells):
            record = EpochRecord(epoch, float(running[cell]) / max(1, batches), float(select_loss[cell]),
                                 float(select_accuracy[cell]), seconds)
            results[cell].history.append(record)
            records.append(record)
            if bool(improved[cell]):
                results[cell].best_epoch = epoch
        if selecting:
            best_loss = torch.where(improved, select_loss, best_loss)
            checkpoint.keep(improved)
        if progress is not None:
            progress(epoch, config.epochs, records)
    if selecting:
        checkpoint.restore()
    return results
