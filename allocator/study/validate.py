"""``validate``: from allocations to accuracy, with paired seeds (paper 1's protocol).

Per seed: build the model with ``torch.manual_seed(seed)``, train it dense once (cached in the run folder). Then
for every density and allocation rule, the cell protocol of ``allocator.study.cells``: prune the dense weights to
exactly the allocated count per layer, fine-tune with masks fixed, evaluate on the test split, write the cell
atomically, so an interrupted run resumes where it stopped. ``allocator.study.summary`` then pairs seeds:
``ours - uniform`` per seed, its mean and a 95 % Student-t interval.

Allocation rules: ``ours`` (``allocate``), the weight-free baselines ``uniform``, ``uniform-gale``, ``er``,
``erk``, and the weight-based ``global-magnitude`` and ``lamp`` (one global threshold over the prunable
tensors of this seed's dense model, which yields per-layer kept counts).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Sequence

import torch

from allocator import __version__
from allocator.allocation import allocate, baseline_names
from allocator.data import load_dataset
from allocator.errors import InvalidInputError
from allocator.io_utils import atomic_write_text
from allocator.pruning.criteria import ScoreContext
from allocator.pruning.description import describe
from allocator.pruning.finetune.training import Tensors, set_threads
from allocator.pruning.model_source import is_registered
from allocator.study.cells import SeedCells, pending_cells
from allocator.study.progress import Progress
from allocator.study.config import KOOPMAN_CRITERIA, ValidateConfig, changed_fields, run_identity
from allocator.study.run_folder import allocation_path, dense_model, save_allocation_if_changed
from allocator.study.seeds import derive_seed
from allocator.study.summary import summarise

Say = Callable[[str], None]


def run_validation(config: ValidateConfig, out_dir: str | Path, say: Say | None = None) -> dict[str, object]:
    """Run (or resume) the validation of ``config`` in ``out_dir``; return the summary document."""
    config.check()
    say = say or _quiet
    out = Path(out_dir)
    _bind_run_folder(config, out)
    set_threads(config.threads)
    dataset = load_dataset(config.dataset, data_dir=config.data_dir, validation=config.validation)
    entry = config.entry(data_shape=tuple(dataset.input_shape))
    data = Tensors.from_dataset(dataset)
    if tuple(dataset.input_shape) != tuple(entry.input_shape):
        if math.prod(dataset.input_shape) != math.prod(entry.input_shape) or is_registered(config.model):
            raise InvalidInputError(
                f"model {config.model} takes inputs of shape {entry.input_shape}, data set {config.dataset} has "
                f"{dataset.input_shape}"
            )
        data = data.reshaped(entry.input_shape)  # same values, the model's shape (e.g. flat vectors)
    atomic_write_text(out / "config.json", json.dumps({"config": run_identity(config), "allocator_version": __version__,
                                                       "torch_version": torch.__version__,
                                                       "dataset": dataset.describe()}, indent=2))
    network = entry.bound_network(frozen_convs=not config.convs_inside)
    if config.convs_inside:
        from allocator.pruning.fx_program import translate

        traced = translate(entry.build(), tuple(entry.input_shape))  # the registry must match the torch module
        if traced != network:
            raise InvalidInputError(f"model {config.model}: registry program differs from its fx trace")
    else:
        traced = describe(entry.build(), data.train_x[:1]).network  # the registry must match the torch module
        if traced.names != network.names or traced.widths != network.widths:
            raise InvalidInputError(f"model {config.model}: registry description {network} differs from its trace "
                                    f"{traced}")
    prunable = [n for n, p in zip(network.names, network.prunable) if p]
    allocations = _allocations(config, network, out, say)
    batched = _batched_engine(config, entry, data)
    if batched:
        say("fine-tuning engine: batched cells (allocator.pruning.finetune.batched)"
            + (", convolutional features frozen at the dense model" if config.freeze_features else ""))
    todo = {seed: len(pending_cells(config, out / "cells", seed)) for seed in config.seeds}
    total = len(config.seeds) * len(config.cells())
    if sum(todo.values()) < total:
        say(f"resuming {out}: {total - sum(todo.values())} of {total} cells are already done; "
            f"{sum(todo.values())} to compute (rerunning after a stop continues from there)")
    progress = Progress(sum(todo.values()), "cells", say if say is not _quiet else None)
    try:
        for seed_index, seed in enumerate(config.seeds):
            if todo[seed]:
                _run_seed(config, entry, network, prunable, data, allocations, batched, out, seed,
                          f"{seed_index + 1}/{len(config.seeds)}", progress)
    finally:
        progress.close()
    return summarise(out, config)


def _quiet(message: str) -> None:
    """The ``say`` of a run asked to be quiet."""


def _run_seed(config: ValidateConfig, entry, network, prunable, data: Tensors, allocations: dict, batched: bool,
              out: Path, seed: int, position: str, progress: Progress) -> None:
    """One seed's dense model (trained or loaded), then its pending cells (alone or batched)."""
    say = progress.message
    model, dense_accuracy = dense_model(config, entry, data, out, seed, position, say)
    batch = slice(0, config.train.batch_size)
    context = ScoreContext(seed=seed, inputs=data.train_x[batch], targets=data.train_y[batch])
    cells = SeedCells(config, entry, network, prunable, data, model, dense_accuracy, context, allocations,
                      out / "cells", seed, say, progress)
    pending = cells.pending()
    if not pending:
        return
    if config.criterion in KOOPMAN_CRITERIA:
        cells.context = ScoreContext(seed=seed, inputs=context.inputs, targets=context.targets,
                                     extra={"koopman": _koopman_window(config, model, data, prunable, seed, out, say)})
    (cells.run_batched if batched else cells.run_alone)(pending)


