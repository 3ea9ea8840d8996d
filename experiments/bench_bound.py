"""Benchmark: time of ln E[B] (binomial rank model, float64 log space) on one core, and the exact mode.

Run: ``make bench`` or ``.venv/bin/python -m experiments.bench_bound [--repeats N]``.
Prints medians over repeats (the machines are shared and noisy) and the ratio exact / log-space on a network
where the exact rational mode finishes. Each timing includes building the layers' rank laws.
"""

from __future__ import annotations

import argparse
import os
from typing import Callable, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

from allocator import Network  # noqa: E402
from allocator.bound import expected_bound, ln_expected_bound  # noqa: E402
from allocator.bound import rank as rank_module  # noqa: E402
from experiments import timing  # noqa: E402
from experiments.entry import positive_int  # noqa: E402


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls, the ``ln C`` table cache cleared each time."""
    return timing.median_seconds(function, repeats, before_each=rank_module.ln_binomial_row.cache_clear)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=21)
    args = parser.parse_args(argv)

    cases = [
        ("784-400-400-10", Network.from_arch("784,400,400,10"), [0.01, 0.01, 1.0]),
        ("3072-1000x10-10", Network.from_arch([3072] + [1000] * 10 + [10]), [0.01] * 10 + [1.0]),
    ]
    print(f"ln E[B], binomial rank model, float64 log space; median of {args.repeats} runs, one thread")
    print(f"{'network':<20}{'ln E[B] (nats)':>16}{'median (ms)':>14}")
    for label, network, densities in cases:
        seconds = median_seconds(lambda: ln_expected_bound(network, densities), args.repeats)
        print(f"{label:<20}{ln_expected_bound(network, densities):>16.4f}{seconds * 1e3:>14.3f}")

    network = Network.from_arch("64,32,32,10")
    densities = [0.1, 0.1, 1.0]
    fast = median_seconds(lambda: ln_expected_bound(network, densities), args.repeats)
    exact_repeats = max(3, args.repeats // 4)
    exact = median_seconds(lambda: expected_bound(network, densities, exact=True), exact_repeats)
    fast_value = ln_expected_bound(network, densities)
    exact_value = expected_bound(network, densities, exact=True).ln_bound
    print()
    print(f"exact rational mode vs log space on 64-32-32-10 at densities {densities}:")
    print(f"  log space  {fast * 1e3:10.3f} ms  ln E[B] = {fast_value:.12f}")
    print(f"  exact      {exact * 1e3:10.3f} ms  ln E[B] = {exact_value:.12f}  (median of {exact_repeats})")
    print(f"  ratio exact / log space: {exact / fast:.0f}x; |difference| = {abs(fast_value - exact_value):.2e} nats")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
