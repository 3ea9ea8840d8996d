"""Exact DMD (Tu et al. 2014) of a snapshot window, in float64, from Gram sums.

With snapshots ``S = [theta_0 .. theta_{T-1}]`` (N x T), ``X = S[:, :-1]`` and ``Y = S[:, 1:]``:

    X^T X = V Sigma^2 V^T                      (so X = U Sigma V^T, U = X V Sigma^-1)
    A~    = U^T Y V Sigma^-1 = Sigma^-1 V^T (X^T Y) V Sigma^-1          (r x r)
    A~ w_i = lambda_i w_i
    v_i   = (1 / lambda_i) Y V Sigma^-1 w_i = Y c_i,   c_i = V Sigma^-1 w_i / lambda_i
    b     = argmin || sum_i b_i v_i - theta_0 ||:  (C^H Y^T Y C) b = C^H Y^T theta_0

Every product above is a block of the Gram ``G = S^T S``: ``X^T X = G[:-1, :-1]``, ``X^T Y = G[:-1, 1:]``,
``Y^T Y = G[1:, 1:]``, ``Y^T theta_0 = G[1:, 0]``. Only the modes themselves (``Y c_i``) need another pass
over the snapshots. The mean is not subtracted (that would remove the lambda = 1 content).

Truncation rule: keep the singular values ``sigma_i >= rtol * sigma_max`` (default ``rtol = 1e-7``; the
Gram squares the condition number, so float64 resolves about 1e-8 relative in sigma) and at most
``max_rank`` of them; untruncated DMD divides by tiny singular values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocator.errors import InvalidInputError
from allocator.koopman.snapshots import SnapshotStore

DEFAULT_RTOL = 1e-7


@dataclass(frozen=True)
class DMD:
    """Eigenvalues, the mode coefficients ``C`` (modes are ``Y C``), amplitudes and the kept rank."""

    eigenvalues: np.ndarray  # (r,) complex
    coefficients: np.ndarray  # (T-1, r) complex: mode i = sum_t C[t, i] theta_{t+1}
    amplitudes: np.ndarray  # (r,) complex
    singular_values: np.ndarray  # all singular values of X, descending
    rank: int
    rtol: float

    def index_closest_to_one(self) -> int:
        """The eigenvalue closest to 1 (not the largest modulus: spurious |lambda| > 1 appear early)."""
        return int(np.argmin(np.abs(self.eigenvalues - 1.0)))

    def mode(self, store: SnapshotStore, index: int) -> np.ndarray:
        """Mode ``index`` as a length-N complex vector (one pass over the snapshots)."""
        return store.combine(self.coefficients[:, index], rows=slice(1, None))[:, 0]

    def predicted_change(self, store: SnapshotStore, step: int = 0) -> np.ndarray:
        """``theta(step+1) - theta(step)`` predicted by the decomposition: ``sum_i (lambda_i - 1) lambda_i^step b_i v_i``.

        Complex-conjugate pairs sum to a real vector; the real part is returned.
        """
        weights = (self.eigenvalues - 1.0) * self.eigenvalues ** step * self.amplitudes
        return np.real(store.combine(self.coefficients @ weights, rows=slice(1, None))[:, 0])


def exact_dmd(store: SnapshotStore, *, rtol: float = DEFAULT_RTOL, max_rank: int | None = None,
              gram: np.ndarray | None = None) -> DMD:
    """Exact DMD of the window in ``store`` (see the module docstring)."""
    if store.count < 3:
        raise InvalidInputError(f"DMD needs at least 3 snapshots; the window has {store.count}")
    if not 0 < rtol < 1:
        raise InvalidInputError(f"rtol is {rtol!r}; expected a number in (0, 1)")
    g = store.gram() if gram is None else gram
    xx, xy, yy, y0 = g[:-1, :-1], g[:-1, 1:], g[1:, 1:], g[1:, 0]
    squared, vectors = np.linalg.eigh(xx)
    order = np.argsort(squared)[::-1]
    squared, vectors = np.clip(squared[order], 0.0, None), vectors[:, order]
    sigma = np.sqrt(squared)
    keep = int(np.sum(sigma >= rtol * sigma[0])) if sigma[0] > 0 else 0
    if max_rank is not None:
        keep = min(keep, max_rank)
    if keep == 0:
        raise InvalidInputError("the snapshots are all zero; DMD is undefined")
    v, s = vectors[:, :keep], sigma[:keep]
    projected = (v.T @ xy @ v) / np.outer(s, s)  # Sigma^-1 V^T X^T Y V Sigma^-1
    eigenvalues, w = np.linalg.eig(projected)
    with np.errstate(divide="ignore", invalid="ignore"):
        coefficients = (v / s) @ w / eigenvalues
    coefficients = np.where(np.isfinite(coefficients), coefficients, 0.0)
    normal = coefficients.conj().T @ yy @ coefficients
    rhs = coefficients.conj().T @ y0
    amplitudes = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    return DMD(eigenvalues, coefficients, amplitudes, sigma, keep, rtol)
