"""Rank models: the law ``P_l(k) = P(rank W_l = k | rows, cols, density)`` of a randomly pruned layer.

Each weight of a ``rows x cols`` matrix is kept independently with probability ``density``. Kept values
are in general position, so the rank equals the *structural rank* of the mask: the size of a maximum
matching in the bipartite graph rows x columns with one edge per kept entry. The models:

- ``dense``: a point mass at ``m = min(rows, cols)`` (density ignored).
- ``binomial`` (paper 1's closed form): rank ~ number of non-empty rows when ``rows <= cols``, else of
  non-empty columns: ``Binomial(R, Q)`` with ``Q = 1 - (1 - density)^other``. It is pointwise >= the
  structural rank, so the bound stays an upper bound. ``paper_p0=True`` reproduces the authors' code,
  which set ``P(0) = 0`` without renormalising.
- ``structural`` (``allocator.bound.structural``): a Monte-Carlo estimate from ``samples`` seeded Bernoulli masks, each ranked by a
  maximum bipartite matching (scipy's Hopcroft-Karp; networkx's is the reference in the tests), with
  common random numbers across densities (``sample_rank_counts``).
- ``exact-structural``: the exact law by enumerating every mask, for shapes with at most 20 entries.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Mapping

import numpy as np

from allocator.errors import InvalidInputError
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
        return float(np.sum(np.arange(self.ln_pmf.size) * np.exp(self.ln_pmf)))


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
    conv_samples: int = 64  # conv layers inside the bound: masks sampled per shape (allocator.bound.conv_law)

    def __post_init__(self) -> None:
        if self.name not in RANK_MODELS:
            raise InvalidInputError(
                f"rank model {self.name!r} is unknown; accepted: {', '.join(RANK_MODELS)}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInputError(f"rank-model seed is {self.seed!r}; expected an integer >= 0")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise InvalidInputError(f"rank-model samples is {self.samples!r}; expected an integer >= 1")
        if isinstance(self.conv_samples, bool) or not isinstance(self.conv_samples, int) or self.conv_samples < 1:
            raise InvalidInputError(f"conv samples is {self.conv_samples!r}; expected an integer >= 1")
        if self.paper_p0 and self.name != "binomial":
            raise InvalidInputError(
                f"paper_p0 is an option of the binomial rank model only, not of {self.name!r}"
            )

    def law(self, rows: int, cols: int, density: float | Fraction, *, exact: bool = False) -> RankLaw:
        """The rank law of one ``rows x cols`` linear layer kept at ``density``."""
        builder = _BUILDERS[self.name]
        return builder(self, rows, cols, density, exact)

    def law_for(self, layer: LayerSpec, density: float | Fraction, *, exact: bool = False,
                cap: int | None = None) -> RankLaw:
        """The rank law of ``layer`` kept at ``density``, looked up by (this model, the layer's kind).

        A conv the bound sees (``layer.conv`` set) has one law under every model: the Monte-Carlo law of
        ``min(generic rank, cap)`` of its unrolled matrix (``allocator.bound.conv_law``; the ``dense`` model: the
        full kernel's generic rank), ``cap`` the dimension reaching it (``Network.rank_caps``; default
        ``min(rows, cols)`` of the unrolled matrix). Linear layers ignore ``cap`` (the program folds their laws).

        Raises:
            InvalidInputError: this model has no law for the layer's kind (the message names the layer).
        """
        if layer.conv is not None:
            from allocator.bound.conv_law import conv_rank_law

            geometry = layer.conv
            return conv_rank_law(geometry, density, min(geometry.rows, geometry.cols) if cap is None else cap,
                                 samples=self.conv_samples, seed=self.seed, cache_dir=self.cache_dir, exact=exact,
                                 dense=self.name == "dense")
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

    def conv_options(self) -> dict[str, object]:
        """The options of the conv law (every model's, for networks with convs inside the bound)."""
        return {"conv_law": "generic rank mod 2^61-1, Monte Carlo with common random numbers",
                "conv_samples": self.conv_samples, "seed": self.seed}


def _structural():
    """``allocator.bound.structural`` (imported when a structural law is first asked for: it imports this module)."""
    from allocator.bound import structural

    return structural


_BUILDERS: Mapping[str, Callable[[RankModel, int, int, float | Fraction, bool], RankLaw]] = {
    "dense": lambda m, r, c, d, e: dense_law(r, c, d, exact=e),
    "binomial": lambda m, r, c, d, e: binomial_law(r, c, d, exact=e, paper_p0=m.paper_p0),
    "structural": lambda m, r, c, d, e: _structural().structural_law(
        r, c, float(d), samples=m.samples, seed=m.seed, exact=e, cache_dir=m.cache_dir,
        reduce_variance=m.reduce_variance),
    "exact-structural": lambda m, r, c, d, e: _structural().exact_structural_law(r, c, d, exact=e),
}

#: Rank laws by (rank model, layer kind): every model covers linear layers; conv laws register here.
_LAWS_BY_KIND: dict[tuple[str, str], Callable[[RankModel, int, int, float | Fraction, bool], RankLaw]] = {
    (name, "linear"): builder for name, builder in _BUILDERS.items()
}
