"""The data objectives' and the new rules' costs (issue 13's goals), measured on one core.

Run: ``.venv/bin/python -m experiments.bench_objectives [--repeats 3]``. Prints medians of:

1. distortion curves (``allocator.pruning.rd.measure_distortion``, 1,024 calibration images, 100 levels per layer):
   MLP 2x400 (goal under 30 s) and LeNet-5 with its convolutions (goal under 120 s);
2. SynFlow's allocation (100 rounds) for the MLPs 2x100, 2x200, 2x400 at density 0.001 (goal under 5 s);
3. a ``guarded`` solve of a 10-layer network (784, nine hidden layers of 300, 10 classes) at density 0.005 once its
   curves exist (synthetic curves ``D_l(k) = c_l / sqrt(k)``; goal under 10 s), with its status.
Weights are the registry's initial draw (``torch.manual_seed(0)``): the costs do not depend on training.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

import numpy as np
import torch

from experiments.timing import median_seconds
from experiments.entry import positive_int


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average at start (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())} on "
          f"{os.cpu_count()} cores")
    from allocator import Network
    from allocator.allocation import allocate
    from allocator.formulation.distortion import DistortionCurves
    from allocator.models import get_model
    from allocator.pruning.rd import measure_distortion
    from allocator.pruning.synflow import synflow_kept

    inputs = torch.randn(1024, 1, 28, 28)
    for name, network_of in (("mlp-2x400", lambda e: e.network), ("lenet5", lambda e: e.conv_network)):
        entry = get_model(name)
        torch.manual_seed(0)
        model = entry.build()
        network = network_of(entry)
        names = [n for n, p in zip(network.names, network.prunable) if p]
        seconds = median_seconds(lambda: measure_distortion(model, names, inputs, levels=100), args.repeats)
        goal = 30 if name.startswith("mlp") else 120
        print(f"1. distortion curves of {name} ({len(names)} layers x about 100 levels, 1024 images): "
              f"{seconds:.1f} s (goal < {goal} s)")
    for name in ("mlp-2x100", "mlp-2x200", "mlp-2x400"):
        entry = get_model(name)
        torch.manual_seed(0)
        model = entry.build()
        names = [n for n, p in zip(entry.network.names, entry.network.prunable) if p]
        budget = max(len(names), round(0.001 * entry.network.prunable_weights))
        seconds = median_seconds(lambda: synflow_kept(model, names, budget, entry.input_shape), args.repeats)
        print(f"2. SynFlow allocation of {name} at density 0.001 (100 rounds): {seconds:.2f} s (goal < 5 s)")
    network = Network.from_arch([784] + [300] * 9 + [10])
    curves = {}
    for index, (name, weights, prunable) in enumerate(zip(network.names, network.weights, network.prunable)):
        if prunable:
            levels = tuple(sorted({int(round(v)) for v in np.geomspace(1, weights, 100)}))
            curves[name] = (levels, tuple((1.0 + index) / np.sqrt(levels)))
    distortion = DistortionCurves(curves, 1024)
    result = {}

    def solve() -> None:
        result["a"] = allocate(network, density=0.005, objective="guarded", distortion=distortion)

    seconds = median_seconds(solve, args.repeats)
    a = result["a"]
    print(f"3. guarded solve of 784-300x9-10 at density 0.005: {seconds:.1f} s (goal < 10 s); status {a.status}, "
          f"guard met {a.objective['guard_met']}, ln E[B] {a.ln_bound:.2f} (floor {a.objective['ln_floor']:.2f})")
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
