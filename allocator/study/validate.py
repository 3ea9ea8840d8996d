"""``validate``: from allocations to accuracy, with paired seeds (paper 1's protocol).

Per seed: build the model with ``torch.manual_seed(seed)``, train it dense once (cached on disk). Then for every
density and allocation rule: reload the dense weights, score with the criterion, keep exactly the allocated
count per layer (masks through ``torch.nn.utils.prune``), fine-tune with masks fixed, evaluate on the test
split. Each cell's result is written atomically as it completes, so an interrupted run resumes where it
stopped. The summary pairs seeds: ``ours - uniform`` per seed, its mean and a 95 % Student-t interval.

Allocation rules: ``ours`` (``allocate``), the weight-free baselines ``uniform``, ``uniform-gale``, ``er``,
``erk``, and the weight-based ``global-magnitude`` and ``lamp`` (one global threshold over the prunable
tensors of this seed's dense model, which yields per-layer kept counts).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from allocator import __version__
from allocator.allocation import allocate
from allocator.allocation.file import save as save_allocation
from allocator.bound import ln_expected_bound
from allocator.data import load_dataset
from allocator.errors import InvalidInputError
from allocator.io_utils import atomic_write_bytes, atomic_write_text
from allocator.models import get_model
from allocator.pruning.criteria import ScoreContext, criterion_names, global_kept, scores
from allocator.pruning.describe import describe
from allocator.pruning.masks import prune_to_counts, realised_counts
from allocator.pruning.finetune.sparse import finetune
from allocator.pruning.finetune.training import Tensors, TrainConfig, TrainResult, evaluate, set_threads, train

import allocator.koopman  # noqa: E402,F401  (registers the kmp and kgp criteria)

KOOPMAN_CRITERIA = ("kmp", "kgp")

WEIGHT_FREE_RULES = ("ours", "uniform", "uniform-gale", "er", "erk")
WEIGHT_BASED_RULES = ("global-magnitude", "lamp")
ALLOCATION_RULES = WEIGHT_FREE_RULES + WEIGHT_BASED_RULES


@dataclass(frozen=True)
class ValidateConfig:
    """Everything that defines a validation run (frozen into ``config.json`` of the run folder)."""

    model: str = "mlp-2x100"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    densities: tuple[float, ...] = (0.001,)
    allocations: tuple[str, ...] = ("ours", "uniform")
    criterion: str = "magnitude"
    seeds: tuple[int, ...] = (0, 1, 2)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: TrainConfig = field(default_factory=TrainConfig)
    rank_model: str = "binomial"
    threads: int = 1
    label: str = ""
    validation: int | None = None  # held-out training images; None: min(5000, 10 % of train)
    koopman_steps: int | None = None  # kmp/kgp: optimiser steps in the snapshot window; None: one epoch
    koopman_stride: int = 1
    sparse_finetune: bool = True  # fast engines: kept weights only, many cells batched (same results)
    freeze_features: bool = False  # fine-tune the linear chain only; layers before fc1 stay at the dense model

    def check(self) -> None:
        """Raise ``InvalidInputError`` on any bad value, before any work starts."""
        get_model(self.model)
        for rule in self.allocations:
            if rule not in ALLOCATION_RULES:
                raise InvalidInputError(f"allocation {rule!r} is unknown; accepted: {', '.join(ALLOCATION_RULES)}")
        if len(set(self.allocations)) != len(self.allocations) or not self.allocations:
            raise InvalidInputError(f"allocations {list(self.allocations)!r} must be distinct and not empty")
        if self.criterion not in criterion_names():
            raise InvalidInputError(f"criterion {self.criterion!r} is unknown; accepted: {', '.join(criterion_names())}")
        for density in self.densities:
            if not (isinstance(density, float) and 0.0 < density <= 1.0):
                raise InvalidInputError(f"density {density!r} is outside (0, 1]")
        if not self.densities or not self.seeds:
            raise InvalidInputError("give at least one density and one seed")
        if self.threads < 1:
            raise InvalidInputError(f"threads is {self.threads!r}; expected an integer >= 1")
        if self.freeze_features:
            from allocator.pruning.finetune.batched import check_chain

            entry = get_model(self.model)
            try:
                check_chain(entry.build(), torch.rand(2, *entry.input_shape))
            except InvalidInputError as error:
                raise InvalidInputError(f"freeze_features needs a model whose head is a ReLU chain fc1 .. fcL; "
                                        f"{self.model}: {error}") from None

    def to_json(self) -> dict[str, object]:
        document = asdict(self)
        document["densities"] = list(self.densities)
        document["allocations"] = list(self.allocations)
        document["seeds"] = list(self.seeds)
        return document


def run_identity(config: ValidateConfig) -> dict[str, object]:
    """What a run folder is bound to: the configuration without the seeds and the label. Seeds only add
    paired cells, so a run can be extended with more seeds, and tasks for different seeds (a sweep) can share
    one folder concurrently."""
    identity = config.to_json()
    identity.pop("seeds")
    identity.pop("label")
    return identity


# How cells are computed, not what they measure: a run may be resumed with another engine.
ENGINE_FIELDS = frozenset({"threads", "sparse_finetune"})


def _changed_fields(previous: dict[str, object], identity: dict[str, object]) -> list[str]:
    """Fields of ``identity`` that differ from a stored run's; fields the stored run predates (also inside the
    nested training settings) count as their defaults, and engine fields are ignored."""
    defaults = ValidateConfig().to_json()

    def same(old: object, new: object, default: object) -> bool:
        if isinstance(new, dict) and isinstance(old, dict):
            base = default if isinstance(default, dict) else {}
            return all(same(old.get(k, base.get(k)), v, base.get(k)) for k, v in new.items())
        return old == new

    return sorted(key for key, value in identity.items()
                  if key not in ENGINE_FIELDS and not same(previous.get(key, defaults.get(key)), value, defaults.get(key)))


def _save_allocation_if_changed(allocation, path: Path) -> None:
    """Write the allocation file unless one with the same decision (content hash) and the same baselines is
    there: a resumed run re-solves, and only timings would change."""
    from allocator.allocation.file import to_document

    if path.is_file():
        document = to_document(allocation)
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = None  # unreadable: overwrite it
        if (isinstance(stored, dict) and stored.get("content_hash") == document["content_hash"]
                and stored.get("baselines") == json.loads(json.dumps(document["baselines"]))):
            return
    save_allocation(allocation, path)


def _dense_key(config: ValidateConfig, seed: int) -> str:
    payload = json.dumps({"model": config.model, "dataset": config.dataset, "data_dir": config.data_dir,
                          "validation": config.validation,
                          "train": asdict(config.train), "seed": seed}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _cell_id(seed: int, density: float, rule: str, criterion: str) -> str:
    return f"seed{seed}-d{density!r}-{rule}-{criterion}"


def _save_tensor_state(path: Path, state: dict[str, torch.Tensor]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


Say = Callable[[str], None]


def run_validation(config: ValidateConfig, out_dir: str | Path, say: Say | None = None) -> dict[str, object]:
    """Run (or resume) the validation of ``config`` in ``out_dir``; return the summary document."""
    config.check()
    say = say or (lambda message: None)
    out = Path(out_dir)
    stored = out / "config.json"
    identity = run_identity(config)
    document = {"config": identity, "allocator_version": __version__, "torch_version": torch.__version__}
    if stored.is_file():
        previous = json.loads(stored.read_text())
        changed = _changed_fields(previous.get("config", {}), identity)
        if changed:
            raise InvalidInputError(
                f"{out} holds a run with another configuration (differs in: {', '.join(changed)}); use another --out"
            )
    set_threads(config.threads)
    entry = get_model(config.model)
    dataset = load_dataset(config.dataset, data_dir=config.data_dir, validation=config.validation)
    if tuple(dataset.input_shape) != tuple(entry.input_shape):
        raise InvalidInputError(
            f"model {config.model} takes inputs of shape {entry.input_shape}, data set {config.dataset} has "
            f"{dataset.input_shape}"
        )
    document["dataset"] = dataset.describe()
    atomic_write_text(stored, json.dumps(document, indent=2))
    data = Tensors.from_dataset(dataset)
    network = entry.network
    traced = describe(entry.build(), data.train_x[:1]).network  # the registry must match the torch module
    if traced.names != network.names or traced.widths != network.widths:
        raise InvalidInputError(f"model {config.model}: registry description {network} differs from its trace {traced}")
    prunable = [n for n, p in zip(network.names, network.prunable) if p]

    allocations = {}
    for density in config.densities:
        say(f"allocating at density {density:g} ({config.rank_model} rank model)")
        result = allocate(network, density=density, rank_model=config.rank_model,
                          baselines=[r for r in ("uniform", "uniform-gale", "er", "erk") if r in config.allocations or r == "uniform"])
        _save_allocation_if_changed(result, out / "allocations" / f"{config.model}-d{density!r}.json")
        allocations[density] = result

    cells_dir = out / "cells"
    batched = _batched_engine(config, entry, data)
    if batched:
        say("fine-tuning engine: batched cells (allocator.pruning.finetune.batched)"
            + (", convolutional features frozen at the dense model" if config.freeze_features else ""))
    for seed_index, seed in enumerate(config.seeds):
        dense_path = out / "dense" / f"seed{seed}-{_dense_key(config, seed)}.pt"
        torch.manual_seed(seed)
        model = entry.build()
        dense_record = out / "dense" / f"seed{seed}.json"
        train_seconds = None
        if dense_path.is_file():
            model.load_state_dict(torch.load(dense_path))
            say(f"seed {seed}: dense model loaded from {dense_path}")
            if dense_record.is_file():  # keep the training time measured when it was trained
                train_seconds = json.loads(dense_record.read_text()).get("train_seconds")
        else:
            say(f"seed {seed} ({seed_index + 1}/{len(config.seeds)}): training the dense model, {config.train.epochs} epochs")
            started = time.perf_counter()
            train(model, data, config.train, seed,
                  progress=lambda e, n, r: say(f"  dense epoch {e}/{n}: train loss {r.train_loss:.4f}, "
                                               f"{config.train.select_on} acc {100 * r.select_accuracy:.2f} % ({r.seconds:.1f} s)"))
            train_seconds = time.perf_counter() - started
            _save_tensor_state(dense_path, model.state_dict())
        dense_state = {k: v.clone() for k, v in model.state_dict().items()}
        dense_loss, dense_accuracy = evaluate(model, data.test_x, data.test_y)
        atomic_write_text(dense_record, json.dumps({"seed": seed, "test_accuracy": dense_accuracy, "test_loss": dense_loss,
                                                    "train_seconds": train_seconds}))
        pending = [(density, rule) for density in config.densities for rule in config.allocations
                   if not (cells_dir / f"{_cell_id(seed, density, rule, config.criterion)}.json").is_file()]
        if not pending:
            continue
        batch = slice(0, config.train.batch_size)
        extra: dict[str, object] = {}
        if config.criterion in KOOPMAN_CRITERIA:
            extra["koopman"] = _koopman_window(config, model, data, prunable, seed, out, say)
        context = ScoreContext(seed=seed, inputs=data.train_x[batch], targets=data.train_y[batch], extra=extra)
        run = _SeedRun(config, entry, network, prunable, data, model, dense_state, dense_accuracy, context, extra,
                       allocations, cells_dir, seed, say)
        if batched:
            run.batched(pending)
        else:
            for density, rule in pending:
                prepared = run.prepare(density, rule)
                if prepared is not None:
                    run.finish(prepared, run.finetune_alone(prepared.model))
    return summarise(out, config)


def _batched_engine(config: ValidateConfig, entry, data: Tensors) -> bool:
    """Whether cells fine-tune through ``allocator.pruning.finetune.batched`` (all at once per seed).

    That engine trains the linear chain ``fc1 .. fcL`` only, so it applies where nothing else trains: models
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
    return config.freeze_features or all(n.split(".")[0] in names for n, _ in model.named_parameters())


