"""The CNN study (issue 12): every conv and linear layer pruned, ours against the rules users pick instead.

Run: ``.venv/bin/python -m experiments.cnn_study [--models lenet5,vgg-small,resnet8] [--seeds 5] [--workers 1]
[--epochs 15] [--finetune-epochs 15] [--quick]``, then ``python -m experiments.cnn_report``.

Grid: Fashion-MNIST (full: 55,000 train, 5,000 validation, 10,000 test); LeNet-5 (28x28 grey), the small VGG-style
net and ResNet-8 of the registry, each with its convolutions inside the bound (``convs_inside``: the allocation
covers every conv and linear layer, convs floored at the uniform share, the classifier dense); global densities
across the accuracy cliff and the bound's saturation (0.1, 0.05, 0.03, 0.02, 0.01, 0.005); allocations ours, uniform, ERK, SynFlow, RD,
IGQ, global magnitude, LAMP; layer magnitude pruning; paired seeds (the same dense model and data order for every
rule of a seed); every conv and linear layer fine-tuned with masks fixed, one cell at a time (paper 1's full
protocol, not frozen). ``--quick``: 4 densities (0.05, 0.03, 0.02, 0.01), 4 rules, 5 dense and 3 fine-tuning epochs.
Cells are written atomically into ``experiments/results/cnn/fashion-mnist/MODEL/magnitude/cells/``; rerunning
resumes. Each cell's wall time is in its record; the report sums them.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

from allocator.study.sweep import BACKENDS, SweepSpec, run_sweep  # noqa: E402

MODELS = ("lenet5", "vgg-small", "resnet8")
DENSITIES = (0.1, 0.05, 0.03, 0.02, 0.01, 0.005)
ALLOCATIONS = ("ours", "uniform", "erk", "igq", "global-magnitude", "lamp", "synflow", "rd")
QUICK = {"densities": (0.05, 0.03, 0.02, 0.01), "allocations": ("ours", "uniform", "erk", "lamp"), "epochs": 5,
         "finetune_epochs": 3}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--densities", default=",".join(map(str, DENSITIES)))
    parser.add_argument("--allocations", default=",".join(ALLOCATIONS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--backend", choices=BACKENDS, default="local")
    parser.add_argument("--out", default="experiments/results/cnn")
    parser.add_argument("--quick", action="store_true", help=f"the quick profile: {QUICK}")
    args = parser.parse_args(argv)
    models = tuple(m for m in args.models.split(",") if m)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"--models {unknown} not in the study; accepted: {', '.join(MODELS)}")
    densities = tuple(float(d) for d in args.densities.split(",") if d)
    allocations = tuple(a for a in args.allocations.split(",") if a)
    epochs, finetune_epochs = args.epochs, args.finetune_epochs
    if args.quick:
        densities, allocations = QUICK["densities"], QUICK["allocations"]
        epochs, finetune_epochs = QUICK["epochs"], QUICK["finetune_epochs"]
    spec = SweepSpec(
        datasets=("fashion-mnist",), models=models, densities={m: densities for m in models},
        allocations=allocations, seeds=tuple(range(args.seeds)), train_epochs=epochs,
        finetune_epochs=finetune_epochs, convs_inside=models,
    )
    out = args.out + ("-quick" if args.quick else "")
    run_sweep(spec, out, backend=args.backend, workers=args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
