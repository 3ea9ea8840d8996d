"""Timing for the benchmarks: medians of repeated wall-clock runs (the machines are shared and noisy)."""

from __future__ import annotations

import statistics
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def timed(function: Callable[[], T], repeats: int, before_each: Callable[[], object] | None = None) -> tuple[T, float]:
    """Run ``function()`` ``repeats`` times; return the last value and the median wall time in seconds.

    ``before_each()`` runs before every call, outside the timed part (e.g. to clear a cache).
    """
    if repeats < 1:
        raise ValueError(f"repeats is {repeats!r}; expected an integer >= 1")
    times, value = [], None
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return value, statistics.median(times)  # type: ignore[return-value]


def median_seconds(function: Callable[[], object], repeats: int, before_each: Callable[[], object] | None = None) -> float:
    """The median wall time of ``timed``."""
    return timed(function, repeats, before_each)[1]
