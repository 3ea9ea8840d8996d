"""Paper 1's study: bound-guided allocation vs uniform (and ERK, global magnitude, LAMP), 10 paired seeds.

Run: ``.venv/bin/python -m experiments.paper1_study [--datasets fashion-mnist] [--models mlp-2x100]
[--seeds 10] [--workers 2] [--backend local|ray|serial] [--smoke]``, then ``python -m experiments.paper1_report``.

Grid (experiments.md): Fashion-MNIST (full) and MNIST (the offline 10k set, ``make data-mnist``); MLP 2x100,
2x200, 2x400 and LeNet-5 (fc1, fc2 pruned) at the densities the authors ran plus milder ones (0.1, 0.03, 0.01)
so the whole curve shows; allocations ours, uniform, ERK, global magnitude, LAMP; layer magnitude pruning;
15 dense + 15 fine-tuning epochs (paper 1's recipe). LeNet-5's convolutions are not pruned; by default they stay
at the dense model's weights while fc1..fc3 fine-tune (``--lenet-full-finetune`` trains them too, the paper's
protocol, about 20 core-hours on this CPU). The MLPs are pure chains, so every cell of a seed fine-tunes in one
batched model (``allocator.pruning.finetune.batched``), the same arithmetic as one cell at a time. Every cell is written atomically into
``experiments/results/paper1/DATASET/MODEL/magnitude/cells/``; rerunning resumes. Dense checkpoints stay in the
run folders' ``dense/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

from allocator.study.sweep import BACKENDS, SweepSpec, run_sweep  # noqa: E402

MILDER = (0.1, 0.03, 0.01)
PAPER_DENSITIES = {
    "mlp-2x100": (0.01, 0.005, 0.0025, 0.001, 0.00075, 0.0005, 0.0001),
    "mlp-2x200": (0.01, 0.001, 0.0006, 0.0004, 0.0002, 0.0001, 0.00005),
    "mlp-2x400": (0.001, 0.0005, 0.00025, 0.0001, 0.000075, 0.00005, 0.000025, 0.00001),
    "lenet5": (0.001, 0.00075, 0.000625, 0.0005, 0.000375, 0.00025, 0.0001, 0.00009, 0.00008),
}
DATASETS = ("fashion-mnist", "mnist-npm10k")
ALLOCATIONS = ("ours", "uniform", "erk", "global-magnitude", "lamp")


def grid(models: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """The authors' densities plus the milder ones, from dense to sparse."""
    return {m: tuple(sorted(set(PAPER_DENSITIES[m]) | set(MILDER), reverse=True)) for m in models}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default=",".join(PAPER_DENSITIES))
    parser.add_argument("--allocations", default=",".join(ALLOCATIONS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", choices=BACKENDS, default="local")
    parser.add_argument("--out", default="experiments/results/paper1")
    parser.add_argument("--lenet-full-finetune", action="store_true",
                        help="also fine-tune LeNet-5's convolutions (paper 1's protocol; about 20 core-hours on a "
                             "CPU). Default: they stay at the dense model (frozen features), see experiments/README.md")
    parser.add_argument("--data-dir", action="append", default=[], metavar="DATASET=DIR",
                        help="where a data set's files are, for data sets that need one (e.g. mnist=/path/to/idx)")
    parser.add_argument("--smoke", action="store_true", help="one model, two densities, two seeds, one epoch")
    args = parser.parse_args(argv)
    data_dirs = dict(entry.partition("=")[::2] for entry in args.data_dir)
    if any(not name or not folder for name, folder in data_dirs.items()):
        parser.error(f"--data-dir takes DATASET=DIR, got {args.data_dir}")
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in PAPER_DENSITIES]
    if unknown:
        parser.error(f"--models {unknown} not in the study; accepted: {', '.join(PAPER_DENSITIES)}")
    densities = grid(models)
    if args.smoke:
        densities = {m: (0.01, 0.001) for m in models}
        args.seeds, args.epochs, args.finetune_epochs = 2, 1, 1
    spec = SweepSpec(
        datasets=tuple(d for d in args.datasets.split(",") if d), models=tuple(models), densities=densities,
        allocations=tuple(a for a in args.allocations.split(",") if a), seeds=tuple(range(args.seeds)),
        train_epochs=args.epochs, finetune_epochs=args.finetune_epochs,
        frozen_features=() if args.lenet_full_finetune else ("lenet5",), data_dirs=data_dirs,
    )
    run_sweep(spec, args.out, backend=args.backend, workers=args.workers)
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
