"""The rank law of a randomly pruned convolution: the law of ``min(rank T, D)`` by Monte Carlo (conv.md).

Each kernel tap is kept independently with probability ``delta``. Sample ``s`` draws one uniform number ``U`` and one
random non-zero value mod ``PRIME`` per tap, once; at menu level ``delta_i`` its mask is ``U < delta_i`` (common
random numbers: masks only grow along the menu, so ranks are monotone in ``delta``) and its rank is the generic rank
of ``allocator.bound.conv_rank`` with those values. Only ``min(rank, D)`` matters to the bound (``D`` = the largest
dimension reaching the layer, ``Network.rank_caps``), so a sample's sweep stops once its rank reaches ``D``. A
density between menu levels takes the next level up: more taps, a rank at least as high, so the bound stays on
the safe side.

The ``samples x levels`` rank table of one ``(geometry, D, samples, seed)`` is computed once per process and, given a
folder, kept in one ``.npz`` file per key there (written atomically; a file whose stored key differs is recomputed,
never trusted).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from allocator.bound.conv_rank import PRIME, rank_upper
from allocator.bound.rank import RankLaw
from allocator.errors import InvalidInputError
from allocator.io_utils import atomic_write_bytes
from allocator.network.conv import ConvGeometry

#: Menu levels of a conv law: 0, then 99 levels geometric from a quarter of one expected tap to 1.
CONV_LEVELS = 100
#: Masks sampled per conv shape by default.
DEFAULT_CONV_SAMPLES = 64
_FORMAT = "conv-rank-table-v3"  # v2: singleton elimination before the cover fallback; v3: monotone per sample
_TABLES: dict[str, np.ndarray] = {}
_COVERED: dict[str, np.ndarray] = {}  # per table: which (sample, level) took the cover bound (a component too big)


def conv_levels(weights: int, levels: int = CONV_LEVELS) -> np.ndarray:
    """The density menu of a conv with ``weights`` taps: ``0`` and ``levels - 1`` geometric levels from
    ``1 / (4 weights)`` to 1.

    Example:
        >>> conv_levels(150)[[0, 1, -1]].round(6).tolist()
        [0.0, 0.001667, 1.0]
    """
    return np.concatenate(([0.0], np.geomspace(0.25 / weights, 1.0, levels - 1)))


def _sample_ranks(geometry: ConvGeometry, cap: int, levels: np.ndarray, seed: int,
                  sample: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, sample, cap, *geometry.key()]))
    uniform = rng.random(geometry.tensor_shape)
    values = rng.integers(1, PRIME, size=geometry.tensor_shape, dtype=np.int64)
    ranks = np.zeros(levels.size, dtype=np.int64)
    covered = np.zeros(levels.size, dtype=bool)
    kept_before, rank, used_cover = 0, 0, False
    memo: dict = {}  # component ranks under this sample's values (allocator.bound.conv_rank.rank_upper)
    for index, level in enumerate(levels):
        mask = uniform < level
        kept = int(mask.sum())
        if kept != kept_before:
            rank, used_cover = rank_upper(geometry, mask, cap=cap, values=values, memo=memo)
            kept_before = kept
        ranks[index], covered[index] = rank, used_cover
        if rank >= cap:
            ranks[index:] = cap
            break
    # the cover fallback is an upper bound that need not grow with the mask; the running maximum still bounds the
    # generic rank (which grows) and keeps every sample monotone in the density, as the certificate's proof needs
    return np.maximum.accumulate(ranks), covered


def _key(geometry: ConvGeometry, cap: int, samples: int, seed: int, levels: int) -> dict[str, object]:
    return {"format": _FORMAT, "geometry": list(geometry.key()), "cap": cap, "samples": samples, "seed": seed,
            "levels": levels, "prime": PRIME}


def conv_rank_table(geometry: ConvGeometry, cap: int, samples: int = DEFAULT_CONV_SAMPLES, seed: int = 0,
                    cache_dir: str | os.PathLike[str] | None = None, levels: int = CONV_LEVELS,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``min(rank, cap)`` of every sample (rows) at every level of ``conv_levels`` (columns); where a component
    was too big to eliminate (``conv_rank.MAX_ELIMINATION_ENTRIES``) the value is the cover-capped upper bound
    (``covered_fraction`` says how often).

    Raises:
        InvalidInputError: ``cap`` or ``samples`` below 1.
    """
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
        raise InvalidInputError(f"conv rank cap is {cap!r}; expected an integer >= 1 (the dimension reaching the layer)")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidInputError(f"conv rank samples is {samples!r}; expected an integer >= 1")
    cap = int(min(cap, geometry.rows, geometry.cols))
    key = _key(geometry, cap, samples, seed, levels)
    memory_key = json.dumps(key, sort_keys=True)
    table = _TABLES.get(memory_key)
    if table is not None:
        return table
    path = None
    if cache_dir is not None:
        name = "conv-" + "-".join(str(v) for v in geometry.key()) + f"-D{cap}-s{samples}-seed{seed}-L{levels}.npz"
        path = Path(cache_dir) / name
        table = _read(path, memory_key, (samples, levels))
    if table is None:
        grid = conv_levels(geometry.weights, levels)
        rows, covers = [], []
        for sample in range(samples):
            ranks, covered = _sample_ranks(geometry, cap, grid, seed, sample)
            rows.append(ranks)
            covers.append(covered)
            if progress is not None:
                progress(sample + 1, samples)
        table = np.array(rows)
        _COVERED[memory_key] = np.array(covers)
        if path is not None:
            from io import BytesIO

            buffer = BytesIO()
            np.savez(buffer, key=np.array(memory_key), ranks=table, covered=_COVERED[memory_key])
            atomic_write_bytes(path, buffer.getvalue())
    _TABLES[memory_key] = table
    return table


