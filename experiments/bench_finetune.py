"""Benchmark: fine-tuning engines for paper 1's cells, one core.

Run: ``.venv/bin/python -m experiments.bench_finetune [--model mlp-2x400] [--epochs 2] [--repeats 3]``.

One seed's sparse cells (paper 1's densities of the model x allocations ours and uniform) are pruned from the same
model on Fashion-MNIST (55,000 training images, batch 128) and fine-tuned by three engines:

- ``reference``: each cell alone as a masked dense model (``train``; ``torch.nn.utils.prune`` multiplies the
  mask in every forward pass);
- ``sparse twin``: each cell alone through its kept weights only (``allocator.pruning.finetune.sparse.finetune``);
- ``batched``: all cells at once (``allocator.pruning.finetune.batched.finetune_cells``).

Prints the median seconds per engine, seconds per cell-epoch, the ratio to the reference and the largest
difference of any cell's test accuracy from the reference's (the engines compute the same arithmetic).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from allocator.allocation import allocate  # noqa: E402
from allocator.data import load_dataset  # noqa: E402
from allocator.models import get_model  # noqa: E402
from allocator.pruning import Tensors, TrainConfig, prune_to_counts, scores, set_threads, train  # noqa: E402
from allocator.pruning.finetune.batched import ChainData, finetune_cells  # noqa: E402
from allocator.pruning.finetune.sparse import finetune  # noqa: E402
from allocator.pruning.finetune.training import evaluate  # noqa: E402
from experiments.entry import positive_int  # noqa: E402

DENSITIES = {
    "mlp-2x100": (0.001, 0.00075, 0.0005, 0.0001),
    "mlp-2x200": (0.001, 0.0006, 0.0004, 0.0002, 0.0001, 0.00005),
    "mlp-2x400": (0.001, 0.0005, 0.00025, 0.0001, 0.000075, 0.00005, 0.000025, 0.00001),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(DENSITIES), default="mlp-2x400")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=positive_int, default=3)
    args = parser.parse_args(argv)
    set_threads(1)
    entry = get_model(args.model)
    data = Tensors.from_dataset(load_dataset("fashion-mnist"))
    torch.manual_seed(0)
    dense = entry.build()
    train(dense, data, TrainConfig(epochs=1), seed=0)
    state = dense.state_dict()
    prunable = [n for n, p in zip(entry.network.names, entry.network.prunable) if p]
    layer_scores = scores("magnitude", dense, prunable)
    counts = []
    for density in DENSITIES[args.model]:
        allocation = allocate(entry.network, density=density, baselines=("uniform",))
        counts.append({n: k for n, k, layer in zip(allocation.network.names, allocation.kept, allocation.layers)
                       if layer.prunable})
        counts.append({n: k for n, k in zip(allocation.network.names, allocation.baselines["uniform"].kept)
                       if n in prunable})
    config = TrainConfig(epochs=args.epochs)

    def cells() -> list[torch.nn.Module]:
        models = []
        for kept in counts:
            model = entry.build()
            model.load_state_dict(state)
            prune_to_counts(model, layer_scores, kept)
            models.append(model)
        return models

    engines: dict[str, Callable[[list[torch.nn.Module]], None]] = {
        "reference": lambda models: [train(m, data, config, seed=1) for m in models],
        "sparse twin": lambda models: [finetune(m, entry.build, data, config, seed=1) for m in models],
        "batched": lambda models: finetune_cells(models, ChainData.from_model(dense, data), config, seed=1),
    }
    print(f"{args.model} on Fashion-MNIST: {len(counts)} cells (densities {', '.join(map(str, DENSITIES[args.model]))}; "
          f"ours and uniform), {args.epochs} fine-tuning epochs each, one thread, median of {args.repeats}")
    accuracies: dict[str, list[float]] = {}
    medians: dict[str, float] = {}
    for name, engine in engines.items():
        times = []
        for _ in range(args.repeats):
            models = cells()
            start = time.perf_counter()
            engine(models)
            times.append(time.perf_counter() - start)
        accuracies[name] = [evaluate(m, data.test_x, data.test_y)[1] for m in models]
        medians[name] = statistics.median(times)
    reference = medians["reference"]
    print(f"{'engine':<14}{'seconds':>10}{'s per cell-epoch':>18}{'vs reference':>14}{'max |acc diff|':>16}")
    for name, seconds in medians.items():
        difference = max(abs(a - b) for a, b in zip(accuracies[name], accuracies["reference"]))
        print(f"{name:<14}{seconds:>10.2f}{seconds / (len(counts) * args.epochs):>18.3f}"
              f"{reference / seconds:>13.1f}x{100 * difference:>15.2f}%")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
