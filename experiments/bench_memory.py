"""Peak resident memory of ``allocate`` on wide networks, each in a fresh process.

Run: ``.venv/bin/python -m experiments.bench_memory [--cache-mb 256] [--time-limit 30]``. Prints, per network, the
peak resident set size (``ru_maxrss`` of the child, MiB), the seconds, ``ln E[B]`` and the status. The reference
figures, measured with this script before the bound's caches were bounded in bytes (an entry count of 4,096 suffix
arrays and an unbounded law cache): 784-30000x10-10 1088 MiB (10.4 s), 784-100000x5-10 2083 MiB (24.2 s); the
ratio column divides by them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Sequence

BEFORE_MIB = {"784-30000x10-10": 1088.0, "784-100000x5-10": 2083.0}
NETWORKS = {"784-30000x10-10": [784] + [30_000] * 10 + [10], "784-100000x5-10": [784] + [100_000] * 5 + [10]}

CHILD = r"""
import json, resource, sys, time, inspect
from allocator import Network
from allocator.allocation import SolverOptions, allocate
arch, density, limit, cache_mb = json.loads(sys.argv[1])
kwargs = {}
if cache_mb is not None and "cache_bytes" in inspect.signature(allocate).parameters:
    kwargs["cache_bytes"] = int(cache_mb * 2**20)
start = time.perf_counter()
result = allocate(Network.from_arch(arch), density=density, solver_options=SolverOptions(time_limit_s=limit), **kwargs)
seconds = time.perf_counter() - start
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds,
                  "ln_bound": result.ln_bound, "status": str(result.status),
                  "cache_limited": "cache_bytes" in kwargs}))
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.001)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--cache-mb", type=float, help="the bound's cache limit (default: allocate's own)")
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print(f"{'network':<18}{'peak MiB':>10}{'before MiB':>12}{'ratio':>7}{'seconds':>9}{'ln E[B]':>14}  status")
    for name, arch in NETWORKS.items():
        result = subprocess.run([sys.executable, "-c", CHILD, json.dumps([arch, args.density, args.time_limit,
                                                                         args.cache_mb])],
                                capture_output=True, text=True, env=env)
        if result.returncode != 0:
            print(f"{name:<18} failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        before = BEFORE_MIB[name]
        print(f"{name:<18}{row['peak_mib']:>10.0f}{before:>12.0f}{before / row['peak_mib']:>6.1f}x{row['seconds']:>9.1f}"
              f"{row['ln_bound']:>14.4f}  {row['status']}")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
