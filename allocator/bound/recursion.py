"""The expected linear-region bound ``E[B]`` by recursion over layers, in three independent forms.

Notation (bound.md): input width ``n0``; layer ``l`` of width ``n_l`` has rank law ``P_l(k)``,
``k = 0..m_l`` with ``m_l = min(n_l, n_{l-1})``. With ``N(L+1, d) = 1``,

    N(l, d) = sum_k P_l(k) h_l(min(d, k)),
    h_l(c)  = sum_{j=0}^{c} C(n_l, j) N(l+1, min(n_l - j, c)),
    E[B]    = N(1, n0).

- ``ln_expected_bound_from_laws``: float64 log space, O(m_l) per layer after the ``ln C`` table (below).
- ``expected_bound_exact``: the same recursion with Python integers / Fractions, O(m_l^2) per layer.
- ``expected_bound_by_enumeration``: no recursion at all; sums ``prod_l C(n_l, j_l)`` over the explicit set
  ``J(k)`` for every rank tuple ``k``, weighted by ``prod_l P_l(k_l)``. Tiny networks only (the oracle).

Why ``h_l`` is O(m) (writing ``n = n_l`` and ``N' = N(l+1, .)``): for ``j <= n - c`` the carried dimension
is ``min(n - j, c) = c``, and for ``j > n - c`` it is ``n - j``. So

    h(c) = N'(c) S(min(c, n - c)) + W(c),   S(t) = sum_{j<=t} C(n, j),
    W(c) = sum_{j = n-c+1}^{c} C(n, j) N'(n - j),

and the window ``[n - c + 1, c]`` grows by its two end points as ``c`` grows, so ``W`` is a running
log-sum-exp with no subtraction. ``N(l, d) = sum_{k<d} P(k) h(k) + h(d) sum_{k>=d} P(k)`` for ``d <= m``
(constant beyond), again running sums.
"""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction
from typing import Sequence

import numpy as np

from allocator.bound.rank import ln_binomial_row

_NEG_INF = -np.inf


def _running_logsumexp(values: np.ndarray) -> np.ndarray:
    return np.logaddexp.accumulate(values) if values.size else values


@functools.lru_cache(maxsize=None)
def ln_partial_binomial_sums(n: int) -> np.ndarray:
    """``ln S(t) = ln sum_{j<=t} C(n, j)`` for ``t = 0..n`` (read-only; computed once per ``n``)."""
    ln_s = _running_logsumexp(ln_binomial_row(n))
    ln_s.flags.writeable = False
    return ln_s


def ln_h_of_layer(width: int, m: int, ln_next: np.ndarray) -> np.ndarray:
    """``ln h(c)`` for ``c = 0..m`` (``m <= width``), ``h(c) = sum_{j<=c} C(n, j) N'(min(n - j, c))`` with
    ``n = width`` and ``ln N'`` given on ``0..width``; O(n) by the windows of the module docstring."""
    n = width
    ln_c = ln_binomial_row(n)
    ln_s = ln_partial_binomial_sums(n)
    c = np.arange(m + 1)
    ln_h = ln_next[c] + ln_s[np.minimum(c, n - c)]
    c0 = n // 2 + 1  # the smallest c whose window [n - c + 1, c] is non-empty
    if c0 <= m:
        ln_g = ln_c + ln_next[n - np.arange(n + 1)]  # ln C(n, j) N'(n - j)
        first = ln_g[c0] if n % 2 else np.logaddexp(ln_g[c0 - 1], ln_g[c0])
        grow = np.arange(c0, m)
        steps = np.logaddexp(ln_g[n - grow], ln_g[grow + 1])
        ln_w = _running_logsumexp(np.concatenate(([first], steps)))
        ln_h[c0:] = np.logaddexp(ln_h[c0:], ln_w)
    return ln_h


def ln_tail_of(ln_pmf: np.ndarray) -> np.ndarray:
    """``ln sum_{k>=d} P(k)`` for ``d = 0..m``: the law's tail, which ``ln_expect_over_rank`` needs (callers that
    apply one law many times compute it once)."""
    return _running_logsumexp(ln_pmf[::-1])[::-1]


def ln_expect_over_rank(ln_pmf: np.ndarray, ln_h: np.ndarray, ln_tail: np.ndarray | None = None) -> np.ndarray:
    """``ln sum_k P(k) h(min(d, k))`` for ``d = 0..m`` (``m + 1`` entries in both arrays; constant for ``d >= m``):
    ``sum_{k<d} P(k) h(k) + h(d) sum_{k>=d} P(k)``, two running sums (``ln_tail``: ``ln_tail_of(ln_pmf)``, if
    known)."""
    weighted = ln_pmf + ln_h
    below = np.concatenate(([_NEG_INF], _running_logsumexp(weighted)[:-1]))  # sum_{k<d} P(k) h(k)
    tail = ln_tail_of(ln_pmf) if ln_tail is None else ln_tail  # sum_{k>=d} P(k)
    return np.logaddexp(below, ln_h + tail)