_DENSE: dict[tuple, int] = {}


def dense_rank(geometry: ConvGeometry, cap: int, seed: int = 0) -> int:
    """``min(generic rank of the full kernel's T, cap)``, or its cover-capped upper bound when a component is too big
    to eliminate (``conv_rank.rank_upper``)."""
    key = (geometry, cap, seed)
    if key not in _DENSE:
        rng = np.random.default_rng(np.random.SeedSequence([seed, cap, *geometry.key()]))
        _DENSE[key] = rank_upper(geometry, np.ones(geometry.tensor_shape, dtype=bool), cap=cap, rng=rng)[0]
    return _DENSE[key]


def covered_fraction(geometry: ConvGeometry, cap: int, samples: int = DEFAULT_CONV_SAMPLES, seed: int = 0,
                     levels: int = CONV_LEVELS) -> np.ndarray:
    """Per menu level, the fraction of samples whose rank is the cover-capped upper bound rather than the exact
    generic rank (the table must have been computed in this process or read from its file)."""
    cap = int(min(cap, geometry.rows, geometry.cols))
    covered = _COVERED.get(json.dumps(_key(geometry, cap, samples, seed, levels), sort_keys=True))
    if covered is None:
        raise InvalidInputError(f"no conv rank table for {geometry} with cap {cap} in this process")
    return covered.mean(axis=0)


def _read(path: Path, memory_key: str, shape: tuple[int, int]) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) != memory_key or stored["ranks"].shape != shape or stored["covered"].shape != shape:
                return None
            _COVERED[memory_key] = np.array(stored["covered"], dtype=bool)
            return np.array(stored["ranks"])
    except Exception:  # noqa: BLE001 - unreadable, truncated, not a zip: recomputed, never trusted
        return None


def conv_rank_law(geometry: ConvGeometry, density: float | Fraction, cap: int, *, samples: int = DEFAULT_CONV_SAMPLES,
                  seed: int = 0, cache_dir: str | os.PathLike[str] | None = None, exact: bool = False,
                  dense: bool = False) -> RankLaw:
    """The law of ``min(rank T, cap)`` at ``density`` (the next menu level up), over ``0..min(cap, rows, cols)``.

    ``dense=True`` gives the point mass at the generic rank of the full kernel (the ``dense`` rank model)."""
    value = float(density)
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"density is {density!r}; densities must lie in [0, 1]")
    top = int(min(cap, geometry.rows, geometry.cols))
    if dense:
        ranks = np.array([dense_rank(geometry, top, seed)])
    else:
        table = conv_rank_table(geometry, cap, samples, seed, cache_dir)
        grid = conv_levels(geometry.weights)
        column = int(np.searchsorted(grid, value - 1e-15, side="left"))
        ranks = table[:, min(column, table.shape[1] - 1)]
    counts = np.bincount(ranks, minlength=top + 1)[: top + 1]
    with np.errstate(divide="ignore"):
        ln_pmf = np.log(counts / counts.sum())
    exact_pmf = tuple(Fraction(int(c), int(counts.sum())) for c in counts) if exact else None
    return RankLaw(geometry.rows, geometry.cols, value, "conv-dense" if dense else "conv-generic", ln_pmf, exact_pmf,
                   samples=None if dense else int(counts.sum()), sampled_ranks=ranks)


def prepare_rank_tables(network, model, say: Callable[[str], None] | None = None) -> None:
    """Compute (or read from ``model.cache_dir``) the rank table of every conv the bound sees, saying which and
    how far along (samples done, seconds, ETA); a network without such convs costs nothing."""
    import time

    specs, caps = network.layers, network.rank_caps
    todo = []
    for layer in network.bound_layers:
        geometry = specs[layer].conv
        if geometry is not None and model.name != "dense" and (geometry, caps[layer]) not in todo:
            todo.append((geometry, caps[layer]))
    for position, (geometry, cap) in enumerate(todo):
        started = time.perf_counter()

        def report(done: int, total: int) -> None:
            if say is None or done % max(1, total // 4) and done != total:
                return
            elapsed = time.perf_counter() - started
            say(f"conv rank table {position + 1} of {len(todo)} ({geometry.in_channels}->{geometry.out_channels}, "
                f"{geometry.kernel[0]}x{geometry.kernel[1]} on {geometry.input_size[0]}x{geometry.input_size[1]}, "
                f"D = {cap}): {done}/{total} samples, {elapsed:.1f} s, ETA {elapsed / done * (total - done):.0f} s")

        conv_rank_table(geometry, cap, model.conv_samples, model.seed, model.cache_dir, progress=report)