def _bind_run_folder(config: ValidateConfig, out: Path) -> None:
    """Refuse a run folder that holds a run of another configuration (seeds and engine fields may differ)."""
    stored = out / "config.json"
    if stored.is_file():
        previous = json.loads(stored.read_text())
        changed = changed_fields(previous.get("config", {}), run_identity(config))
        if changed:
            raise InvalidInputError(
                f"{out} holds a run with another configuration (differs in: {', '.join(changed)}); use another --out"
            )


def _allocations(config: ValidateConfig, network, out: Path, say: Say) -> dict:
    """Our allocation (and the weight-free baselines asked for) at every density, written to ``allocations/``."""
    allocations = {}
    baselines = [r for r in baseline_names() if r in config.allocations or r == "uniform"]
    for density in config.densities:
        say(f"allocating at density {density:g} ({config.rank_model} rank model)")
        result = allocate(network, density=density, rank_model=config.rank_model, baselines=baselines,
                          raw_baselines=True)
        save_allocation_if_changed(result, allocation_path(out, config.model, density))
        allocations[density] = result
    return allocations


def _batched_engine(config: ValidateConfig, entry, data: Tensors) -> bool:
    """Whether cells fine-tune through ``allocator.pruning.finetune.batched`` (all at once per seed).

    That engine trains the linear chain (``pruning.description.linear_chain``) only, so it applies where nothing else trains: models
    that are only a chain (the MLPs), or any chain model when ``freeze_features`` fixes the layers before it.
    (``config.check()`` refuses ``freeze_features`` on a model that is not such a chain.)
    """
    from allocator.pruning.finetune.batched import chain_names, check_chain

    if not config.sparse_finetune:
        return False
    model = entry.build()
    try:
        names = set(chain_names(model))
        check_chain(model, data.train_x[:8])
    except InvalidInputError:
        return False  # not a ReLU chain: the one-cell engines apply (and freeze where asked)
    return config.freeze_features or all(n.rpartition(".")[0] in names for n, _ in model.named_parameters())


def _koopman_window(config: ValidateConfig, model: torch.nn.Module, data: Tensors, prunable: Sequence[str],
                    seed: int, out: Path, say: Say):
    """KMP/KGP scores from a window of snapshots recorded while a copy of the dense model trains on.

    The window starts at the dense checkpoint (the weights that are pruned) and runs ``koopman_steps``
    optimiser steps (default one epoch) of the fine-tuning recipe; snapshots go to a file under the run
    folder, which is deleted once the scores are computed.
    """
    from allocator.koopman import koopman_scores, record_window

    steps = config.koopman_steps or -(-len(data.train_y) // config.finetune.batch_size)
    say(f"seed {seed}: recording {steps} steps of snapshots (stride {config.koopman_stride}) for {config.criterion}")
    store = record_window(model, data, prunable, steps=steps, config=config.finetune,
                          seed=derive_seed(seed, "koopman-window"), stride=config.koopman_stride,
                          directory=str(out / "snapshots" / f"seed{seed}"))
    try:
        result = koopman_scores(store, stride=config.koopman_stride)
    finally:
        store.close()
    say(f"seed {seed}: DMD rank {result.rank}, eigenvalue closest to 1: {result.eigenvalue:.6f}")
    return result