@dataclass
class _Prepared:
    """A pruned cell waiting for fine-tuning."""

    path: Path
    cell: dict[str, object]
    model: torch.nn.Module | None  # None for a cell of an earlier run, read from disk
    kept: dict[str, int]
    start: float
    duplicates: list[tuple[Path, dict[str, object]]] = field(default_factory=list)  # cells with the same counts
    finished: dict[str, object] | None = None  # the written cell, once fine-tuned and evaluated


class _SeedRun:
    """The cells of one seed: prune from the dense model, fine-tune (alone or batched), evaluate, write."""

    def __init__(self, config: ValidateConfig, entry, network, prunable: Sequence[str], data: Tensors,
                 model: torch.nn.Module, dense_state: dict[str, torch.Tensor], dense_accuracy: float,
                 context: ScoreContext, extra: dict[str, object], allocations: dict, cells_dir: Path, seed: int,
                 say: Say) -> None:
        self.config, self.entry, self.network, self.prunable, self.data = config, entry, network, prunable, data
        self.model, self.dense_state, self.dense_accuracy = model, dense_state, dense_accuracy
        self.context, self.extra, self.allocations = context, extra, allocations
        self.cells_dir, self.seed, self.say = cells_dir, seed, say
        self._scores: dict[str, torch.Tensor] | None = None
        self._by_kept: dict[tuple[tuple[str, int], ...], _Prepared] = {}
        for path in sorted(cells_dir.glob(f"seed{seed}-*-{config.criterion}.json")):  # cells of earlier runs
            done = json.loads(path.read_text())
            if "test_accuracy" in done and "same_counts_as" not in done:
                key = tuple(sorted(done["kept"].items()))
                self._by_kept.setdefault(key, _Prepared(path, done, None, done["kept"], 0.0, finished=done))

    def prepare(self, density: float, rule: str) -> _Prepared | None:
        """Prune a fresh copy of the dense model for one cell; ``None`` if the cell is unavailable (then written
        at once) or keeps the same counts as a cell prepared before (then written with that cell's results: same
        counts, same scores, same seed and data order give the same fine-tuning, so it is computed once)."""
        config, seed = self.config, self.seed
        path = self.cells_dir / f"{_cell_id(seed, density, rule, config.criterion)}.json"
        start = time.perf_counter()
        cell: dict[str, object] = {"seed": seed, "density": density, "allocation": rule,
                                   "criterion": config.criterion, "dense_test_accuracy": self.dense_accuracy}
        if "koopman" in self.extra:
            cell["koopman"] = self.extra["koopman"].describe()  # type: ignore[attr-defined]
        allocation = self.allocations[density]
        kept = _kept_for_rule(rule, allocation, self.model, self.prunable)
        if kept is None:
            cell["unavailable"] = allocation.baselines[rule].unavailable
            atomic_write_text(path, json.dumps(cell))
            self.say(f"seed {seed} density {density:g} {rule}: unavailable ({cell['unavailable']})")
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
        pruned = self.entry.build()
        pruned.load_state_dict(self.dense_state)
        prune_to_counts(pruned, self._scores, kept)
        cell["test_accuracy_pruned"] = evaluate(pruned, self.data.test_x, self.data.test_y)[1]
        prepared = _Prepared(path, cell, pruned, kept, start)
        self._by_kept[key] = prepared
        return prepared

    def finetune_alone(self, model: torch.nn.Module) -> TrainResult:
        """The one-cell engines: sparse twin or plain masked training (layers before fc1 fixed if frozen)."""
        config, seed = self.config, self.seed + 1_000_003
        if self.config.freeze_features:
            from allocator.pruning.finetune.batched import chain_names

            chain = set(chain_names(model))
            for name, parameter in model.named_parameters():
                parameter.requires_grad_(name.split(".")[0] in chain)
            try:
                return train(model, self.data, config.finetune, seed)
            finally:
                for parameter in model.parameters():
                    parameter.requires_grad_(True)
        if config.sparse_finetune:
            return finetune(model, self.entry.build, self.data, config.finetune, seed)
        return train(model, self.data, config.finetune, seed)

    def batched(self, pending: Sequence[tuple[float, str]]) -> None:
        """Prune every pending cell, then fine-tune them together; cells are written chunk by chunk."""
        from allocator.pruning.finetune.batched import ChainData, finetune_cells

        select_test = self.config.finetune.select_on == "test"
        chain_data = (ChainData.with_test if select_test else ChainData.from_model)(self.model, self.data)
        prepared = [p for p in (self.prepare(density, rule) for density, rule in pending) if p is not None]

        def on_chunk(positions: Sequence[int], results: Sequence[TrainResult], seconds: float) -> None:
            for position, result in zip(positions, results):
                self.finish(prepared[position], result, batch=(seconds / len(positions), len(positions)))

        finetune_cells([p.model for p in prepared], chain_data, self.config.finetune, self.seed + 1_000_003,
                       progress=lambda message: self.say(f"seed {self.seed}: {message}"), on_chunk=on_chunk)

    def finish(self, prepared: _Prepared, history: TrainResult, batch: tuple[float, int] | None = None) -> None:
        """Evaluate the fine-tuned cell on the test split, check its masks held, write it atomically.

        ``batch``: (this cell's share of the batch's fine-tuning seconds, cells in the batch) when batched."""
        cell, kept, pruned = prepared.cell, prepared.kept, prepared.model
        loss, accuracy = evaluate(pruned, self.data.test_x, self.data.test_y)
        nonzero = realised_counts(pruned, self.prunable)
        if any(nonzero[n] > kept[n] for n in self.prunable):
            raise RuntimeError(f"masked weights became non-zero during fine-tuning: {nonzero} vs {kept}")
        cell.update({"test_accuracy": accuracy, "test_loss": loss, "finetune_best_epoch": history.best_epoch,
                     "seconds": batch[0] if batch else time.perf_counter() - prepared.start})
        if batch:
            cell["batched_cells"] = batch[1]
        atomic_write_text(prepared.path, json.dumps(cell))
        self.say(f"seed {self.seed} density {cell['density']:g} {cell['allocation']}: test acc {100 * accuracy:.2f} % "
                 f"(after pruning {100 * cell['test_accuracy_pruned']:.2f} %, {cell['seconds']:.1f} s)")
        prepared.finished = cell
        for path, duplicate in prepared.duplicates:
            self._write_duplicate(path, duplicate, cell)
        prepared.duplicates.clear()

    def _write_duplicate(self, path: Path, duplicate: dict[str, object], cell: dict[str, object]) -> None:
        """Write a cell whose counts equal ``cell``'s with ``cell``'s results (see ``prepare``)."""
        duplicate.update({key: cell[key] for key in ("test_accuracy_pruned", "test_accuracy", "test_loss",
                                                     "finetune_best_epoch")})
        duplicate.update({"seconds": 0.0, "same_counts_as": {"density": cell["density"], "allocation": cell["allocation"]}})
        atomic_write_text(path, json.dumps(duplicate))
        self.say(f"seed {self.seed} density {duplicate['density']:g} {duplicate['allocation']}: same counts as "
                 f"{cell['allocation']} at {cell['density']:g}, test acc {100 * float(cell['test_accuracy']):.2f} %")


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
    store = record_window(model, data, prunable, steps=steps, config=config.finetune, seed=seed + 7,
                          stride=config.koopman_stride, directory=str(out / "snapshots" / f"seed{seed}"))
    try:
        result = koopman_scores(store, stride=config.koopman_stride)
    finally:
        store.close()
    say(f"seed {seed}: DMD rank {result.rank}, eigenvalue closest to 1: {result.eigenvalue:.6f}")
    return result


