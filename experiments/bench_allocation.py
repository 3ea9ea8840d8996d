"""Benchmark: allocate() time as layers and menu levels grow, one core; the 10-hidden-layer target case.

Run: ``.venv/bin/python -m experiments.bench_allocation [--repeats N] [--quick]``.
Prints medians over repeats of the whole call (validation, MIP build and HiGHS solves, exact polish, the
four baselines), the HiGHS time of all solves and of the first (the one that certifies the surrogate
optimum; the others are re-solves with no-good cuts that only add polish starts), the MIP status and gap, and the proven gap in nats to the best allocation over all integer allocations (the
certificate's Lagrangian upper bound minus ours). Target: 10 hidden layers with 100 levels per layer in under
10 s on one core.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

from allocator import Network  # noqa: E402
from allocator.allocation import allocate  # noqa: E402
from experiments.timing import timed  # noqa: E402
from experiments.entry import positive_int  # noqa: E402


def run_case(network: Network, density: float, levels: int, repeats: int) -> dict[str, object]:
    last, seconds = timed(lambda: allocate(network, density=density, levels=levels), repeats)
    assert last.mip is not None
    return {
        "seconds": seconds,
        "build": last.mip.build_seconds,
        "highs": last.mip.seconds,
        "first": last.mip.first_solve_seconds,
        "status": last.mip.status,
        "gap": last.mip.gap,
        "ln_bound": last.ln_bound,
        "uniform": last.baselines["uniform"].ln_bound,
        "binaries": last.mip.binaries,
        "proven_gap": None if last.upper_bound is None else last.upper_bound["gap_nats"],
        "status_all": str(last.status),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer cases")
    parser.add_argument("--sweep", action="store_true", help="also the 784-100xD-10 depth sweep, D = 2..200 (slow)")
    args = parser.parse_args(argv)

    header = (f"{'network':<26}{'density':>9}{'levels':>7}{'binaries':>9}{'median s':>10}{'build s':>9}"
              f"{'HiGHS s':>9}{'1st s':>7}{'MIP':>9}{'gap':>9}{'ours ln':>10}{'uniform ln':>11}{'proven gap':>12}")
    print(f"allocate(), binomial rank model, one thread; median of {args.repeats} runs per row")
    print(header)

    def show(label: str, network: Network, density: float, levels: int) -> None:
        row = run_case(network, density, levels, args.repeats)
        print(f"{label:<26}{density:>9g}{levels:>7}{row['binaries']:>9}{row['seconds']:>10.2f}{row['build']:>9.2f}"
              f"{row['highs']:>9.2f}{row['first']:>7.2f}{row['status']:>9}{row['gap']:>9.2g}{row['ln_bound']:>10.2f}"
              f"{row['uniform']:>11.2f}{'n/a' if row['proven_gap'] is None else format(row['proven_gap'], '.4f'):>12}",
              flush=True)

    depths = (2, 6, 10) if args.quick else (2, 4, 6, 8, 10)
    for width, inputs, density in ((1000, 3072, 0.0003), (300, 784, 0.002)):
        for depth in depths:
            network = Network.from_arch([inputs] + [width] * depth + [10])
            show(f"{inputs}-{width}x{depth}-10", network, density, 100)
    network = Network.from_arch([3072] + [1000] * 10 + [10])
    for levels in ((25, 100) if args.quick else (25, 50, 100, 200)):
        show("3072-1000x10-10", network, 0.0003, levels)
    if args.sweep:  # issue 17's hidden-layer sweep: depth 2 to 200 of width 100 at density 0.001
        for depth in (2, 5, 10, 20, 50, 100, 200):
            show(f"784-100x{depth}-10", Network.from_arch([784] + [100] * depth + [10]), 0.001, 100)
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
