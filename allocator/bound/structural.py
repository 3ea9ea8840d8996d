"""The structural rank of a pruned layer: maximum bipartite matching of its mask, exactly (every mask of a small
layer) or by Monte-Carlo sampling with common random numbers across densities (``structural_law``)."""

from __future__ import annotations

import functools
import json
import os
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import numpy as np

from allocator.bound.rank import (
    EXACT_STRUCTURAL_MAX_ENTRIES,
    DEFAULT_STRUCTURAL_SAMPLES,
    RankLaw,
    _check_shape_density,
    _ln_from_fractions,
    as_fraction,
    binomial_law,
)
from allocator.errors import InvalidInputError
from allocator.io_utils import atomic_write_text


def structural_rank(mask: np.ndarray) -> int:
    """Size of a maximum matching between rows and columns of a boolean mask (scipy, Hopcroft-Karp)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    matrix = csr_matrix(np.asarray(mask, dtype=bool))
    if matrix.nnz == 0:
        return 0
    matching = maximum_bipartite_matching(matrix, perm_type="column")
    return int(np.count_nonzero(matching >= 0))


def structural_rank_networkx(mask: np.ndarray) -> int:
    """Reference implementation: networkx's Hopcroft-Karp on the bipartite graph of the mask."""
    import networkx as nx

    mask = np.asarray(mask, dtype=bool)
    rows, cols = mask.shape
    graph = nx.Graph()
    row_nodes = [("r", i) for i in range(rows)]
    graph.add_nodes_from(row_nodes, bipartite=0)
    graph.add_nodes_from((("c", j) for j in range(cols)), bipartite=1)
    graph.add_edges_from((("r", int(i)), ("c", int(j))) for i, j in zip(*np.nonzero(mask)))
    matching = nx.bipartite.hopcroft_karp_matching(graph, top_nodes=row_nodes)
    return len(matching) // 2


def _kuhn_rank(row_bits: tuple[int, ...], cols: int) -> int:
    """Maximum matching by Kuhn's augmenting paths on rows given as column bitmasks (tiny shapes)."""
    match_of_col = [-1] * cols

    def augment(row: int, seen: list[bool]) -> bool:
        bits = row_bits[row]
        for col in range(cols):
            if bits >> col & 1 and not seen[col]:
                seen[col] = True
                if match_of_col[col] < 0 or augment(match_of_col[col], seen):
                    match_of_col[col] = row
                    return True
        return False

    return sum(augment(r, [False] * cols) for r in range(len(row_bits)))


@functools.lru_cache(maxsize=64)
def mask_rank_counts(rows: int, cols: int) -> tuple[tuple[int, ...], ...]:
    """``counts[e][k]``: how many ``rows x cols`` masks with ``e`` kept entries have structural rank ``k``."""
    entries = rows * cols
    if entries > EXACT_STRUCTURAL_MAX_ENTRIES:
        raise InvalidInputError(
            f"exact-structural enumerates 2^(rows*cols) masks; {rows}x{cols} has {entries} entries, "
            f"at most {EXACT_STRUCTURAL_MAX_ENTRIES} are accepted (use 'structural' for larger layers)"
        )
    m = min(rows, cols)
    counts = [[0] * (m + 1) for _ in range(entries + 1)]
    row_mask = (1 << cols) - 1
    for code in range(1 << entries):
        row_bits = tuple((code >> (r * cols)) & row_mask for r in range(rows))
        counts[code.bit_count()][_kuhn_rank(row_bits, cols)] += 1
    return tuple(tuple(c) for c in counts)


def exact_structural_law(rows: int, cols: int, density: float | Fraction, *, exact: bool = False) -> RankLaw:
    """``P(k) = sum_e counts[e][k] density^e (1 - density)^(rows*cols - e)`` over all masks."""
    _check_shape_density(rows, cols, density)
    counts = mask_rank_counts(rows, cols)
    entries = rows * cols
    m = min(rows, cols)
    if exact:
        d = as_fraction(density)
        pmf = tuple(
            sum(counts[e][k] * d**e * (1 - d) ** (entries - e) for e in range(entries + 1)) for k in range(m + 1)
        )
        return RankLaw(rows, cols, float(density), "exact-structural", _ln_from_fractions(pmf), pmf)
    d = float(density)
    e = np.arange(entries + 1)
    with np.errstate(divide="ignore"):
        weight = np.power(d, e) * np.power(1.0 - d, entries - e)
        pmf_float = np.asarray(counts, dtype=float).T @ weight
        ln_pmf = np.log(pmf_float)
    return RankLaw(rows, cols, d, "exact-structural", ln_pmf)


def _seed_sequence(seed: int, rows: int, cols: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, rows, cols])


def sample_rank_counts(rows: int, cols: int, density: float, samples: int, seed: int) -> np.ndarray:
    """Histogram over ``k = 0..min(rows, cols)`` of the structural ranks of ``samples`` random masks
    (``sample_ranks``)."""
    return np.bincount(sample_ranks(rows, cols, density, samples, seed), minlength=min(rows, cols) + 1)


def sample_ranks(rows: int, cols: int, density: float, samples: int, seed: int) -> np.ndarray:
    """The structural rank of each of ``samples`` random masks, in sample order (``sample_rank_pairs``)."""
    return sample_rank_pairs(rows, cols, density, samples, seed)[0]