def _kept_for_rule(rule: str, allocation, model: torch.nn.Module, prunable: Sequence[str]) -> dict[str, int] | None:
    names = allocation.network.names
    if rule == "ours":
        return {n: k for n, k, layer in zip(names, allocation.kept, allocation.layers) if layer.prunable}
    if rule in WEIGHT_FREE_RULES:
        result = allocation.baselines[rule]
        if result.kept is None:
            return None
        return {n: k for n, k in zip(names, result.kept) if n in prunable}
    criterion = "magnitude" if rule == "global-magnitude" else "lamp"
    return global_kept(scores(criterion, model, prunable), allocation.budget.kept)


def paired_interval(differences: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its two-sided Student-t interval (nan half-width for one pair)."""
    from scipy import stats

    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    return mean, mean - half, mean + half


def summarise(out_dir: str | Path, config: ValidateConfig) -> dict[str, object]:
    """Read every cell of the run and write ``results.csv``, ``summary.json`` and ``accuracy_vs_density.png``."""
    out = Path(out_dir)
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    rows = [c for c in cells if "test_accuracy" in c and c["criterion"] == config.criterion]
    buffer = io.StringIO()
    fields = ["seed", "density", "allocation", "criterion", "test_accuracy", "test_accuracy_pruned", "test_loss",
              "ln_bound", "dense_test_accuracy", "finetune_best_epoch", "seconds"]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda c: (c["density"], c["allocation"], c["seed"])))
    atomic_write_text(out / "results.csv", buffer.getvalue())
    groups: dict[tuple[float, str], list[dict]] = {}
    for cell in rows:
        groups.setdefault((cell["density"], cell["allocation"]), []).append(cell)
    table = []
    for (density, rule), members in sorted(groups.items()):
        accuracies = [m["test_accuracy"] for m in members]
        table.append({"density": density, "allocation": rule, "seeds": len(members),
                      "mean_accuracy": statistics.fmean(accuracies),
                      "std_accuracy": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                      "ln_bound": statistics.fmean(m["ln_bound"] for m in members)})
    paired = []
    for density in sorted({c["density"] for c in rows}):
        ours = {c["seed"]: c["test_accuracy"] for c in groups.get((density, "ours"), [])}
        uniform = {c["seed"]: c["test_accuracy"] for c in groups.get((density, "uniform"), [])}
        common = sorted(set(ours) & set(uniform))
        if common:
            diffs = [ours[s] - uniform[s] for s in common]
            mean, low, high = paired_interval(diffs)
            paired.append({"density": density, "pairs": len(common), "mean_difference": mean, "ci95_low": low,
                           "ci95_high": high, "ours_wins": sum(d > 0 for d in diffs),
                           "ties": sum(d == 0 for d in diffs)})
    summary = {"config": run_identity(config), "seeds": sorted({c["seed"] for c in rows}), "table": table,
               "paired_ours_minus_uniform": paired,
               "unavailable": [c for c in cells if "unavailable" in c]}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    if table:
        plot_accuracy(table, out / "accuracy_vs_density.png", f"{config.model} on {config.dataset}, {config.criterion}")
    return summary


def plot_accuracy(table: Sequence[dict], path: Path, title: str) -> None:
    """Accuracy (mean and spread over seeds) and ln E[B] against density, one line per allocation."""
    from allocator.plotting import pyplot, save_figure

    figure, (left, right) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    for rule in sorted({row["allocation"] for row in table}):
        rows = sorted((r for r in table if r["allocation"] == rule), key=lambda r: r["density"])
        x = [r["density"] for r in rows]
        left.errorbar(x, [100 * r["mean_accuracy"] for r in rows], yerr=[100 * r["std_accuracy"] for r in rows],
                      marker="o", capsize=3, label=rule)
        right.plot(x, [r["ln_bound"] for r in rows], marker="o", label=rule)
    for axis, label in ((left, "test accuracy (%), mean ± std over seeds"), (right, "ln E[B] (nats)")):
        axis.set_xscale("log")
        axis.set_xlabel("global density (fraction of prunable weights kept)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)


def format_summary(summary: dict[str, object]) -> str:
    """The summary as readable tables."""
    lines = [f"{'density':>10}  {'allocation':<18}{'seeds':>6}{'test acc %':>12}{'± std':>8}{'ln E[B]':>10}"]
    for row in summary["table"]:  # type: ignore[union-attr]
        lines.append(f"{row['density']:>10g}  {row['allocation']:<18}{row['seeds']:>6}{100 * row['mean_accuracy']:>12.2f}"
                     f"{100 * row['std_accuracy']:>8.2f}{row['ln_bound']:>10.2f}")
    paired = summary["paired_ours_minus_uniform"]
    if paired:
        lines += ["", "paired difference ours - uniform (test accuracy, percentage points), same seeds:",
                  f"{'density':>10}{'pairs':>7}{'mean':>9}{'95 % interval':>22}{'ours wins':>11}"]
        for row in paired:  # type: ignore[union-attr]
            interval = ("n/a (one pair)" if math.isnan(row["ci95_low"])
                        else f"[{100 * row['ci95_low']:+.2f}, {100 * row['ci95_high']:+.2f}]")
            lines.append(f"{row['density']:>10g}{row['pairs']:>7}{100 * row['mean_difference']:>+9.2f}{interval:>22}"
                         f"{row['ours_wins']:>7}/{row['pairs']}")
    return "\n".join(lines)