def _layer_ln_n(width: int, ln_pmf: np.ndarray, ln_next: np.ndarray, ln_tail: np.ndarray | None = None) -> np.ndarray:
    """``ln N(l, d)`` for ``d = 0..m`` from ``ln N(l+1, d')`` for ``d' = 0..width``; see module docstring."""
    return ln_expect_over_rank(ln_pmf, ln_h_of_layer(width, ln_pmf.size - 1, ln_next), ln_tail)


def ln_expected_bound_from_laws(input_width: int, widths: Sequence[int], ln_pmfs: Sequence[np.ndarray]) -> float:
    """``ln E[B]`` in float64 log space for layer widths ``widths`` and rank laws ``ln_pmfs``.

    ``ln_pmfs[l][k] = ln P_l(k)`` for ``k = 0..min(widths[l], previous width)``.

    Example:
        >>> import numpy as np
        >>> dense = [np.array([-np.inf] * 3 + [0.0]), np.array([-np.inf] * 4 + [0.0])]
        >>> round(float(np.exp(ln_expected_bound_from_laws(3, [4, 4], dense))))
        161
    """
    ln_next = np.zeros(widths[-1] + 1)
    for layer in range(len(widths) - 1, -1, -1):
        cols = input_width if layer == 0 else widths[layer - 1]
        ln_next = ln_n_of_layer(widths[layer], cols, ln_pmfs[layer], ln_next)
    return float(ln_next[input_width])


def ln_n_of_layer(width: int, cols: int, ln_pmf: np.ndarray, ln_next: np.ndarray,
                  ln_tail: np.ndarray | None = None) -> np.ndarray:
    """One step of the recursion: ``ln N(l, d)`` for ``d = 0..cols`` from ``ln N(l+1, .)`` on ``0..width``.

    ``cols`` is the width of the layer before (``n0`` for the first). Exposed so that callers evaluating
    many allocations can cache the suffix ``N(l+1, .)`` of unchanged deeper layers (and the law's tail,
    ``ln_tail_of(ln_pmf)``).
    """
    ln_pmf = np.asarray(ln_pmf, dtype=float)
    m = min(width, cols)
    if ln_pmf.shape != (m + 1,):
        raise ValueError(f"rank law of a {width} x {cols} layer has {ln_pmf.size} entries; expected {m + 1}")
    ln_n = _layer_ln_n(width, ln_pmf, ln_next, ln_tail)
    # N(l, d) is constant for d >= m; the caller's dimension runs to cols.
    return np.concatenate((ln_n, np.full(cols - m, ln_n[-1])))


def ln_adjoint_of_layer(width: int, cols: int, ln_pmf: np.ndarray, ln_row: np.ndarray,
                        ln_tail: np.ndarray | None = None) -> np.ndarray:
    """The adjoint (transposed) step: ``ln R'`` on ``0..width`` with ``sum_d R(d) N(l, d) = sum_d' R'(d') N(l+1, d')``
    for every ``N(l+1, .)``, from ``ln R`` on ``0..cols``. O(width) like the forward step.

    The step is linear, ``N(l, .) = Q H N(l+1, .)`` with (``m = min(width, cols)``, ``T(c) = sum_{k>=c} P(k)``)
    ``Q[d, c] = P(c)`` for ``c < d``, ``Q[d, d] = T(d)``, rows ``d > m`` equal to row ``m``; ``H[c, c] = S(min(c, n-c))``
    and ``H[c, d'] = C(n, d')`` for ``n - c <= d' <= c - 1`` (the window of the module docstring). So, with ``R~`` the
    row folded onto ``0..m`` (``R~(m) = sum_{d>=m} R(d)``),

        u(c)   = P(c) sum_{d>c} R~(d) + R~(c) T(c),
        R'(d') = u(d') S(min(d', n - d'))  [d' <= m]  +  C(n, d') sum_{c = max(d'+1, n-d')}^{m} u(c).

    With ``R_1 = e_{n0}`` and ``R_{l+1}`` its adjoint step, ``E[B] = sum_d R_l(d) N(l, d)`` for every ``l``: a
    change to layer ``l`` alone is then evaluated in O(width) from the current ``R_l`` and ``N(l+1, .)``.
    ``ln_tail``: ``ln_tail_of(ln_pmf)``, if known.
    """
    n = width
    ln_pmf = np.asarray(ln_pmf, dtype=float)
    m = min(width, cols)
    if ln_pmf.shape != (m + 1,) or ln_row.shape != (cols + 1,):
        raise ValueError(f"a {width} x {cols} layer needs a law of {m + 1} and a row of {cols + 1} entries")
    folded = ln_row[: m + 1].copy()
    if cols > m:
        folded[m] = np.logaddexp.reduce(ln_row[m:])
    tail = ln_tail_of(ln_pmf) if ln_tail is None else ln_tail  # T(c)
    above = np.concatenate((_running_logsumexp(folded[::-1])[::-1][1:], [_NEG_INF]))  # sum_{d>c} R~(d)
    ln_u = np.logaddexp(ln_pmf + above, folded + tail)
    ln_c = ln_binomial_row(n)
    ln_s = ln_partial_binomial_sums(n)
    ln_u_suffix = np.concatenate((_running_logsumexp(ln_u[::-1])[::-1], [_NEG_INF]))  # index m+1: empty sum
    d = np.arange(n + 1)
    start = np.minimum(np.maximum(d + 1, n - d), m + 1)
    ln_out = ln_c + ln_u_suffix[start]
    diagonal = d[: m + 1]
    ln_out[: m + 1] = np.logaddexp(ln_out[: m + 1], ln_u + ln_s[np.minimum(diagonal, n - diagonal)])
    return ln_out


