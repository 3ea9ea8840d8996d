"""Monte-Carlo precision of ln E[B] under the structural rank model: standard error against samples and time, and
the samples needed for 0.1 nats, plain frequencies against the stratified estimate (variance reduction).

Run: ``.venv/bin/python -m experiments.bench_uncertainty [--seeds 8]``. For 784-100-100-10 and 784-400-400-10 at
densities 0.01 to 0.0001 and 64, 128, 256 masks: the spread (sample standard deviation) of ln E[B] over ``--seeds``
independent seeds, the mean reported (bootstrap) standard error, and the seconds per estimate. "samples for 0.1"
extrapolates the spread at 256 masks by 1/sqrt(S); the ratio divides plain's by stratified's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

from allocator import Network  # noqa: E402
from allocator.bound import RankModel, ln_expected_bound  # noqa: E402
from allocator.bound.structural import _STRUCTURAL_CACHE  # noqa: E402
from allocator.bound.uncertainty import ln_bound_standard_error  # noqa: E402

CASES = [("784-100-100-10", "784,100,100,10", d) for d in (0.01, 0.001, 0.0001)] + [
    ("784-400-400-10", "784,400,400,10", d) for d in (0.01, 0.001, 0.0001)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--samples", default="64,128,256")
    args = parser.parse_args(argv)
    sample_counts = [int(s) for s in args.samples.split(",")]
    print(f"{'network':<16}{'density':>9}{'estimate':>12}{'masks':>7}{'mean ln E[B]':>14}{'spread':>9}{'mean SE':>9}"
          f"{'s/estimate':>11}")
    needed: dict[tuple[str, float], dict[str, float]] = {}
    for label, arch, density in CASES:
        network = Network.from_arch(arch)
        densities = [density] * (len(network.widths) - 1) + [1.0]
        for estimate in ("plain", "stratified"):
            for samples in sample_counts:
                values, errors, seconds = [], [], []
                for seed in range(args.seeds):
                    _STRUCTURAL_CACHE.clear()
                    model = RankModel("structural", samples=samples, seed=seed, reduce_variance=estimate == "stratified")
                    start = time.perf_counter()
                    values.append(ln_expected_bound(network, densities, model))
                    seconds.append(time.perf_counter() - start)
                    errors.append(ln_bound_standard_error(network, densities, model))
                spread = statistics.stdev(values)
                print(f"{label:<16}{density:>9g}{estimate:>12}{samples:>7}{statistics.fmean(values):>14.3f}"
                      f"{spread:>9.4f}{statistics.fmean(errors):>9.4f}{statistics.median(seconds):>11.2f}", flush=True)
                if samples == sample_counts[-1]:
                    needed.setdefault((label, density), {})[estimate] = samples * (spread / 0.1) ** 2
    print(f"\n{'network':<16}{'density':>9}{'plain: masks for 0.1 nats':>28}{'stratified':>12}{'ratio':>8}")
    for (label, density), pair in needed.items():
        print(f"{label:<16}{density:>9g}{pair['plain']:>28.0f}{pair['stratified']:>12.0f}"
              f"{pair['plain'] / max(pair['stratified'], 1e-9):>8.1f}")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
