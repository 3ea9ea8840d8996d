"""The true integer optimum of a deep chain at a small budget, by meet in the middle: how much of the certificate's
proven gap (issue 17) is the relaxation's and how much the returned allocation's.

Run: ``.venv/bin/python -m experiments.check_depth_optimum [--depth 5] [--density 0.001]``. On
``784-100xD-10`` the prunable blocks are the ``D`` weight layers before the output layer (the output layer stays
dense by the solver's convention). With the adjoint rows of ``allocator.bound.recursion`` the bound factors at a
split position ``p``:

    E[B](a) = sum_d R_p(d; a_0..a_{p-1}) N(p, d; a_p..a_{D-1}),

so every allocation spending the whole budget ``K`` (``a_l >= 1``; ``ln E[B]`` never falls with a kept count, so an
optimum spends all of it) is valued by pairing a prefix row of kept sum ``s`` with a suffix array of kept sum
``K - s``: ``C(K-1, D-1)`` allocations, each layer step computed once (``allocator.allocation.pairing``, here
without the solver's 2 s and 128 MiB caps). The best is printed beside ``allocate()``'s answer and its certificate's
upper bound (at D = 4 the solver itself now certifies by this pairing; at D = 5 by the relaxation). Exhaustive: a
proof of the integer optimum, not a search.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

from allocator import Network  # noqa: E402
from allocator.allocation import allocate  # noqa: E402
from allocator.bound import RankModel  # noqa: E402
from allocator.allocation import pairing  # noqa: E402
from allocator.formulation.objective import ExactObjective  # noqa: E402
from allocator.formulation.problem import AllocationProblem, Constraints, make_budget  # noqa: E402

#: D = 5 holds ~0.6 GB of prefix rows and suffix arrays; the solver caps it at ``pairing.MAX_BYTES``.
UNCAPPED_BYTES = 4 * 2**30


def integer_optimum(network: Network, density: float) -> tuple[list[int], float, int, float]:
    """The best kept counts of the prunable blocks (whole budget spent), their ``ln E[B]``, how many allocations
    were valued, and the seconds it took: ``allocator.allocation.pairing`` without its time and memory caps."""
    started = time.perf_counter()
    problem = AllocationProblem.build(network, make_budget(network, density=density), RankModel("binomial"),
                                      Constraints())
    chosen = pairing.plan(problem, max_bytes=UNCAPPED_BYTES)
    if chosen is None:
        raise ValueError(f"the pairing does not apply to {network.widths} at density {density}")
    found = pairing.integer_optimum(problem, ExactObjective(problem), chosen)
    assert found is not None  # no deadline
    units, value, valued = found
    return units, value, valued, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=5, help="hidden layers of 100 (784-100xD-10)")
    parser.add_argument("--density", type=float, default=0.001)
    args = parser.parse_args(argv)
    if not 2 <= args.depth <= 6:
        parser.error(f"--depth {args.depth}: the enumeration takes 2-6 hidden layers")
    network = Network.from_arch([784] + [100] * args.depth + [10])
    answer = allocate(network, density=args.density)
    units, value, valued, seconds = integer_optimum(network, args.density)
    answer_units = [layer.kept for layer in answer.layers][: len(units)]
    upper = answer.upper_bound["ln_bound"] if answer.upper_bound else None
    print(f"784-100x{args.depth}-10 at density {args.density}: {valued} whole-budget allocations valued in "
          f"{seconds:.1f} s")
    print(f"  integer optimum       {units}  ln E[B] {value:.6f} nats")
    print(f"  allocate() returned   {answer_units}  ln E[B] {answer.ln_bound:.6f} nats "
          f"(below the optimum by {value - answer.ln_bound:.2e} nats)")
    if upper is not None:
        print(f"  certificate's bound   {upper:.6f} nats ({answer.upper_bound['method']}): above the optimum by "
              f"{upper - value:.4f} nats, the relaxation's share of the proven gap "
              f"{answer.upper_bound['gap_nats']:.4f}")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
