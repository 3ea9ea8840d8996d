"""Sweeps over (data set, model, density, allocation, criterion, seed) grids, resumable and parallel.

A *task* is one (data set, model, criterion, seed): it trains (or loads) that seed's dense model once and runs
every (density, allocation) cell of the grid with it, through ``allocator.study.validate.run_validation``.
Cells are written atomically as they complete, so an interrupted sweep resumes where it stopped; tasks of
different seeds share one run folder per (data set, model, criterion), so they can run at the same time.

Backends: ``serial``; ``local`` (a pool of ``workers`` processes, each with one torch thread: on the 2-core
machine ``workers=2``); ``ray`` (the same tasks as Ray remote functions, for grids that outgrow one machine:
``pip install 'layerwise-allocator[ray]'``, then ``ray start`` a cluster or let ``ray.init`` start a local one).
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

from allocator.errors import InvalidInputError, RunFailedError

BACKENDS = ("serial", "local", "ray")


@dataclass(frozen=True)
class SweepTask:
    """One seed of one (data set, model, criterion) run folder."""

    dataset: str
    model: str
    criterion: str
    seed: int
    out_dir: str
    config: object  # a ValidateConfig with seeds=(seed,)

    @property
    def label(self) -> str:
        return f"{self.model} on {self.dataset}, {self.criterion}, seed {self.seed}"


@dataclass(frozen=True)
class SweepSpec:
    """The grid. ``densities`` maps a model name to its densities (global, over the prunable weights)."""

    datasets: tuple[str, ...]
    models: tuple[str, ...]
    densities: Mapping[str, tuple[float, ...]]
    allocations: tuple[str, ...] = ("ours", "uniform")
    criteria: tuple[str, ...] = ("magnitude",)
    seeds: tuple[int, ...] = tuple(range(10))
    train_epochs: int = 15
    finetune_epochs: int = 15
    rank_model: str = "binomial"
    data_dirs: Mapping[str, str] = field(default_factory=dict)
    frozen_features: tuple[str, ...] = ()  # models fine-tuned with the layers before fc1 fixed (freeze_features)
    convs_inside: tuple[str, ...] = ()  # CNNs validated with every conv inside the bound and pruned (convs_inside)

    def tasks(self, out_root: str | Path) -> list[SweepTask]:
        """Every task, seeds outermost so that partial sweeps cover every cell with some seeds first."""
        from allocator.pruning.finetune.training import TrainConfig
        from allocator.study.config import ValidateConfig

        missing = [m for m in self.models if m not in self.densities]
        if missing:
            raise InvalidInputError(f"no densities given for model(s) {', '.join(missing)}")
        tasks = []
        for seed in self.seeds:
            for dataset in self.datasets:
                for model in self.models:
                    for criterion in self.criteria:
                        config = ValidateConfig(
                            model=model, dataset=dataset, data_dir=self.data_dirs.get(dataset),
                            densities=tuple(self.densities[model]), allocations=self.allocations,
                            criterion=criterion, seeds=(seed,), train=TrainConfig(epochs=self.train_epochs),
                            finetune=TrainConfig(epochs=self.finetune_epochs), rank_model=self.rank_model,
                            freeze_features=model in self.frozen_features, convs_inside=model in self.convs_inside,
                        )
                        config.check()
                        out = Path(out_root) / dataset / model / criterion
                        tasks.append(SweepTask(dataset, model, criterion, seed, str(out), config))
        return tasks


def run_task(task: SweepTask) -> dict[str, object]:
    """Run one task (in whatever process the backend chose); returns a small report: seconds, cells present and
    computed now, and whether (and in how many seconds) the dense model was trained now."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import json

    from allocator.study.validate import run_validation

    folder = Path(task.out_dir)
    pattern = f"seed{task.seed}-*.json"
    before = len(list((folder / "cells").glob(pattern)))
    dense_existed = any((folder / "dense").glob(f"seed{task.seed}-*.pt"))
    start = time.perf_counter()
    run_validation(task.config, task.out_dir)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    cells = len(list((folder / "cells").glob(pattern)))
    record = folder / "dense" / f"seed{task.seed}.json"
    dense_seconds = json.loads(record.read_text()).get("train_seconds") if record.is_file() else None
    return {"label": task.label, "dataset": task.dataset, "model": task.model, "criterion": task.criterion,
            "seed": task.seed, "seconds": seconds, "cells": cells, "new_cells": cells - before,
            "dense_trained": not dense_existed, "dense_train_seconds": dense_seconds if not dense_existed else None}


TASK_LOG = "tasks.jsonl"


