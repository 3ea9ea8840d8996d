"""Quality check on networks that are not in the test suite: allocate() against exhaustive search.

For two prunable layers the oracle is every integer split of the budget; for three, a fine grid (every
integer where a layer's range is small, else 300 log- and linear-spaced values) with the last layer
taking what is left. Both use the exact ln E[B]. Prints per-case gaps (nats) and a summary.

Run: ``.venv/bin/python -m experiments.check_allocation_quality``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

from allocator import Network  # noqa: E402
from allocator.allocation import allocate, make_budget  # noqa: E402
from allocator.formulation.objective import ExactObjective  # noqa: E402
from allocator.allocation.search import exhaustive_search, grid_for  # noqa: E402
from allocator.formulation.problem import AllocationProblem  # noqa: E402
from allocator.bound import RankModel  # noqa: E402

CASES = [
    ("784,100,100,10", (0.01, 0.005, 0.0025, 0.001, 0.00075, 0.0005, 0.0001)),
    ("784,200,200,10", (0.01, 0.001, 0.0006, 0.0002, 0.00005)),
    ("784,400,400,10", (0.001, 0.00025, 0.0001, 0.00005)),
    ("400,120,84,10", (0.001, 0.0005, 0.00025)),
    ("784,300,100,10", (0.01, 0.002, 0.0005)),
    ("3072,200,200,10", (0.001, 0.0002)),
    ("784,256,128,64,10", (0.01, 0.002, 0.0005)),
    ("500,100,200,50,10", (0.01, 0.001)),
    ("1024,128,128,128,10", (0.005, 0.001)),
]


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)  # no options: --help, and a bad one refused
    print(f"{'network':<22}{'density':>9}{'oracle':>10}{'points':>9}{'oracle ln':>12}{'ours ln':>11}"
          f"{'gap':>9}{'uniform ln':>12}{'ours-unif':>11}{'time s':>8}")
    worst_gap, worst_margin = 0.0, float("inf")
    for arch, densities in CASES:
        network = Network.from_arch(arch)
        for density in densities:
            problem = AllocationProblem.build(network, make_budget(network, density=density), RankModel("binomial"))
            objective = ExactObjective(problem)
            two = len(problem.blocks) == 2
            grids = None if two else grid_for(problem, 300)
            _, best, points = exhaustive_search(problem, objective, grids, limit=5_000_000)
            start = time.perf_counter()
            result = allocate(network, density=density, baselines=("uniform",))
            seconds = time.perf_counter() - start
            gap = best - result.ln_bound
            margin = result.ln_bound - result.baselines["uniform"].ln_bound
            worst_gap, worst_margin = max(worst_gap, gap), min(worst_margin, margin)
            print(f"{arch:<22}{density:>9g}{'integers' if two else 'grid':>10}{points:>9}{best:>12.4f}"
                  f"{result.ln_bound:>11.4f}{gap:>9.4f}{result.baselines['uniform'].ln_bound:>12.4f}"
                  f"{margin:>11.4f}{seconds:>8.2f}", flush=True)
    print(f"\nworst gap to the exhaustive optimum: {worst_gap:.4f} nats (negative: ours beats the grid)")
    print(f"smallest margin over uniform: {worst_margin:.4f} nats")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
