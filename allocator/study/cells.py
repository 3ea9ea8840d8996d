"""The cell protocol, shared by ``validate``, the sweeps, the regions runs and the studies.

A *cell* is one (seed, density, allocation rule, criterion). From the seed's dense model: score the prunable
tensors with the criterion, keep exactly the rule's count per tensor (``prune_from_dense``), fine-tune with the
masks fixed, seeded by ``derive_seed(seed, "finetune")`` (``finetune_cell``, or all cells of a seed at once
through the batched engine), evaluate on the test split, and write the cell atomically. Cells of one seed with
the same kept counts get the same masks, seed and data order, so they are fine-tuned once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from allocator.bound import ln_expected_bound
from allocator.io_utils import atomic_write_text
from allocator.errors import InvalidInputError
from allocator.pruning.baselines import weight_rule_kept
from allocator.pruning.rd import CALIBRATION_SIZE
from allocator.pruning.criteria import ScoreContext, scores
from allocator.pruning.finetune.config import TrainConfig, TrainResult
from allocator.pruning.finetune.sparse import finetune
from allocator.pruning.finetune.training import Tensors, evaluate, train
from allocator.pruning.masks import prune_to_counts, realised_counts
from allocator.network import Residual
from allocator.study.config import WEIGHT_FREE_RULES, ValidateConfig, guard_of
from allocator.study.run_folder import cell_id, read_cell
from allocator.study.progress import Progress
from allocator.study.seeds import derive_seed

Say = Callable[[str], None]


#: The guard of validate's rule ``ours-guarded`` (nats); ``ours-guarded:TAU`` sets another. The solver's default
#: (``DEFAULT_GUARD_NATS``, 0.1) came later, from the study of these rules.
GUARDED_RULE_NATS = 1.0


def _data_objective_kept(objective: str, allocation, model: nn.Module, prunable: Sequence[str],
                         calibration, guard_nats: float | None = None) -> dict[str, int]:
    """``ours`` with a data objective: this seed's dense model's distortion curves on ``calibration``, then the
    allocation at ``allocation``'s budget, rank model and constraints (its conv floors included)."""
    from allocator.allocation import allocate
    from allocator.pruning.rd import measure_distortion

    if calibration is None:
        raise InvalidInputError(f"rule ours-{objective} needs a calibration batch of training inputs")
    curves = measure_distortion(model, list(prunable), calibration, extra=[allocation.budget.density])
    extra = {} if guard_nats is None else {"guard_nats": guard_nats}
    result = allocate(allocation.network, kept=allocation.budget.kept, rank_model=allocation.rank_model,
                      constraints=allocation.constraints, objective=objective, distortion=curves, baselines=(),
                      conv_floor=None, **extra)
    return {layer.name: layer.kept for layer in result.layers if layer.prunable}


def kept_for_rule(rule: str, allocation, model: nn.Module, prunable: Sequence[str],
                  init_model: Callable[[], nn.Module] | None = None,
                  input_shape: Sequence[int] | None = None, calibration=None) -> dict[str, int] | None:
    """Kept count per prunable tensor under ``rule`` at ``allocation``'s budget; ``None`` when the rule is
    unavailable there (e.g. ``uniform-gale`` below its floor). Weight-based rules read ``model``'s weights;
    ``synflow`` reads the initial draw (``init_model()``, the dense model's init) and needs ``input_shape``; ``rd``
    reads the dense model and a calibration batch of training inputs (``calibration``)."""
    names = allocation.network.names
    if rule == "ours":
        return {n: k for n, k, layer in zip(names, allocation.kept, allocation.layers) if layer.prunable}
    if rule in WEIGHT_FREE_RULES:  # the rule as it is defined (its raw counts, paper 1's protocol), not repaired
        result = allocation.baselines[rule]
        if result.kept is None:
            return None
        counts = result.raw_kept if result.repaired else result.kept
        return {n: k for n, k in zip(names, counts) if n in prunable}
    if rule == "synflow":
        return weight_rule_kept(rule, init_model() if init_model is not None else model, prunable,
                                allocation.budget.kept, input_shape)
    if rule == "ours-distortion":
        return _data_objective_kept("distortion", allocation, model, prunable, calibration)
    if rule == "ours-guarded":  # the guard of the first studies, fixed so that their run folders stay consistent
        return _data_objective_kept("guarded", allocation, model, prunable, calibration, GUARDED_RULE_NATS)
    guard = guard_of(rule)
    if guard is not None:
        return _data_objective_kept("guarded", allocation, model, prunable, calibration, guard)
    return weight_rule_kept(rule, model, prunable, allocation.budget.kept, input_shape, calibration)