def ln_pairing(ln_row: np.ndarray, ln_column: np.ndarray) -> float:
    """``ln sum_d R(d) N(d)`` of a row and a column in log space (the two on the same dimensions)."""
    return float(np.logaddexp.reduce(ln_row + ln_column))


def expected_bound_exact(
    input_width: int, widths: Sequence[int], pmfs: Sequence[Sequence[Fraction | int]]
) -> Fraction:
    """``E[B]`` exactly (integers and Fractions) by the recursion ``N(l, d) = sum_k P(k) h(min(d, k))``.

    ``h_l(c)`` is summed term by term from its definition, so this shares no algebra with the log-space
    form beyond the recursion itself.
    """
    next_n: list[Fraction | int] = [1] * (widths[-1] + 1)
    for layer in range(len(widths) - 1, -1, -1):
        n = widths[layer]
        cols = input_width if layer == 0 else widths[layer - 1]
        pmf = list(pmfs[layer])
        m = min(n, cols)
        if len(pmf) != m + 1:
            raise ValueError(f"rank law of layer {layer + 1} has {len(pmf)} entries; expected {m + 1}")
        h = [sum(math.comb(n, j) * next_n[min(n - j, c)] for j in range(c + 1)) for c in range(m + 1)]
        if layer == 0:
            return Fraction(sum(p * h[min(input_width, k)] for k, p in enumerate(pmf) if p))
        next_n = [sum(p * h[min(d, k)] for k, p in enumerate(pmf) if p) for d in range(cols + 1)]
    raise ValueError("widths must name at least one layer")


def bound_for_ranks_by_enumeration(input_width: int, widths: Sequence[int], ranks: Sequence[int]) -> int:
    """``B(k) = sum over J(k) of prod_l C(n_l, j_l)`` by listing every ``j`` in

    ``J(k) = { j : 0 <= j_l <= min(n0, k_1..k_l, n_1 - j_1, ..., n_{l-1} - j_{l-1}) }``.

    Example (the dense bound of Serra et al., ranks at their maxima):
        >>> bound_for_ranks_by_enumeration(3, [4, 4], [3, 4])
        161
    """
    total = 0
    for j in itertools.product(*(range(min(input_width, k) + 1) for k in ranks)):
        cap = input_width
        feasible = True
        for layer, (j_l, k_l) in enumerate(zip(j, ranks)):
            cap = min(cap, k_l)
            if j_l > cap:
                feasible = False
                break
            cap = min(cap, widths[layer] - j_l)
        if feasible:
            total += math.prod(math.comb(n, j_l) for n, j_l in zip(widths, j))
    return total


def expected_bound_by_enumeration(
    input_width: int, widths: Sequence[int], pmfs: Sequence[Sequence[Fraction | int]]
) -> Fraction:
    """``E[B] = sum over rank tuples k of prod_l P_l(k_l) B(k)``, each ``B(k)`` by explicit enumeration."""
    total = Fraction(0)
    supports = [[(k, p) for k, p in enumerate(pmf) if p] for pmf in pmfs]
    for combo in itertools.product(*supports):
        weight = math.prod(Fraction(p) for _, p in combo)
        total += weight * bound_for_ranks_by_enumeration(input_width, widths, [k for k, _ in combo])
    return total
