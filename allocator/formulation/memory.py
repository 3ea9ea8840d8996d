"""The peak memory of an allocation, estimated before any work, and a refusal when the machine has less.

``estimate_peak_bytes = BASE + cache_bytes + WORK * sum_l 8 (n_l + 1) + MIP * (binaries + chords)``: the
interpreter with numpy, scipy and pyomo loaded (``BASE``); the exact objective's caches at their limit; the
arrays one evaluation of the recursion and the ``ln C(n, j)`` tables use, ``WORK`` arrays of every width; and the
pyomo model, ``MIP`` bytes per variable or chord. The constants were measured on 784-30000x10-10 and
784-100000x5-10 (``python -m experiments.bench_memory``).
"""

from __future__ import annotations

from allocator.errors import InvalidInputError
from allocator.formulation.problem import AllocationProblem

BASE_BYTES = 160 * 2**20
WORK_ARRAYS = 24
MIP_BYTES = 4096
MIN_CACHE_BYTES = 2**20


def estimate_peak_bytes(problem: AllocationProblem, cache_bytes: int, levels: int) -> int:
    """The module docstring's estimate, in bytes."""
    network = problem.network
    arrays = sum(8 * (network.widths[l] + 1) for l in network.bound_layers) + 8 * (network.input_width + 1)
    mip_items = len(problem.blocks) * (levels + 3) + len(network.bound_layers) * 130  # binaries, chords (about)
    return int(BASE_BYTES + cache_bytes + WORK_ARRAYS * arrays + MIP_BYTES * mip_items)


def available_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (``None`` where the system does not say)."""
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(problem: AllocationProblem, cache_bytes: int, levels: int) -> int:
    """Refuse, before any work, a call whose estimated peak exceeds the memory available; returns the estimate.

    Raises:
        InvalidInputError: ``cache_bytes`` below 1 MiB, or an estimate above ``available_bytes()``.
    """
    if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes < MIN_CACHE_BYTES:
        raise InvalidInputError(f"cache_bytes is {cache_bytes!r}; expected an integer >= {MIN_CACHE_BYTES} (1 MiB)")
    estimate = estimate_peak_bytes(problem, cache_bytes, levels)
    available = available_bytes()
    if available is not None and estimate > available:
        raise InvalidInputError(
            f"this allocation needs about {estimate / 2**30:.1f} GiB of memory (the bound's caches "
            f"{cache_bytes / 2**30:.2f} GiB, arrays as wide as the layers), more than the {available / 2**30:.1f} GiB "
            f"available; lower the cache limit (--cache-mb) or the widths")
    return estimate
