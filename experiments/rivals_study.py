"""Issue 14's grid: ours (each objective) head to head with the strongest rivals on MLPs of 2-4 prunable layers and
frozen LeNet-5, Fashion-MNIST and the offline MNIST-10k set, 10 paired seeds.

Run: ``.venv/bin/python -m experiments.rivals_study [--models ...] [--datasets ...] [--seeds 10] [--workers 2]
[--dry-run]``. The run folders are paper 1's (``experiments/results/paper1/DATASET/MODEL/CRITERION``): its cells,
dense models and seeds are reused, and the new densities and rules only add cells (a run folder grows by seeds,
densities and rules; a changed training recipe is refused). Random pruning runs as a control on two models
(``--control``). ``--dry-run`` prints the grid and its cell count, how many cells are already on disk and any run folder
whose recipe the grid would clash with, without training anything (exit 1 on a clash). The report: ``python -m experiments.rivals_report`` (Holm and Benjamini-Hochberg per comparison family,
the primary comparison, seed-pooled effects, within-density association of the bound with accuracy) from whatever
cells are on disk.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

from allocator.study.sweep import BACKENDS, SweepSpec, run_sweep  # noqa: E402
from experiments.paper1_study import PAPER_DENSITIES  # noqa: E402

PRACTICAL = (0.2, 0.1, 0.05, 0.02)  # the practical regime, above the cliff
DEEPER = (0.01, 0.005, 0.0025, 0.001, 0.0005)  # for the models paper 1 did not have
MODELS = ("mlp-2x100", "mlp-2x200", "mlp-2x400", "lenet-300-100", "mlp-3x300", "mlp-1000-500-250-100", "lenet5")
DATASETS = ("fashion-mnist", "mnist-npm10k")
RULES = ("ours", "ours-distortion", "ours-guarded", "uniform", "erk", "igq", "balanced", "synflow", "rd", "lamp",
         "global-magnitude")
CONTROL_MODELS = ("mlp-2x100", "lenet-300-100")
SEEDS = 10  # paired seeds of the grid


def densities_of(model: str) -> tuple[float, ...]:
    """The practical densities, then paper 1's grid for its models (``DEEPER`` for the others), dense to sparse."""
    return tuple(sorted(set(PRACTICAL) | set(PAPER_DENSITIES.get(model, DEEPER)), reverse=True))


def specs(models: Sequence[str], datasets: Sequence[str], seeds: int, control: bool) -> list[SweepSpec]:
    """The main grid (layer magnitude) and, with ``control``, random pruning on ``CONTROL_MODELS``."""
    main = SweepSpec(datasets=tuple(datasets), models=tuple(models), densities={m: densities_of(m) for m in models},
                     allocations=RULES, seeds=tuple(range(seeds)), frozen_features=("lenet5",))
    out = [main]
    chosen = tuple(m for m in CONTROL_MODELS if m in models)
    if control and chosen:
        out.append(SweepSpec(datasets=tuple(datasets), models=chosen, densities={m: densities_of(m) for m in chosen},
                             allocations=RULES, criteria=("random",), seeds=tuple(range(seeds))))
    return out


def folder_cells(run_dir: Path, seeds: Sequence[int], densities: Sequence[float], rules: Sequence[str],
                 criterion: str) -> tuple[int, int, int]:
    """(cells one run folder is asked for, of those on disk, of those the stranded ones: cells of an unfinished seed
    whose dense checkpoint is not on disk, which the sweep refuses to grow, so the seed is recomputed whole)."""
    from allocator.study.run_folder import cell_id, has_dense_checkpoint

    wanted = present = stranded = 0
    for seed in seeds:
        ids = [cell_id(seed, density, rule, criterion) for density in densities for rule in rules]
        here = sum((run_dir / "cells" / f"{i}.json").is_file() for i in ids)
        wanted, present = wanted + len(ids), present + here
        if 0 < here < len(ids) and not has_dense_checkpoint(run_dir, seed):
            stranded += here
    return wanted, present, stranded


def cells_on_disk(spec: SweepSpec, root: Path) -> tuple[int, int, int]:
    """``folder_cells`` summed over the spec's run folders."""
    totals = [0, 0, 0]
    for dataset in spec.datasets:
        for model in spec.models:
            for criterion in spec.criteria:
                counts = folder_cells(root / dataset / model / criterion, spec.seeds, spec.densities[model],
                                      spec.allocations, criterion)
                totals = [t + c for t, c in zip(totals, counts)]
    return totals[0], totals[1], totals[2]


def recipe_clashes(grids: Sequence[SweepSpec], root: Path) -> list[tuple[str, list[str]]]:
    """Run folders on disk whose stored configuration differs from the grid's in what a folder cannot grow by."""
    import json

    from allocator.study.config import changed_fields, run_identity

    clashes, seen = [], set()
    for spec in grids:
        for task in spec.tasks(root):
            stored = Path(task.out_dir) / "config.json"
            if task.out_dir in seen or not stored.is_file():
                continue
            seen.add(task.out_dir)
            fields = changed_fields(json.loads(stored.read_text()).get("config", {}), run_identity(task.config))
            if fields:
                clashes.append((task.out_dir, fields))
    return clashes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", choices=BACKENDS, default="local")
    parser.add_argument("--out", default="experiments/results/paper1")
    parser.add_argument("--no-control", action="store_true", help="leave out the random-pruning control")
    parser.add_argument("--dry-run", action="store_true", help="print the grid and what is on disk; train nothing")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"--models {unknown} not in the study; accepted: {', '.join(MODELS)}")
    datasets = [d for d in args.datasets.split(",") if d]
    grids = specs(models, datasets, args.seeds, not args.no_control)
    if args.dry_run:
        total = done = lost = 0
        for spec in grids:
            wanted, present, stranded = cells_on_disk(spec, Path(args.out))
            total, done, lost = total + wanted, done + present, lost + stranded
            print(f"{spec.criteria[0]}: {len(spec.datasets)} data sets x {len(spec.models)} models x "
                  f"{len(spec.seeds)} seeds x {len(spec.allocations)} rules x densities per model "
                  f"{ {m: len(spec.densities[m]) for m in spec.models} }: {wanted} cells, {present} on disk "
                  f"({stranded} stranded: unfinished seeds without their dense checkpoint, to move away and recompute)")
        print(f"in all: {total} cells, {done} on disk ({lost} stranded), {total - done + lost} to run")
        clashes = recipe_clashes(grids, Path(args.out))
        for folder, fields in clashes:
            print(f"  {folder}: its recipe differs in {', '.join(fields)}: the run would refuse it")
        return 1 if clashes else 0
    for spec in grids:
        run_sweep(spec, args.out, backend=args.backend, workers=args.workers)
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
