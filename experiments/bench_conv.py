"""Convolutions inside the bound: the cost of the conv rank tables, of one ln E[B] evaluation, and of a solve.

Run: ``.venv/bin/python -m experiments.bench_conv [--samples 64] [--repeats 3]``. Prints, measured here:

1. every distinct conv shape of LeNet-5 (28x28 grey, D = 784) and ResNet-20 (CIFAR, D = 3072): seconds to compute
   its rank table (100 levels, ``--samples`` masks, fresh process state), the share of levels where a component too
   big to eliminate took the cover bound, then the seconds to read all tables back from the disk cache
   (goals: under 60 s once, under 1 s from the cache);
2. ``ln E[B]`` of ResNet-20 at random densities: median milliseconds per evaluation (goal: under 20 ms);
3. ``allocator solve --model resnet20 --density 0.01`` with the tables cached: median wall seconds over
   ``--repeats`` runs, with its status (goal: under 10 s);
4. our rank routine (singleton elimination, then FLINT's ``nmod_mat.rank`` on the core) against a plain numpy
   elimination mod 2^31 - 1 on components of the size the sweeps meet, 0.3 to 30 % filled (the choice: the ratio).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Sequence

import numpy as np
from experiments.entry import positive_int


def _numpy_rank_mod_p(matrix: np.ndarray, prime: int = 2**31 - 1) -> int:
    """Gaussian elimination mod a 31-bit prime in int64 numpy (products stay below 2^62): the alternative."""
    a = matrix.astype(np.int64) % prime
    rank, rows = 0, a.shape[0]
    for col in range(a.shape[1]):
        pivots = np.flatnonzero(a[rank:, col]) + rank
        if pivots.size == 0:
            continue
        p = pivots[0]
        a[[rank, p]] = a[[p, rank]]
        inverse = pow(int(a[rank, col]), prime - 2, prime)
        a[rank] = (a[rank] * inverse) % prime
        below = np.flatnonzero(a[rank + 1:, col]) + rank + 1
        if below.size:
            a[below] = (a[below] - (a[below, col][:, None] * a[rank]) % prime) % prime
        rank += 1
        if rank == rows:
            break
    return rank


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=positive_int, default=3)
    args = parser.parse_args(argv)

    from allocator.bound import conv_law
    from allocator.bound.conv_law import conv_rank_table, covered_fraction
    from allocator.bound.engine import ln_expected_bound
    from allocator.bound.rank import RankModel
    from allocator.models import get_model

    cache = tempfile.mkdtemp(prefix="bench-conv-")
    print(f"load average at start (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())} on "
          f"{os.cpu_count()} cores (timings are one core's; other work on the machine slows them)")
    shapes = []
    for name in ("lenet5", "resnet20"):
        network = get_model(name).conv_network
        for spec in network.layers:
            key = (spec.conv, network.rank_caps.get(network.layers.index(spec)))
            if spec.conv is not None and key not in shapes:
                shapes.append(key)
    print(f"1. rank tables: {len(shapes)} distinct conv shapes, {args.samples} samples x 100 levels")
    total = 0.0
    for geometry, cap in shapes:
        started = time.perf_counter()
        conv_rank_table(geometry, cap, args.samples, 0, cache)
        seconds = time.perf_counter() - started
        total += seconds
        covered = float(covered_fraction(geometry, cap, args.samples).max())
        print(f"   {geometry.in_channels:>2}->{geometry.out_channels:<2} {geometry.kernel[0]}x{geometry.kernel[1]} on "
              f"{geometry.input_size[0]:>2}x{geometry.input_size[1]:<2} stride {geometry.stride[0]} D={cap:<5} "
              f"{seconds:7.2f} s   cover bound at worst on {100 * covered:.0f} % of a level's samples")
    print(f"   all shapes: {total:.1f} s (goal < 60 s)")
    conv_law._TABLES.clear()
    started = time.perf_counter()
    for geometry, cap in shapes:
        conv_rank_table(geometry, cap, args.samples, 0, cache)
    print(f"   read back from the disk cache: {time.perf_counter() - started:.3f} s (goal < 1 s)")

    network = get_model("resnet20").conv_network
    model = RankModel("binomial", conv_samples=args.samples, cache_dir=cache)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(40):
        densities = [float(d) if p else 1.0 for d, p in zip(rng.uniform(0.001, 0.05, network.n_weight_layers),
                                                            network.prunable)]
        started = time.perf_counter()
        ln_expected_bound(network, densities, model)
        times.append(1000 * (time.perf_counter() - started))
    print(f"2. ln E[B] of ResNet-20: median {statistics.median(times):.1f} ms per evaluation over {len(times)} random "
          f"density vectors (goal < 20 ms)")

    walls = []
    status = ""
    for _ in range(args.repeats):
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "allocator", "solve", "--model", "resnet20", "--density", "0.01",
                              "--cache-dir", cache, "--conv-samples", str(args.samples)],
                             capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - started)
        status = next(line.strip() for line in run.stdout.splitlines() if line.strip().startswith("status:"))
    print(f"3. allocator solve --model resnet20 --density 0.01 (tables cached): median {statistics.median(walls):.1f} s "
          f"wall over {len(walls)} runs (goal < 10 s); {status}")

    from allocator.bound.conv_rank import PRIME, _rank_mod_p

    for fill in (0.003, 0.03, 0.3):
        matrix = (rng.random((780, 1300)) < fill) * rng.integers(1, 2**31 - 1, size=(780, 1300))
        rows, cols = np.nonzero(matrix)
        started = time.perf_counter()
        flint_rank = _rank_mod_p(rows, cols, matrix[rows, cols] % PRIME)
        flint_seconds = time.perf_counter() - started
        started = time.perf_counter()
        numpy_rank = _numpy_rank_mod_p(matrix)
        numpy_seconds = time.perf_counter() - started
        print(f"4. rank of a 780x1300 component {100 * fill:g} % filled: peel + FLINT {flint_seconds * 1000:.0f} ms (rank "
              f"{flint_rank}), numpy elimination mod 2^31-1 {numpy_seconds * 1000:.0f} ms (rank {numpy_rank}): "
              f"numpy/FLINT {numpy_seconds / flint_seconds:.1f}x")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