def prune_from_dense(build: Callable[[], nn.Module], dense_state: dict[str, torch.Tensor],
                     layer_scores: dict[str, torch.Tensor], kept: dict[str, int]) -> nn.Module:
    """A fresh model with the dense weights, pruned to exactly ``kept`` top-scored weights per tensor."""
    pruned = build()
    pruned.load_state_dict(dense_state)
    prune_to_counts(pruned, layer_scores, kept)
    return pruned


def _respent_scores(chain: Sequence[str], shapes: Sequence[tuple[int, int]], scores: Mapping[str, torch.Tensor],
                    kept: Mapping[str, int]) -> tuple[dict[str, torch.Tensor], int]:
    """Scores whose top ``kept[name]`` per tensor are the criterion's masks with dead weights traded for live ones
    (``allocator.pruning.effective.respend_dead``; the same count per layer), and how many were traded. A layer of
    the chain that is not pruned (the classifier) keeps every weight."""
    from allocator.pruning.effective import respend_dead
    from allocator.pruning.masks import mask_from_scores

    masks = [mask_from_scores(scores[name], kept[name]).bool() if name in kept else torch.ones(shape, dtype=torch.bool)
             for name, shape in zip(chain, shapes)]
    chain_scores = [scores[name] if name in kept else torch.zeros(shape) for name, shape in zip(chain, shapes)]
    respent, traded = respend_dead(chain_scores, masks)
    return {name: mask.float().reshape(scores[name].shape) for name, mask in zip(chain, respent) if name in kept}, traded


def finetune_cell(model: nn.Module, build: Callable[[], nn.Module], data: Tensors, config: TrainConfig, seed: int, *,
                  sparse: bool = True, freeze_features: bool = False, seed_purpose: str = "finetune") -> TrainResult:
    """Fine-tune one pruned cell with masks fixed, seeded by ``derive_seed(seed, seed_purpose)``.

    ``sparse``: through the sparse twin where layers are very sparse (same arithmetic, faster); ``freeze_features``:
    only the linear chain (``linear_chain``) trains, the layers before it keep the dense model's weights.
    """
    finetune_seed = derive_seed(seed, seed_purpose)
    if freeze_features:
        from allocator.pruning.finetune.batched import chain_names

        chain = set(chain_names(model))
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.rpartition(".")[0] in chain)
        try:
            return train(model, data, config, finetune_seed)
        finally:
            for parameter in model.parameters():
                parameter.requires_grad_(True)
    if sparse:
        return finetune(model, build, data, config, finetune_seed)
    return train(model, data, config, finetune_seed)


def pending_cells(config: ValidateConfig, cells_dir: Path, seed: int, say: Say | None = None) -> list[tuple[float, str]]:
    """The (density, rule) cells of ``seed`` that are not on disk yet, or whose file is unreadable or incomplete
    (then ``say`` tells, and the cell is computed again)."""
    todo = []
    for density, rule in config.cells():
        path = cells_dir / f"{cell_id(seed, density, rule, config.criterion)}.json"
        if read_cell(path) is None:
            if path.is_file() and say is not None:
                say(f"seed {seed} density {density:g} {rule}: the cell file {path} is unreadable or incomplete; "
                    f"computing the cell again")
            todo.append((density, rule))
    return todo


