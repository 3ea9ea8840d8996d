"""The true integer optimum of a deep chain at a small budget, by meet in the middle: how much of the certificate's
proven gap (issue 17) is the relaxation's and how much the returned allocation's.

Run: ``.venv/bin/python -m experiments.check_depth_optimum [--depth 5] [--density 0.001]``. On
``784-100xD-10`` the prunable blocks are the ``D`` weight layers before the output layer (the output layer stays
dense by the solver's convention). With the adjoint rows of ``allocator.bound.recursion`` the bound factors at a
split position ``p``:

    E[B](a) = sum_d R_p(d; a_0..a_{p-1}) N(p, d; a_p..a_{D-1}),

so every allocation spending the whole budget ``K`` (``a_l >= 1``; ``ln E[B]`` never falls with a kept count, so an
optimum spends all of it) is valued by pairing a prefix row of kept sum ``s`` with a suffix array of kept sum
``K - s``: ``C(K-1, D-1)`` allocations from ``C(K, p)``-ish prefixes and suffixes, each layer step computed once.
The best is re-evaluated with ``ExactObjective`` (the solver's own objective) and printed beside ``allocate()``'s
answer and its certificate's upper bound. Exhaustive: a proof of the integer optimum, not a search.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from allocator import Network  # noqa: E402
from allocator.allocation import allocate  # noqa: E402
from allocator.bound import RankModel  # noqa: E402
from allocator.bound.recursion import ln_adjoint_of_layer, ln_n_of_layer  # noqa: E402
from allocator.formulation.objective import ExactObjective  # noqa: E402
from allocator.formulation.problem import AllocationProblem, Constraints, make_budget  # noqa: E402


def integer_optimum(network: Network, density: float) -> tuple[list[int], float, int, float]:
    """The best kept counts of the prunable blocks (whole budget spent), their ``ln E[B]``, how many allocations
    were valued, and the seconds it took."""
    started = time.perf_counter()
    budget = make_budget(network, density=density)
    problem = AllocationProblem.build(network, budget, RankModel("binomial"), Constraints())
    exact = ExactObjective(problem)
    blocks = problem.blocks
    if any(block.is_tied or len(block.members) != 1 or block.lo != 1 for block in blocks):
        raise ValueError("the check takes one untied block per layer with a floor of 1 kept weight")
    layers = network.bound_layers
    block_layers = [block.members[0] for block in blocks]
    if block_layers != list(layers[: len(blocks)]):
        raise ValueError("the check takes a chain whose prunable layers come first (the output layer fixed)")
    total = budget.kept - problem.fixed_prunable_kept
    fixed_kept = {layer: network.weights[layer] for layer in layers[len(blocks):]}  # the dense output layer
    widths = [network.widths[layer] for layer in layers]
    cols_of = [network.input_width] + widths[:-1]
    depth, split = len(blocks), len(blocks) // 2

    def pmf(position: int, kept: int) -> np.ndarray:
        return exact.law(layers[position], kept).ln_pmf

    tail = np.zeros(widths[-1] + 1)  # N after the last layer
    for position in range(len(layers) - 1, depth - 1, -1):
        tail = ln_n_of_layer(widths[position], cols_of[position], pmf(position, fixed_kept[layers[position]]), tail)
    suffix: dict[tuple[int, ...], np.ndarray] = {(): tail}  # kept of positions split..depth-1 -> N(split, .)
    for count in range(1, depth - split + 1):  # build from the deepest block up
        position = depth - count
        for key in [k for k in suffix if len(k) == count - 1]:
            most = min(blocks[position].hi, total - sum(key) - split)  # leave 1 for every prefix block
            for kept in range(1, most + 1):
                suffix[(kept,) + key] = ln_n_of_layer(widths[position], cols_of[position], pmf(position, kept),
                                                      suffix[key])
    suffix = {k: v for k, v in suffix.items() if len(k) == depth - split}
    start = np.full(network.input_width + 1, -np.inf)
    start[network.input_width] = 0.0
    prefix: dict[tuple[int, ...], np.ndarray] = {(): start}  # kept of positions 0..split-1 -> R_split
    for position in range(split):
        for key in [k for k in prefix if len(k) == position]:
            most = min(blocks[position].hi, total - sum(key) - (depth - position - 1))  # 1 for every later block
            for kept in range(1, most + 1):
                prefix[key + (kept,)] = ln_adjoint_of_layer(widths[position], cols_of[position], pmf(position, kept),
                                                            prefix[key])
    prefix = {k: v for k, v in prefix.items() if len(k) == split}
    by_sum: dict[int, list[tuple[int, ...]]] = {}
    for key in suffix:
        by_sum.setdefault(sum(key), []).append(key)
    best_value, best_units, valued = -np.inf, None, 0
    prefix_by_sum: dict[int, list[tuple[int, ...]]] = {}
    for key in prefix:
        prefix_by_sum.setdefault(sum(key), []).append(key)
    for spent, heads in prefix_by_sum.items():
        tails = by_sum.get(total - spent, [])
        if not tails:
            continue
        rows = np.stack([prefix[h] for h in heads])  # (heads, d)
        arrays = np.stack([suffix[t] for t in tails])  # (tails, d)
        for i, head in enumerate(heads):
            summed = rows[i][None, :] + arrays
            top = summed.max(axis=1)
            values = top + np.log(np.exp(summed - top[:, None]).sum(axis=1))
            j = int(np.argmax(values))
            valued += len(tails)
            if values[j] > best_value:
                best_value, best_units = float(values[j]), list(head) + list(tails[j])
    assert best_units is not None
    return best_units, exact.of_units(best_units), valued, time.perf_counter() - started


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
    raise SystemExit(main())
