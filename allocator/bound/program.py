"""The expected bound of a *program* (``allocator.network.program``): the recursion of bound.md step by step.

Each step ``s`` turns ``N_{s+1}(d')`` on ``d' = 0..D_{s+1}`` into ``N_s(d)`` on ``d = 0..D_s`` (``D_s`` =
``Network.domains``; ``N`` after the last step is 1), and ``E[B] = N_0(n0)``. With ``P`` a layer's rank law (of
``min(rank, D_s)``: mass above the step's domain is folded onto ``D_s``), ``c = min(d, k)`` and ``S_n(c) =
sum_{j <= c} C(n, j)``:

    Relu(n):                 N(d) = sum_k P(k) sum_{j <= c} C(n, j) N'(min(n - j, c))
    ReluMaxPool(u, w):       N(d) = sum_k P(k) min(S_M(c), (w + 1)^u) N'(min(c, u)),   M = u C(w + 1, 2)
    Cap(u):                  N(d) = N'(min(d, u))
    Residual(n_h, n_y, S):   N(d) = sum_{k1, k2, kS} P1 P2 PS S_{n_h}(min(d, k1)) h_y(min(d, n_y, kappa)),
                             kappa = min(k1, k2) + kS,  h_y(c) = sum_{j <= c} C(n_y, j) N'(min(n_y - j, c))

``ln_expected_bound_of_program`` works in float64 log space (the O(n) windows of ``allocator.bound.recursion`` for
``h``; a residual step sums over the support of ``P1`` only, and not at all when the skip's rank covers ``D_s``).
``expected_bound_of_program_exact`` computes the same formulas term by term in exact rationals: the test oracle.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from allocator.bound.recursion import ln_expect_over_rank, ln_h_of_layer
from allocator.network.program import Cap, Relu, ReluMaxPool, Residual, Step

_NEG_INF = -np.inf


def fold_ln_pmf(ln_pmf: np.ndarray, cap: int) -> np.ndarray:
    """The law of ``min(k, cap)`` from the law of ``k`` (``ln P`` over ``0..len - 1``)."""
    ln_pmf = np.asarray(ln_pmf, dtype=float)
    if ln_pmf.size - 1 <= cap:
        return ln_pmf
    folded = ln_pmf[: cap + 1].copy()
    folded[cap] = np.logaddexp.reduce(ln_pmf[cap:])
    return folded


def _pad(values: np.ndarray, size: int) -> np.ndarray:
    """``values`` extended to ``size`` entries by repeating its last (a function constant beyond its domain)."""
    if values.size >= size:
        return values[:size]
    return np.concatenate((values, np.full(size - values.size, values[-1])))


def ln_partial_binomial_sums(n: int, top: int) -> np.ndarray:
    """``ln S_n(c)`` for ``c = 0..top`` (``S_n(c) = 2^n`` for ``c >= n``), by ``lgamma`` (``n`` may be huge)."""
    j = np.arange(min(top, n) + 1, dtype=float)
    ln_c = math.lgamma(n + 1) - np.array([math.lgamma(v + 1) + math.lgamma(n - v + 1) for v in j])
    return _pad(np.logaddexp.accumulate(ln_c), top + 1)


def _ln_shifted_sum(ln_pmf: np.ndarray, shortcut: np.ndarray | int) -> np.ndarray:
    """The law of ``e + kS``: shifted by a fixed rank, or convolved with the shortcut's law."""
    if isinstance(shortcut, (int, np.integer)):
        return np.concatenate((np.full(int(shortcut), _NEG_INF), ln_pmf))
    pmf = np.exp(ln_pmf)
    other = np.exp(np.asarray(shortcut, dtype=float))
    with np.errstate(divide="ignore"):
        return np.log(np.convolve(pmf, other))


def ln_expected_bound_of_program(input_width: int, program: Sequence[Step], domains: Sequence[int],
                                 ln_pmf_of: Callable[[int], np.ndarray]) -> float:
    """``ln E[B]`` (nats) of ``program``; ``ln_pmf_of(layer)`` is weight layer ``layer``'s rank law.

    ``domains`` are ``Network.domains`` of the program (``ln_program_suffix`` resumes from a cached suffix)."""
    ln_n = ln_program_suffix(program, domains, ln_pmf_of)
    return float(ln_n[input_width if input_width < ln_n.size else -1])


def ln_step(step: Step, domain: int, ln_next: np.ndarray, ln_pmf_of: Callable[[int], np.ndarray]) -> np.ndarray:
    """``ln N_s`` on ``0..domain`` from ``ln N_{s+1}`` (module docstring). A rank never exceeds the layer's units: laws are folded at
    ``min(domain, units)``."""
    if isinstance(step, Cap):
        return ln_next[np.minimum(np.arange(domain + 1), ln_next.size - 1)]
    if isinstance(step, Relu):
        ln_pmf = fold_ln_pmf(ln_pmf_of(step.layer), min(domain, step.width))
        ln_h = ln_h_of_layer(step.width, ln_pmf.size - 1, _pad(ln_next, step.width + 1))
        return _pad(ln_expect_over_rank(ln_pmf, ln_h), domain + 1)
    if isinstance(step, ReluMaxPool):
        ln_pmf = fold_ln_pmf(ln_pmf_of(step.layer), min(domain, step.width))
        top = ln_pmf.size - 1
        pieces = step.windows * math.comb(step.window_size + 1, 2)
        ln_factor = np.minimum(ln_partial_binomial_sums(pieces, top), step.windows * math.log(step.window_size + 1))
        c = np.arange(top + 1)
        ln_g = ln_factor + ln_next[np.minimum(np.minimum(c, step.windows), ln_next.size - 1)]
        return _pad(ln_expect_over_rank(ln_pmf, ln_g), domain + 1)
    return _ln_residual(step, domain, ln_next, ln_pmf_of)


