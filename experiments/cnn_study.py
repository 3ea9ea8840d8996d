"""The CNN study (issue 12): every conv and linear layer pruned, ours against the rules users pick instead.

Run: ``.venv/bin/python -m experiments.cnn_study [--models lenet5,vgg-small,resnet8] [--seeds 5] [--workers 1]
[--first-seed 0] [--epochs 15] [--finetune-epochs 15] [--quick]``, then ``python -m experiments.cnn_report``.

Grid: Fashion-MNIST (full: 55,000 train, 5,000 validation, 10,000 test); LeNet-5 (28x28 grey), the small VGG-style
net and ResNet-8 of the registry, each with its convolutions inside the bound (``convs_inside``: the allocation
covers every conv and linear layer, convs floored at the uniform share, the classifier dense); global densities
across the accuracy cliff and the bound's saturation (0.1, 0.05, 0.03, 0.02, 0.01, 0.005); allocations ours,
uniform, ERK, SynFlow, RD, IGQ, global magnitude, LAMP, ours-guarded:0.1; layer magnitude pruning; paired seeds (the
same dense model and data order for every rule of a seed); every conv and linear layer fine-tuned with masks
fixed, one cell at a time (paper 1's full protocol, not frozen). ``--quick``: 4 densities (0.05, 0.03, 0.02,
0.01), 5 rules (ours, uniform, ERK, LAMP and ours-guarded:0.1), 5 dense and 3 fine-tuning epochs; ``--densities``,
``--allocations`` and the epochs override either profile.
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
ALLOCATIONS = ("ours", "uniform", "erk", "igq", "global-magnitude", "lamp", "synflow", "rd", "ours-guarded:0.1")
#: ``ours-guarded:0.1``: the data objective guarded by the bound at the solver's default guard (0.1 nats), the rule
#: that decides where the bound is flat (on these CNNs it is flat above density ~0.01; see the report's ln E[B]).
QUICK = {"densities": (0.05, 0.03, 0.02, 0.01), "allocations": ("ours", "uniform", "erk", "lamp", "ours-guarded:0.1"),
         "epochs": 5, "finetune_epochs": 3}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--densities", help=f"comma-separated global densities (default {DENSITIES}; quick: its own)")
    parser.add_argument("--allocations", help=f"comma-separated rules (default {ALLOCATIONS}; quick: its own)")
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first seed (default 0): seeds first..first+seeds-1, e.g. new seeds for a folder "
                             "whose earlier seeds lost their dense checkpoints")
    parser.add_argument("--epochs", type=int, help="dense training epochs (default 15; quick: 5)")
    parser.add_argument("--finetune-epochs", type=int, help="fine-tuning epochs (default 15; quick: 3)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--backend", choices=BACKENDS, default="local")
    parser.add_argument("--out", default="experiments/results/cnn")
    parser.add_argument("--quick", action="store_true", help=f"the quick profile: {QUICK}")
    args = parser.parse_args(argv)
    models = tuple(m for m in args.models.split(",") if m)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"--models {unknown} not in the study; accepted: {', '.join(MODELS)}")
    if args.seeds < 1 or args.first_seed < 0:
        parser.error(f"--seeds {args.seeds} / --first-seed {args.first_seed}: expected seeds >= 1 and first seed >= 0")
    profile = QUICK if args.quick else {"densities": DENSITIES, "allocations": ALLOCATIONS, "epochs": 15,
                                        "finetune_epochs": 15}
    try:
        densities = (tuple(float(d) for d in args.densities.split(",") if d) if args.densities
                     else profile["densities"])
    except ValueError:
        parser.error(f"--densities {args.densities!r}: expected comma-separated numbers in (0, 1]")
    allocations = tuple(a for a in args.allocations.split(",") if a) if args.allocations else profile["allocations"]
    epochs = args.epochs if args.epochs is not None else profile["epochs"]
    finetune_epochs = args.finetune_epochs if args.finetune_epochs is not None else profile["finetune_epochs"]
    spec = SweepSpec(
        datasets=("fashion-mnist",), models=models, densities={m: densities for m in models},
        allocations=allocations, seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
        train_epochs=epochs,
        finetune_epochs=finetune_epochs, convs_inside=models,
    )
    out = args.out + ("-quick" if args.quick else "")
    run_sweep(spec, out, backend=args.backend, workers=args.workers)
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