def _refuse_other_dense(earlier: Sequence[tuple[Path, dict | None]], dense_accuracy: float, seed: int,
                        cells_dir: Path) -> None:
    """Refuse to add cells to ``seed`` when the cells on disk came from another dense model.

    A seed's cells are paired by sharing one dense model. Where its checkpoint (``dense/``, not in git) is gone and
    retraining does not reproduce it bit for bit (another CPU, another torch), the new dense model's test accuracy
    differs from the ``dense_test_accuracy`` the earlier cells recorded; new cells would then not pair with them, and
    a new cell with the same counts as an old one would copy its results. Raised before any cell is computed."""
    other = [(path, done) for path, done in earlier
             if done is not None and done.get("dense_test_accuracy") is not None
             and abs(float(done["dense_test_accuracy"]) - dense_accuracy) > 1e-9]
    if other:
        recorded = sorted({float(done["dense_test_accuracy"]) for _, done in other})
        raise InvalidInputError(
            f"seed {seed}: the dense model now has test accuracy {dense_accuracy:.4f}, but {len(other)} cells in "
            f"{cells_dir} (e.g. {other[0][0].name}) came from one at {', '.join(f'{a:.4f}' for a in recorded)}; new "
            "cells would not pair with them. Restore that seed's dense checkpoint, or move its cells away to "
            "recompute the seed")


@dataclass
class _Prepared:
    """A pruned cell waiting for fine-tuning."""

    path: Path
    cell: dict[str, object]
    model: nn.Module | None  # None for a cell of an earlier run, read from disk
    kept: dict[str, int]
    start: float
    duplicates: list[tuple[Path, dict[str, object]]] = field(default_factory=list)  # cells with the same counts
    finished: dict[str, object] | None = None  # the written cell, once fine-tuned and evaluated


