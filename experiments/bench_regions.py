"""Benchmark: exact region counting on a 2-D slice, polygon splitting vs the MIP enumeration.

Run: ``.venv/bin/python -m experiments.bench_regions [--repeats 3]``. One thread; medians.
1. MLP 2x100 trained 3 epochs on Fashion-MNIST (seed 0), plane through test images 0, 1, 2: the exact count
   and its time (geometric only: the MIP would need one HiGHS solve per region).
2. A random network small enough for both (inputs 784 -> 8 -> 6, weights N(0, 1), biases N(0, 1)), the same
   plane: both counts, their times and the ratio MIP / geometric.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from allocator.data import load_dataset  # noqa: E402
from allocator.models import get_model  # noqa: E402
from allocator.pruning import Tensors, TrainConfig, set_threads, train  # noqa: E402
from allocator.regions import enumerate_regions  # noqa: E402
from allocator.regions.mip import count_regions_mip  # noqa: E402
from allocator.regions.model import data_slice, images, mlp_layers  # noqa: E402
from experiments.timing import timed  # noqa: E402
from experiments.entry import positive_int  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=3)
    args = parser.parse_args(argv)
    set_threads(1)
    dataset = load_dataset("fashion-mnist")
    data = Tensors.from_dataset(dataset)
    plane = data_slice(images(data.test_x, [0, 1, 2]), dataset.mean[0], dataset.std[0])
    torch.manual_seed(0)
    model = get_model("mlp-2x100").build()
    train(model, data, TrainConfig(epochs=3), 0)
    hidden = mlp_layers(model)[:-1]
    cells, seconds = timed(lambda: enumerate_regions([w for w, _ in hidden], [b for _, b in hidden], plane), args.repeats)
    print(f"MLP 2x100 (3 epochs on Fashion-MNIST), plane through test images 0, 1, 2: {len(cells)} regions, "
          f"exact count in {seconds:.2f} s (median of {args.repeats})")
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((8, 784)), rng.standard_normal((6, 8))]
    biases = [rng.standard_normal(8), rng.standard_normal(6)]
    cells, geometric = timed(lambda: enumerate_regions(weights, biases, plane), args.repeats)
    (count, _), mip = timed(lambda: count_regions_mip(weights, biases, plane), args.repeats)
    print(f"random 784-8-6 network, same plane: geometric {len(cells)} regions in {geometric * 1e3:.1f} ms; "
          f"MIP (HiGHS, no-good cuts) {count} regions in {mip:.2f} s; ratio MIP / geometric {mip / geometric:.0f}x")
    return 0 if count == len(cells) else 1


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