def sample_rank_pairs(rows: int, cols: int, density: float, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``samples`` random masks, in sample order: its structural rank and its number of non-empty
    lines of the shorter side (the rank's upper bound whose law is exactly binomial).

    Common random numbers: sample ``s`` draws one uniform matrix ``U_s`` from a stream that depends only on
    ``(seed, rows, cols)`` and keeps the entries with ``U_s < density``. Each entry is then kept with
    probability ``density`` independently (the right law), and for every sample the mask only grows with
    the density, so its rank never decreases: the estimated bound is monotone in density and comparisons
    between densities are not swamped by sampling noise.
    """
    rng = np.random.default_rng(_seed_sequence(seed, rows, cols))
    ranks = np.zeros(samples, dtype=np.int64)
    supports = np.zeros(samples, dtype=np.int64)
    threshold = np.float32(density)
    axis = 1 if rows <= cols else 0  # lines of the shorter side: rows when rows <= cols
    for sample in range(samples):
        uniforms = rng.random((rows, cols), dtype=np.float32)
        mask = uniforms < threshold if density < 1.0 else np.ones((rows, cols), dtype=bool)
        ranks[sample] = structural_rank(mask) if mask.any() else 0
        supports[sample] = int(np.count_nonzero(mask.any(axis=axis)))
    return ranks, supports


#: Sampled ranks kept in memory, least recently used out beyond this many keys (each holds ``samples`` integers).
STRUCTURAL_CACHE_ENTRIES = 4096
_STRUCTURAL_CACHE: OrderedDict[tuple[int, int, float, int, int], np.ndarray] = OrderedDict()


def structural_law(
    rows: int,
    cols: int,
    density: float,
    *,
    samples: int = DEFAULT_STRUCTURAL_SAMPLES,
    seed: int = 0,
    exact: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    reduce_variance: bool = False,
) -> RankLaw:
    """Monte-Carlo law of the structural rank, cached per ``(rows, cols, density, samples, seed)``.

    ``reduce_variance``: the stratified estimate (``allocator.bound.stratified``: the non-empty lines' exact
    binomial law, only the deficiency sampled) instead of the plain frequencies.

    The cache lives in memory (``STRUCTURAL_CACHE_ENTRIES`` keys at most) and, when ``cache_dir`` is given
    (``RankModel.cache_dir``), in one JSON file per key there, written atomically. In exact mode the law is the sampled frequencies
    as Fractions ``count / samples`` (exact arithmetic on the estimate, not the exact law).
    """
    _check_shape_density(rows, cols, density)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidInputError(f"structural samples is {samples!r}; expected an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInputError(f"structural seed is {seed!r}; expected an integer >= 0")
    density = float(density)
    key = (rows, cols, density, samples, seed)
    pair = _STRUCTURAL_CACHE.get(key)
    if pair is not None:
        _STRUCTURAL_CACHE.move_to_end(key)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"structural-crn-{rows}x{cols}-d{density!r}-s{samples}-seed{seed}.json"
    if pair is None and path is not None and path.is_file():
        pair = _cached_pairs(path, key)  # None when the file does not match its key: recomputed, not trusted
    fresh = pair is None
    if fresh:
        pair = sample_rank_pairs(rows, cols, density, samples, seed)
    ranks, supports = pair
    if path is not None and (fresh or not path.is_file()):
        payload = {"rows": rows, "cols": cols, "density": density, "samples": samples, "seed": seed,
                   "ranks": ranks.tolist(), "supports": supports.tolist()}
        atomic_write_text(path, json.dumps(payload))
    _STRUCTURAL_CACHE[key] = pair
    counts = np.bincount(ranks, minlength=min(rows, cols) + 1)
    if len(_STRUCTURAL_CACHE) > STRUCTURAL_CACHE_ENTRIES:
        _STRUCTURAL_CACHE.popitem(last=False)
    if reduce_variance and not exact:
        from allocator.bound.stratified import stratified_ln_pmf

        ln_pmf = stratified_ln_pmf(binomial_law(rows, cols, density).ln_pmf, ranks, supports)
    else:
        with np.errstate(divide="ignore"):
            ln_pmf = np.log(counts / samples)
    pmf = tuple(Fraction(int(c), samples) for c in counts) if exact else None
    return RankLaw(rows, cols, density, "structural", ln_pmf, pmf, samples, sampled_ranks=ranks,
                   sampled_supports=supports if reduce_variance and not exact else None)


def _cached_pairs(path: Path, key: tuple[int, int, float, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The (ranks, supports) stored in a cache file, or ``None`` if it is unreadable or does not match ``key``."""
    rows, cols, density, samples, seed = key
    try:
        stored = json.loads(path.read_text())
        ranks = np.asarray(stored["ranks"], dtype=np.int64)
        supports = np.asarray(stored["supports"], dtype=np.int64)
        matches = (stored["rows"], stored["cols"], float(stored["density"]), stored["samples"], stored["seed"]) == key
    except (OSError, ValueError, KeyError, TypeError):
        return None
    top = min(rows, cols)
    if not matches or ranks.shape != (samples,) or supports.shape != (samples,):
        return None
    if samples and not (0 <= ranks.min() and ranks.max() <= top and np.all(ranks <= supports) and supports.max() <= top):
        return None
    return ranks, supports