class SeedCells:
    """The cells of one seed: prune from the dense model, fine-tune (alone or batched), evaluate, write."""

    def __init__(self, config: ValidateConfig, entry, network, prunable: Sequence[str], data: Tensors,
                 model: nn.Module, dense_accuracy: float, context: ScoreContext, allocations: dict,
                 cells_dir: Path, seed: int, say: Say, progress: Progress | None = None) -> None:
        self.config, self.entry, self.network, self.prunable, self.data = config, entry, network, prunable, data
        self.model, self.dense_accuracy, self.context = model, dense_accuracy, context
        self.dense_state = {k: v.clone() for k, v in model.state_dict().items()}
        self.allocations, self.cells_dir, self.seed = allocations, cells_dir, seed
        self.progress = progress
        self.files = {}  # file rule -> its Allocation, checked against the model
        if config.allocation_files:
            from allocator.allocation.file import load
            from allocator.pruning.apply import allocation_counts

            for rule, path in config.file_rules().items():
                self.files[rule] = load(path)
                allocation_counts(self.files[rule], model)  # refuses a file that does not fit the model
        self.say = progress.message if progress is not None else say
        self._scores: dict[str, torch.Tensor] | None = None
        self._by_kept: dict[tuple[tuple[str, int], ...], _Prepared] = {}
        earlier = [(path, read_cell(path)) for path in sorted(cells_dir.glob(f"seed{seed}-*-{config.criterion}.json"))]
        _refuse_other_dense(earlier, dense_accuracy, seed, cells_dir)
        for path, done in earlier:  # cells of earlier runs
            if done is not None and "test_accuracy" in done and "same_counts_as" not in done:
                key = tuple(sorted(done["kept"].items()))
                self._by_kept.setdefault(key, _Prepared(path, done, None, done["kept"], 0.0, finished=done))

    def _init_model(self) -> nn.Module:
        """The seed's initial draw: the model the dense training started from (``run_folder.dense_model``)."""
        torch.manual_seed(derive_seed(self.seed, "dense"))
        return self.entry.build()

    def pending(self) -> list[tuple[float, str]]:
        """The (density, rule) cells of this seed still to compute (``pending_cells``)."""
        return pending_cells(self.config, self.cells_dir, self.seed, self.say)

    def prepare(self, density: float, rule: str) -> _Prepared | None:
        """Prune a fresh copy of the dense model for one cell; ``None`` if the cell is unavailable (then written
        at once) or keeps the same counts as a cell prepared before (then written with that cell's results)."""
        config, seed = self.config, self.seed
        path = self.cells_dir / f"{cell_id(seed, density, rule, config.criterion)}.json"
        start = time.perf_counter()
        cell: dict[str, object] = {"seed": seed, "density": density, "allocation": rule,
                                   "criterion": config.criterion, "dense_test_accuracy": self.dense_accuracy}
        if "koopman" in self.context.extra:
            cell["koopman"] = self.context.extra["koopman"].describe()  # type: ignore[attr-defined]
        allocation = self.allocations[density]
        if rule in self.files:
            kept = {layer.name: layer.kept for layer in self.files[rule].layers if layer.prunable}
        else:
            kept = kept_for_rule(rule, allocation, self.model, self.prunable, self._init_model,
                                 tuple(self.entry.input_shape), self.data.train_x[:CALIBRATION_SIZE])
        if kept is None:
            cell["unavailable"] = allocation.baselines[rule].unavailable
            atomic_write_text(path, json.dumps(cell))
            self.say(f"seed {seed} density {density:g} {rule}: unavailable ({cell['unavailable']})")
            self._advance()
            return None
        densities = [kept.get(n, w) / w for n, w in zip(self.network.names, self.network.weights)]
        cell["kept"] = kept
        cell["ln_bound"] = ln_expected_bound(self.network, densities, config.rank_model)
        key = tuple(sorted(kept.items()))
        if key in self._by_kept:
            twin = self._by_kept[key]
            if twin.finished is None:
                twin.duplicates.append((path, cell))
            else:
                self._write_duplicate(path, cell, twin.finished)
            return None
        if self._scores is None:  # the dense model is the same for every cell of the seed
            self._scores = scores(config.criterion, self.model, self.prunable, self.context)
        cell_scores = self._scores
        if config.respend_dead:
            cell_scores, cell["respent"] = _respent_scores(self.network.names, self.network.shapes, self._scores, kept)
        pruned = prune_from_dense(self.entry.build, self.dense_state, cell_scores, kept)
        cell["test_accuracy_pruned"] = evaluate(pruned, self.data.test_x, self.data.test_y)[1]
        prepared = _Prepared(path, cell, pruned, kept, start)
        self._by_kept[key] = prepared
        return prepared

    def run_alone(self, pending: Sequence[tuple[float, str]]) -> None:
        """Every pending cell through the one-cell engines (sparse twin or masked dense training)."""
        for density, rule in pending:
            prepared = self.prepare(density, rule)
            if prepared is not None:
                history = finetune_cell(prepared.model, self.entry.build, self.data, self.config.finetune,  # type: ignore[arg-type]
                                        self.seed, sparse=self.config.sparse_finetune,
                                        freeze_features=self.config.freeze_features)
                self.finish(prepared, history)

    def run_batched(self, pending: Sequence[tuple[float, str]]) -> None:
        """Prune every pending cell, then fine-tune them together; cells are written chunk by chunk."""
        from allocator.pruning.finetune.batched import ChainData, finetune_cells

        select_test = self.config.finetune.select_on == "test"
        chain_data = (ChainData.with_test if select_test else ChainData.from_model)(self.model, self.data)
        prepared = [p for p in (self.prepare(density, rule) for density, rule in pending) if p is not None]

        def on_chunk(positions: Sequence[int], results: Sequence[TrainResult], seconds: float) -> None:
            for position, result in zip(positions, results):
                self.finish(prepared[position], result, batch=(seconds / len(positions), len(positions)))

        finetune_cells([p.model for p in prepared], chain_data, self.config.finetune,  # type: ignore[misc]
                       derive_seed(self.seed, "finetune"),
                       progress=lambda message: self.say(f"seed {self.seed}: {message}"), on_chunk=on_chunk)

    def finish(self, prepared: _Prepared, history: TrainResult, batch: tuple[float, int] | None = None) -> None:
        """Evaluate the fine-tuned cell on the test split, check its masks held, write it atomically.

        ``batch``: (this cell's share of the batch's fine-tuning seconds, cells in the batch) when batched."""
        cell, kept, pruned = prepared.cell, prepared.kept, prepared.model
        loss, accuracy = evaluate(pruned, self.data.test_x, self.data.test_y)  # type: ignore[arg-type]
        nonzero = realised_counts(pruned, self.prunable)  # type: ignore[arg-type]
        if any(nonzero[n] > kept[n] for n in self.prunable):
            raise RuntimeError(f"masked weights became non-zero during fine-tuning: {nonzero} vs {kept}")
        cell.update({"test_accuracy": accuracy, "test_loss": loss, "finetune_best_epoch": history.best_epoch,
                     "seconds": batch[0] if batch else time.perf_counter() - prepared.start})
        if self.network.is_chain:  # effective kept weights on paths from the chain's inputs (allocator.pruning.effective)
            from allocator.pruning.effective import effective_kept
            from allocator.pruning.tensors import tensor

            names = self.network.names
            cell["effective_kept"] = effective_kept({n: tensor(pruned, n) for n in names}, names)
        elif not any(isinstance(step, Residual) for step in self.network.bound_program):  # a sequential CNN:
            from allocator.network.paths import effective_counts_sequential  # at channel level (an upper estimate)
            from allocator.pruning.tensors import tensor

            names = self.network.names
            masks = [(tensor(pruned, n).detach() != 0).cpu().numpy() for n in names]
            cell["effective_kept"] = dict(zip(names, effective_counts_sequential(masks)))
            cell["effective_level"] = "channel"
        if batch:
            cell["batched_cells"] = batch[1]
        if self.config.save_models:
            cell["model_file"] = self._save_model(prepared)
        atomic_write_text(prepared.path, json.dumps(cell))
        self.say(f"seed {self.seed} density {cell['density']:g} {cell['allocation']}: test acc {100 * accuracy:.2f} % "
                 f"(after pruning {100 * cell['test_accuracy_pruned']:.2f} %, {cell['seconds']:.1f} s)")
        prepared.finished = cell
        self._advance()
        for path, duplicate in prepared.duplicates:
            self._write_duplicate(path, duplicate, cell)
        prepared.duplicates.clear()

    def _save_model(self, prepared: _Prepared) -> str:
        """The fine-tuned pruned model's state_dict (masks made permanent: zeros where pruned) under
        ``models/<cell id>.pt``, written atomically; returns its path relative to the run folder."""
        import copy
        import io

        from allocator.io_utils import atomic_write_bytes
        from allocator.pruning.masks import make_permanent

        model = copy.deepcopy(prepared.model)
        make_permanent(model)  # type: ignore[arg-type]
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)  # type: ignore[union-attr]
        relative = Path("models") / f"{prepared.path.stem}.pt"
        atomic_write_bytes(self.cells_dir.parent / relative, buffer.getvalue())
        return relative.as_posix()

    def _write_duplicate(self, path: Path, duplicate: dict[str, object], cell: dict[str, object]) -> None:
        """Write a cell whose counts equal ``cell``'s with ``cell``'s results (see ``prepare``)."""
        duplicate.update({key: cell[key] for key in ("test_accuracy_pruned", "test_accuracy", "test_loss",
                                                     "finetune_best_epoch")})
        duplicate.update({"seconds": 0.0, "same_counts_as": {"density": cell["density"], "allocation": cell["allocation"]}})
        for key in ("model_file", "effective_kept", "effective_level", "respent"):  # the same masks and weights:
            if key in cell:                                                    # one saved model, the same paths
                duplicate[key] = cell[key]
        atomic_write_text(path, json.dumps(duplicate))
        self.say(f"seed {self.seed} density {duplicate['density']:g} {duplicate['allocation']}: same counts as "
                 f"{cell['allocation']} at {cell['density']:g}, test acc {100 * float(cell['test_accuracy']):.2f} %")
        self._advance()

    def _advance(self) -> None:
        if self.progress is not None:
            self.progress.advance()
