"""Benchmark of the solver at depth (issue 17): whole ``allocate()`` calls on deep and wide chains, against the
figures measured before this work (the issue's table, 2 shared cores, medians of 3).

Run: ``.venv/bin/python -m experiments.bench_depth [--repeats N] [--quick] [--wide]``. Prints per case the median
wall time of the whole call (baselines, MIP, exact polish, tie-break, certificate), the ratio reference / now, the
MIP's status, ``ln E[B]`` and the proven gap (the certificate's upper bound minus ours, nats; ``--sweep`` gives it
over depths 2-200 with the default certificate time and with 30 s, beside the gap before the decision diagram and
the state-adaptive relaxation's own). ``--wide`` adds
784-100000x10-10 with ``time_limit_s=60`` (one run: minutes, GBs). Goals (issue 17): 100 hidden layers of 100 at
densities 0.0001-0.1 under 10 s each, 200 layers under 30 s, 3072-1000x50-10 under 10 s, the time limit held
within 10 %, and a proven gap under 0.01 nats on the hidden-layer sweep.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

from allocator import Network  # noqa: E402
from allocator.allocation import SolverOptions, allocate  # noqa: E402
from experiments.entry import positive_int  # noqa: E402

#: (inputs, hidden width, hidden layers, density, seconds before: the issue's table, or None where it gave none)
CASES = [
    (784, 100, 10, 0.001, 6.5),
    (784, 100, 50, 0.001, 41.0),
    (784, 100, 50, 0.01, 66.0),
    (784, 100, 100, 0.0001, None),
    (784, 100, 100, 0.001, 226.0),
    (784, 100, 100, 0.01, None),
    (784, 100, 100, 0.1, None),
    (784, 100, 200, 0.001, 550.0),
    (3072, 1000, 50, 0.0001, 145.0),
    (3072, 1000, 50, 0.001, 116.0),
]
QUICK = [(784, 100, 10, 0.001, 6.5), (784, 100, 50, 0.001, 41.0), (784, 100, 100, 0.001, 226.0)]
SWEEP_DEPTHS = (2, 5, 10, 20, 50, 100, 200)
#: The sweep's proven gaps (nats) before the decision diagram (commit f7be6c6, the one-layer-delayed relaxation).
SWEEP_GAPS_BEFORE = {2: 0.0, 5: 0.0354, 10: 0.0957, 20: 0.2263, 50: 0.4142, 100: 0.7649, 200: 0.8869}
#: The certificate's time in the sweep's second run (``SolverOptions.certificate_s``), seconds.
SWEEP_CERTIFICATE_S = 30.0


def run(inputs: int, width: int, depth: int, density: float, repeats: int, time_limit_s: float = 60.0,
        certificate_s: float | None = None) -> dict:
    network = Network.from_arch([inputs] + [width] * depth + [10])
    times, last = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        last = allocate(network, density=density,
                        solver_options=SolverOptions(time_limit_s=time_limit_s, certificate_s=certificate_s))
        times.append(time.perf_counter() - started)
    assert last is not None
    gap = None if last.upper_bound is None else last.upper_bound["gap_nats"]
    return {"seconds": statistics.median(times), "status": str(last.status),
            "mip": "-" if last.mip is None else str(last.mip.status), "ln_bound": last.ln_bound, "gap": gap,
            "allocation": last, "network": network}


def adaptive_gap(row: dict) -> float | None:
    """The proven gap of the state-adaptive relaxation alone (without the diagram or the delayed one), searched
    from the same focus and multiplier as the call's certificate, without a deadline."""
    from allocator.bound import RankModel
    from allocator.formulation import AllocationProblem, make_budget
    from allocator.formulation.upper_bound import lagrangian_upper_bound

    answer = row["allocation"]
    if answer.upper_bound is None or answer.upper_bound.get("multiplier") is None:
        return None
    problem = AllocationProblem.build(row["network"], make_budget(row["network"], kept=answer.budget.kept),
                                      RankModel("binomial"))
    upper = lagrangian_upper_bound(problem, focus=list(answer.kept), multiplier_hint=answer.upper_bound["multiplier"],
                                   delayed=False)
    return None if upper is None else max(0.0, upper.ln_bound - answer.ln_bound)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--quick", action="store_true", help="three cases, one run each")
    parser.add_argument("--wide", action="store_true", help="also 784-100000x10-10 under time_limit_s=60 (one run)")
    parser.add_argument("--sweep", action="store_true", help="the proven gap over depths 2-200 at density 0.001")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    print(f"allocate(), binomial rank model, one thread; median of {repeats} run(s) per row")
    print(f"{'network':<22}{'density':>9}{'wall s':>9}{'before s':>10}{'speed-up':>10}{'status':>13}{'MIP':>12}"
          f"{'ln E[B]':>13}{'proven gap':>12}")
    for inputs, width, depth, density, before in (QUICK if args.quick else CASES):
        row = run(inputs, width, depth, density, repeats)
        ratio = "-" if before is None else f"{before / row['seconds']:.1f}x"
        gap = "n/a" if row["gap"] is None else f"{row['gap']:.4f}"
        print(f"{inputs}-{width}x{depth}-10".ljust(22) + f"{density:>9g}{row['seconds']:>9.2f}"
              f"{'-' if before is None else format(before, '.1f'):>10}{ratio:>10}{row['status']:>13}{row['mip']:>12}"
              f"{row['ln_bound']:>13.4f}{gap:>12}", flush=True)
    if args.wide:
        row = run(784, 100_000, 10, 0.001, 1, time_limit_s=60.0)
        print(f"{'784-100000x10-10':<22}{0.001:>9g}{row['seconds']:>9.2f}{740.0:>10.1f}{740.0 / row['seconds']:>9.1f}x"
              f"{row['status']:>13}{row['mip']:>12}{row['ln_bound']:>13.4f}"
              f"{'n/a' if row['gap'] is None else format(row['gap'], '.4f'):>12}   time_limit_s=60: goal <= 66 s",
              flush=True)
    if args.sweep:
        print("\nproven gap over the hidden-layer sweep, 784-100xD-10 at density 0.001 (one run each): the default "
              f"certificate time, then {SWEEP_CERTIFICATE_S:g} s for it (SolverOptions.certificate_s), against the "
              "gap before the decision diagram (f7be6c6)")
        for depth in SWEEP_DEPTHS:
            cells = []
            for certificate_s in (None, SWEEP_CERTIFICATE_S):
                row = run(784, 100, depth, 0.001, 1, certificate_s=certificate_s)
                method = "" if row["allocation"].upper_bound is None else row["allocation"].upper_bound["method"]
                how = ("exhaustive" if method.startswith("exhaustive") else
                       method[method.find("(width"):method.find(")") + 1] if "width" in method else "")
                gap = "n/a" if row["gap"] is None else f"{row['gap']:.4f}"
                cells.append(f"{row['seconds']:6.2f} s, gap {gap} nats {how}".rstrip())
            first = adaptive_gap(row)
            print(f"  D = {depth:>3}: ln E[B] {row['ln_bound']:.4f}; default: {cells[0]}; "
                  f"{SWEEP_CERTIFICATE_S:g} s: {cells[1]}; before: {SWEEP_GAPS_BEFORE[depth]:.4f}"
                  + ("" if first is None else f"; state-adaptive alone: {first:.4f}"), flush=True)
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
