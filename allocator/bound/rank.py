"""Rank models: the law ``P_l(k) = P(rank W_l = k | rows, cols, density)`` of a randomly pruned layer.

Each weight of a ``rows x cols`` matrix is kept independently with probability ``density``. Kept values
are in general position, so the rank equals the *structural rank* of the mask: the size of a maximum
matching in the bipartite graph rows x columns with one edge per kept entry. The models:

- ``dense``: a point mass at ``m = min(rows, cols)`` (density ignored).
- ``binomial`` (paper 1's closed form): rank ~ number of non-empty rows when ``rows <= cols``, else of
  non-empty columns: ``Binomial(R, Q)`` with ``Q = 1 - (1 - density)^other``. It is pointwise >= the
  structural rank, so the bound stays an upper bound. ``paper_p0=True`` reproduces the authors' code,
  which set ``P(0) = 0`` without renormalising.
- ``structural``: a Monte-Carlo estimate from ``samples`` seeded Bernoulli masks, each ranked by a
  maximum bipartite matching (scipy's Hopcroft-Karp; networkx's is the reference in the tests), with
  common random numbers across densities (``sample_rank_counts``).
- ``exact-structural``: the exact law by enumerating every mask, for shapes with at most 20 entries.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from allocator.errors import InvalidInputError
from allocator.io_utils import atomic_write_text
from allocator.network import LayerSpec

RANK_MODELS = ("dense", "binomial", "structural", "exact-structural")
EXACT_STRUCTURAL_MAX_ENTRIES = 20
DEFAULT_STRUCTURAL_SAMPLES = 256


@dataclass(frozen=True)
class RankLaw:
    """The law of the rank of one pruned ``rows x cols`` layer.

    Attributes:
        ln_pmf: ``ln P(k)`` for ``k = 0..min(rows, cols)``, ``-inf`` where ``P(k) = 0``.
        exact_pmf: the same probabilities as Fractions, when the law was built in exact mode (``fractions()``
            gives them for every exact law).
        samples: number of sampled masks behind a Monte-Carlo law, else ``None``.
        exact_scaled: in exact mode, ``(a_k, D)`` with ``P(k) = a_k / D`` over one common denominator
            (``allocator.bound.exact``); the binomial law is built this way directly, without Fractions.
        sampled_ranks: a Monte-Carlo law's rank of each sampled mask, in sample order (for standard errors).
    """

    rows: int
    cols: int
    density: float
    model: str
    ln_pmf: np.ndarray = field(repr=False)
    exact_pmf: tuple[Fraction, ...] | None = field(default=None, repr=False)
    samples: int | None = None
    exact_scaled: tuple[tuple[int, ...], int] | None = field(default=None, repr=False)
    sampled_ranks: np.ndarray | None = field(default=None, repr=False, compare=False)
    sampled_supports: np.ndarray | None = field(default=None, repr=False, compare=False)

    def scaled(self) -> tuple[tuple[int, ...], int] | None:
        """``(a_k, D)`` of an exact law (``None`` for a float one)."""
        if self.exact_scaled is not None:
            return self.exact_scaled
        if self.exact_pmf is None:
            return None
        from allocator.bound.exact import scaled_from_fractions

        return scaled_from_fractions(self.exact_pmf)

    def fractions(self) -> tuple[Fraction, ...] | None:
        """The probabilities as Fractions (``None`` for a float law)."""
        if self.exact_pmf is not None:
            return self.exact_pmf
        if self.exact_scaled is None:
            return None
        numerators, denominator = self.exact_scaled
        return tuple(Fraction(a, denominator) for a in numerators)

    @property
    def max_rank(self) -> int:
        """``min(rows, cols)``."""
        return min(self.rows, self.cols)

    def mean(self) -> float:
        """``E[rank] = sum_k k P(k)`` (over the probability mass present, see ``paper_p0``)."""
        return float(np.sum(np.arange(self.max_rank + 1) * np.exp(self.ln_pmf)))


def _check_shape_density(rows: int, cols: int, density: float | Fraction) -> None:
    for label, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"layer {label} is {value!r}; expected an integer >= 1")
    value = float(density)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"density is {density!r}; densities must lie in [0, 1]")


def as_fraction(density: float | Fraction) -> Fraction:
    """The exact rational a density stands for: floats by their shortest decimal (0.001 -> 1/1000)."""
    if isinstance(density, Fraction):
        return density
    return Fraction(repr(float(density)))


def _ln_from_fractions(pmf: tuple[Fraction, ...]) -> np.ndarray:
    out = np.full(len(pmf), -np.inf)
    for k, p in enumerate(pmf):
        if p > 0:
            # ln of a Fraction with huge terms: ln(num) - ln(den) through integer bit lengths.
            out[k] = ln_of_int(p.numerator) - ln_of_int(p.denominator)
    return out


def ln_of_int(value: int) -> float:
    """``ln value`` for a positive integer of any size (Python ints overflow float beyond 1e308)."""
    bits = value.bit_length()
    if bits < 1000:
        return math.log(value)
    shift = bits - 64
    return math.log(value >> shift) + shift * math.log(2.0)


@functools.lru_cache(maxsize=None)
def ln_binomial_row(n: int) -> np.ndarray:
    """``ln C(n, j)`` for ``j = 0..n`` (float64, from ``lgamma``)."""
    ln_fact = np.array([math.lgamma(i + 1.0) for i in range(n + 1)])
    return ln_fact[n] - ln_fact - ln_fact[::-1]


def dense_law(rows: int, cols: int, density: float | Fraction = 1.0, *, exact: bool = False) -> RankLaw:
    """Point mass at ``min(rows, cols)``."""
    _check_shape_density(rows, cols, density)
    m = min(rows, cols)
    ln_pmf = np.full(m + 1, -np.inf)
    ln_pmf[m] = 0.0
    pmf = tuple(Fraction(int(k == m)) for k in range(m + 1)) if exact else None
    return RankLaw(rows, cols, float(density), "dense", ln_pmf, pmf)


def binomial_law(
    rows: int, cols: int, density: float | Fraction, *, exact: bool = False, paper_p0: bool = False
) -> RankLaw:
    """``Binomial(R, Q)``, ``R = min(rows, cols)``, ``Q = 1 - (1 - density)^other``, other = max(rows, cols).

    With ``paper_p0`` the mass at ``k = 0`` is dropped and the rest is *not* renormalised.
    """
    _check_shape_density(rows, cols, density)
    trials, other = (rows, cols) if rows <= cols else (cols, rows)
    k = np.arange(trials + 1)
    exact_pmf: tuple[Fraction, ...] | None = None
    scaled: tuple[tuple[int, ...], int] | None = None
    if exact:  # over the common denominator b^T, q = a / b: no Fraction arithmetic (allocator.bound.exact)
        from allocator.bound.exact import big_integer, ln_of_ratio

        q = 1 - (1 - as_fraction(density)) ** other
        a, b = big_integer(q.numerator), big_integer(q.denominator)
        powers_a = [1]
        for _ in range(trials):
            powers_a.append(powers_a[-1] * a)
        powers_rest = [1]
        for _ in range(trials):
            powers_rest.append(powers_rest[-1] * (b - a))
        numerators = [int(math.comb(trials, i) * powers_a[i] * powers_rest[trials - i]) for i in range(trials + 1)]
        if paper_p0:
            numerators[0] = 0
        denominator = int(b ** trials)
        scaled = (tuple(numerators), denominator)
        ln_pmf = np.array([ln_of_ratio(v, denominator) if v > 0 else -np.inf for v in numerators])
    else:
        d = float(density)
        if d == 0.0:
            ln_pmf = np.where(k == 0, 0.0, -np.inf)
        elif d == 1.0:
            ln_pmf = np.where(k == trials, 0.0, -np.inf)
        else:
            ln_one_minus_q = other * math.log1p(-d)  # ln (1 - d)^other
            ln_q = math.log(-math.expm1(ln_one_minus_q))
            with np.errstate(invalid="ignore"):
                ln_pmf = ln_binomial_row(trials) + k * ln_q + (trials - k) * ln_one_minus_q
        ln_pmf = np.asarray(ln_pmf, dtype=float)
        if paper_p0:
            ln_pmf = ln_pmf.copy()
            ln_pmf[0] = -np.inf
    name = "binomial-paper-p0" if paper_p0 else "binomial"
    return RankLaw(rows, cols, float(density), name, ln_pmf, exact_pmf, exact_scaled=scaled)


# ----------------------------------------------------------------------------------------------
# Structural rank: maximum bipartite matching of a mask.


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


@dataclass(frozen=True)
class RankModel:
    """A named rank model and its options; ``law(rows, cols, density)`` gives a layer's ``RankLaw``.

    Example:
        >>> model = RankModel("binomial")
        >>> round(model.law(100, 784, 0.001).mean(), 2)
        54.36
    """

    name: str = "binomial"
    paper_p0: bool = False
    samples: int = DEFAULT_STRUCTURAL_SAMPLES
    seed: int = 0
    cache_dir: str | None = field(default=None, compare=False)  # structural: sampled laws also kept on disk here
    reduce_variance: bool = True  # structural: the stratified estimate (allocator.bound.stratified)

    def __post_init__(self) -> None:
        if self.name not in RANK_MODELS:
            raise InvalidInputError(
                f"rank model {self.name!r} is unknown; accepted: {', '.join(RANK_MODELS)}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInputError(f"rank-model seed is {self.seed!r}; expected an integer >= 0")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise InvalidInputError(f"rank-model samples is {self.samples!r}; expected an integer >= 1")
        if self.paper_p0 and self.name != "binomial":
            raise InvalidInputError(
                f"paper_p0 is an option of the binomial rank model only, not of {self.name!r}"
            )

    def law(self, rows: int, cols: int, density: float | Fraction, *, exact: bool = False) -> RankLaw:
        """The rank law of one ``rows x cols`` linear layer kept at ``density``."""
        builder = _BUILDERS[self.name]
        return builder(self, rows, cols, density, exact)

    def law_for(self, layer: LayerSpec, density: float | Fraction, *, exact: bool = False) -> RankLaw:
        """The rank law of ``layer`` kept at ``density``, looked up by (this model, the layer's kind).

        Raises:
            InvalidInputError: this model has no law for the layer's kind (the message names the layer).
        """
        builder = _LAWS_BY_KIND.get((self.name, layer.kind))
        if builder is None:
            kinds = sorted(kind for name, kind in _LAWS_BY_KIND if name == self.name)
            raise InvalidInputError(f"rank model {self.name!r} has no law for {layer.kind} layers ({layer.name}); "
                                    f"it covers: {', '.join(kinds)}")
        return builder(self, layer.rows, layer.cols, density, exact)

    def options(self) -> dict[str, object]:
        """The options that change the law, for reports and files."""
        if self.name == "binomial":
            return {"paper_p0": self.paper_p0}
        if self.name == "structural":
            return {"samples": self.samples, "seed": self.seed, "reduce_variance": self.reduce_variance}
        return {}


_BUILDERS: Mapping[str, Callable[[RankModel, int, int, float | Fraction, bool], RankLaw]] = {
    "dense": lambda m, r, c, d, e: dense_law(r, c, d, exact=e),
    "binomial": lambda m, r, c, d, e: binomial_law(r, c, d, exact=e, paper_p0=m.paper_p0),
    "structural": lambda m, r, c, d, e: structural_law(r, c, float(d), samples=m.samples, seed=m.seed, exact=e,
                                                       cache_dir=m.cache_dir, reduce_variance=m.reduce_variance),
    "exact-structural": lambda m, r, c, d, e: exact_structural_law(r, c, d, exact=e),
}

#: Rank laws by (rank model, layer kind): every model covers linear layers; conv laws register here.
_LAWS_BY_KIND: dict[tuple[str, str], Callable[[RankModel, int, int, float | Fraction, bool], RankLaw]] = {
    (name, "linear"): builder for name, builder in _BUILDERS.items()
}