def _ln_residual(step: Residual, domain: int, ln_next: np.ndarray,
                 ln_pmf_of: Callable[[int], np.ndarray]) -> np.ndarray:
    top_y = min(domain, step.width)
    ln_hy = ln_h_of_layer(step.width, top_y, _pad(ln_next, step.width + 1))  # h_y(c), c = 0..min(D, n_y)
    ln_first = fold_ln_pmf(ln_pmf_of(step.first), min(domain, step.first_width))
    ln_sh = ln_partial_binomial_sums(step.first_width, ln_first.size - 1)  # S_{n_h}(c), c = 0..K1
    d = np.arange(domain + 1)
    ln_hy_of_d = ln_hy[np.minimum(d, top_y)]
    if step.shortcut_rank is not None and step.shortcut_rank >= top_y:  # kappa >= min(D, n_y): the skip covers it
        return ln_hy_of_d + _pad(ln_expect_over_rank(ln_first, ln_sh), domain + 1)
    ln_second = fold_ln_pmf(ln_pmf_of(step.second), min(domain, step.width))
    shortcut: np.ndarray | int = (step.shortcut_rank if step.shortcut_rank is not None
                                  else fold_ln_pmf(ln_pmf_of(step.shortcut_layer), domain))  # type: ignore[arg-type]
    terms = []
    for k1 in np.flatnonzero(np.isfinite(ln_first)):
        ln_e = fold_ln_pmf(ln_second, int(k1))  # the law of min(k1, k2)
        ln_kappa = fold_ln_pmf(_ln_shifted_sum(ln_e, shortcut), top_y)  # min(n_y, D, kappa)
        inner = _pad(ln_expect_over_rank(ln_kappa, ln_hy[: ln_kappa.size]), domain + 1)
        terms.append(ln_first[k1] + ln_sh[np.minimum(d, k1)] + inner)
    return np.logaddexp.reduce(np.array(terms), axis=0)


def ln_program_suffix(program: Sequence[Step], domains: Sequence[int], ln_pmf_of: Callable[[int], np.ndarray],
                      stop: int = 0, start: int | None = None, ln_tail: np.ndarray | None = None,
                      on_step: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """``ln N_stop`` on ``0..D_stop``, from ``ln N_start = ln_tail`` (default: after the last step, ``N = 1``).
    ``on_step(s, ln N_s)`` sees every array computed (for caches)."""
    position = len(program) if start is None else start
    ln_n = np.zeros(domains[len(program)] + 1) if ln_tail is None else ln_tail
    for s in range(position - 1, stop - 1, -1):
        ln_n = ln_step(program[s], domains[s], ln_n, ln_pmf_of)
        if on_step is not None:
            on_step(s, ln_n)
    return ln_n


def _fold(pmf: Sequence[Fraction | int], cap: int) -> list[Fraction]:
    values = [Fraction(p) for p in pmf]
    if len(values) - 1 <= cap:
        return values
    return values[:cap] + [sum(values[cap:], Fraction(0))]


def expected_bound_of_program_exact(input_width: int, program: Sequence[Step], domains: Sequence[int],
                                    pmf_of: Callable[[int], Sequence[Fraction | int]]) -> Fraction:
    """``E[B]`` of ``program`` in exact rationals, every step's sum written out term by term (module docstring);
    no algebra shared with the log-space form. Tiny programs only (the test oracle)."""
    nxt: list[Fraction] = [Fraction(1)] * (domains[len(program)] + 1)

    def after(value: int) -> Fraction:
        return nxt[min(value, len(nxt) - 1)]

    for s in range(len(program) - 1, -1, -1):
        step, domain = program[s], domains[s]
        current: list[Fraction] = []
        for d in range(domain + 1):
            if isinstance(step, Cap):
                current.append(after(min(d, step.outputs)))
            elif isinstance(step, Relu):
                n = step.width
                current.append(sum((p * sum(math.comb(n, j) * after(min(n - j, d, k)) for j in range(min(d, k) + 1))
                                    for k, p in enumerate(_fold(pmf_of(step.layer), min(domain, n))) if p), Fraction(0)))
            elif isinstance(step, ReluMaxPool):
                u, w = step.windows, step.window_size
                pieces = u * math.comb(w + 1, 2)
                total = Fraction(0)
                for k, p in enumerate(_fold(pmf_of(step.layer), min(domain, step.width))):
                    if p:
                        c = min(d, k)
                        factor = min(sum(math.comb(pieces, j) for j in range(c + 1)), (w + 1) ** u)
                        total += p * factor * after(min(c, u))
                current.append(total)
            else:
                shortcut = ([(step.shortcut_rank, Fraction(1))] if step.shortcut_rank is not None
                            else [(k, p) for k, p in enumerate(_fold(pmf_of(step.shortcut_layer), domain)) if p])
                n_h, n_y = step.first_width, step.width
                total = Fraction(0)
                for k1, p1 in enumerate(_fold(pmf_of(step.first), min(domain, n_h))):
                    for k2, p2 in enumerate(_fold(pmf_of(step.second), min(domain, n_y))):
                        for ks, ps in shortcut:
                            if not (p1 and p2 and ps):
                                continue
                            split = sum(math.comb(n_h, j) for j in range(min(d, k1) + 1))
                            c2 = min(d, n_y, min(k1, k2) + ks)
                            second = sum(math.comb(n_y, j) * after(min(n_y - j, c2)) for j in range(c2 + 1))
                            total += p1 * p2 * ps * split * second
                current.append(total)
        nxt = current
    return nxt[min(input_width, len(nxt) - 1)]