def read_task_log(out_root: str | Path) -> tuple[list[dict], int]:
    """The task reports ``run_sweep`` appended to ``out_root/tasks.jsonl`` (none where it does not exist), and how
    many of its lines did not parse (a line cut short by a killed run); blank lines are neither."""
    log = Path(out_root) / TASK_LOG
    records, unreadable = [], 0
    for line in log.read_text().splitlines() if log.is_file() else []:
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            unreadable += 1
    return records, unreadable


def run_sweep(
    spec: SweepSpec,
    out_root: str | Path,
    *,
    backend: str = "local",
    workers: int = 2,
    say: Callable[[str], None] | None = None,
) -> list[dict[str, object]]:
    """Run every task of ``spec`` under ``out_root`` with ``backend``; then summarise every run folder.

    Each finished task appends its report (seconds, cells computed, dense training time, the sweep's start
    time and its elapsed wall time) as one JSON line to ``out_root/tasks.jsonl``."""
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend {backend!r} is unknown; accepted: {', '.join(BACKENDS)}")
    if workers < 1:
        raise InvalidInputError(f"workers is {workers!r}; expected an integer >= 1")
    say = say or (lambda message: print(f"[sweep] {message}", file=sys.stderr, flush=True))
    tasks = spec.tasks(out_root)
    start = time.perf_counter()
    reports: list[dict[str, object]] = []

    log = Path(out_root) / TASK_LOG
    sweep_id = time.strftime("%Y-%m-%dT%H:%M:%S")

    def done(report: dict[str, object]) -> None:
        reports.append(report)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:  # one line per task: the timing record the reports read
            handle.write(json.dumps({**report, "sweep": sweep_id, "backend": backend, "workers": workers,
                                     "finished_after_seconds": time.perf_counter() - start}) + "\n")
        elapsed = time.perf_counter() - start
        eta = elapsed / len(reports) * (len(tasks) - len(reports))
        say(f"{len(reports)}/{len(tasks)} tasks done ({report['label']}: {report['cells']} cells, "
            f"{report['seconds']:.0f} s); elapsed {elapsed / 60:.1f} min, about {eta / 60:.1f} min left")

    say(f"{len(tasks)} tasks ({len(spec.seeds)} seeds x {len(spec.datasets)} data sets x {len(spec.models)} models x "
        f"{len(spec.criteria)} criteria) with the {backend} backend")
    failures: list[str] = []

    def failed(task: SweepTask, error: BaseException) -> None:
        failures.append(f"{task.label}: {type(error).__name__}: {error}")
        say(f"FAILED {task.label}: {type(error).__name__}: {error} (the other tasks go on)")
        with open(log, "a") as handle:
            handle.write(json.dumps({"label": task.label, "dataset": task.dataset, "model": task.model,
                                     "seed": task.seed, "failed": f"{type(error).__name__}: {error}",
                                     "sweep": sweep_id}) + "\n")

    if backend == "serial" or (backend == "local" and workers == 1):
        for task in tasks:
            try:
                done(run_task(task))
            except Exception as error:  # noqa: BLE001  (reported and raised below, after the other tasks)
                failed(task, error)
    elif backend == "local":
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_task, task): task for task in tasks}
            for future in as_completed(futures):
                try:
                    done(future.result())
                except Exception as error:  # noqa: BLE001
                    failed(futures[future], error)
    else:
        try:
            import ray
        except ImportError:
            raise InvalidInputError("the ray backend needs Ray: pip install 'layerwise-allocator[ray]'") from None
        if not ray.is_initialized():
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(run_task)
        by_ref = {remote.remote(task): task for task in tasks}
        pending = list(by_ref)
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            try:
                done(ray.get(finished[0]))
            except Exception as error:  # noqa: BLE001
                failed(by_ref[finished[0]], error)
    summarise_sweep(spec, out_root)
    if failures:
        raise RunFailedError(f"{len(failures)} of {len(tasks)} sweep tasks failed (the others completed; rerun to "
                           "resume):\n" + "\n".join(failures))
    return reports


def summarise_sweep(spec: SweepSpec, out_root: str | Path) -> list[dict[str, object]]:
    """Write each run folder's summary from the cells present (all seeds)."""
    from allocator.study.summary import summarise

    summaries = []
    seen = set()
    for task in spec.tasks(out_root):
        if task.out_dir in seen or not (Path(task.out_dir) / "cells").is_dir():
            continue
        seen.add(task.out_dir)
        summaries.append(summarise(task.out_dir, replace(task.config, seeds=spec.seeds)))  # type: ignore[type-var]
    return summaries
