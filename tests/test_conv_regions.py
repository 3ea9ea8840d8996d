"""The region oracle for programs (conv.md, oracle 4): exact counts of linear regions along random segments of tiny
pruned conv / pool / residual nets never exceed the per-instance bound; a ResNet computed as a plain chain of its
convs is caught exceeding it (the negative control).

A segment ``x(t) = a + t (c - a)``, ``t`` in [0, 1], is walked event by event: within a region every pre-activation
is affine in ``t`` (value and slope are carried through the net), so the next ReLU sign change or max-pool argmax
change is found exactly; the count is one plus the number of changes. Pooling regions are the argmax patterns of
``max(0, window)``. The per-instance bound is the program's with ``n0 = 1`` and point-mass rank laws at the actual
ranks of the pruned matrices, the first layer's rank taken on the segment (``rank T1 (c - a)``, 0 or 1).
On 2-D slices the count is the number of distinct activation patterns on a fine grid: a lower bound of the exact
count (every region is convex), held below the bound with ``n0 = 2``; the plain chain is caught there too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from allocator.bound.conv_rank import unrolled_matrix
from allocator.bound.program import ln_expected_bound_of_program
from allocator.network import ConvGeometry, Relu, ReluMaxPool, Residual, program_domains

pytestmark = pytest.mark.pure

TOL = 1e-9


class _Walk:
    """One forward pass at ``t`` with values and slopes; collects the pattern and the next event's distance."""

    def __init__(self) -> None:
        self.next_event = math.inf

    def _event(self, distances: np.ndarray) -> None:
        distances = distances[distances > TOL]
        if distances.size:
            self.next_event = min(self.next_event, float(distances.min()))

    def relu(self, v: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        on = (v > TOL) | ((np.abs(v) <= TOL) & (s > 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            self._event(np.where(on & (s < 0), v / -s, np.inf))
            self._event(np.where(~on & (s > 0), -v / s, np.inf))
        return np.where(on, v, 0.0), np.where(on, s, 0.0)

    def relu_max_pool(self, v: np.ndarray, s: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = np.concatenate((np.zeros((windows.shape[0], 1)), v[windows]), axis=1)
        slopes = np.concatenate((np.zeros((windows.shape[0], 1)), s[windows]), axis=1)
        best = values.max(axis=1, keepdims=True)
        tied = values >= best - TOL
        winner = np.argmax(np.where(tied, slopes, -np.inf), axis=1)
        rows = np.arange(windows.shape[0])
        va, sa = values[rows, winner][:, None], slopes[rows, winner][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            self._event(np.where(slopes > sa + 1e-15, (va - values) / (slopes - sa), np.inf).ravel())
        return va.ravel(), sa.ravel()


def _pool_windows(channels: int, height: int, width: int, size: int) -> np.ndarray:
    out = []
    for c in range(channels):
        for y in range(0, height - size + 1, size):
            for x in range(0, width - size + 1, size):
                out.append([c * height * width + (y + a) * width + (x + b) for a in range(size) for b in range(size)])
    return np.array(out)


def _count_regions(forward, a: np.ndarray, c: np.ndarray) -> int:
    t, count, direction = 0.0, 1, c - a
    while True:
        walk = _Walk()
        forward(walk, a + t * direction, direction)
        if t + walk.next_event >= 1.0:
            return count
        t += walk.next_event
        count += 1


def _pruned_conv(rng, geometry: ConvGeometry, density: float) -> tuple[np.ndarray, np.ndarray]:
    kernel = rng.normal(size=geometry.tensor_shape) * (rng.random(geometry.tensor_shape) < density)
    bias = np.repeat(rng.normal(size=geometry.out_channels) * 0.5, geometry.output_positions)
    return unrolled_matrix(geometry, kernel), bias


def _rank(matrix: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(matrix)) if matrix.any() else 0


def _bound(program, ranks) -> float:
    domains = program_domains(1, program, [max(r, 1) for r in ranks])

    def law(layer: int) -> np.ndarray:
        ln = np.full(ranks[layer] + 1, -np.inf)
        ln[ranks[layer]] = 0.0
        return ln

    return ln_expected_bound_of_program(1, program, domains, law)


def test_regions_of_pruned_residual_and_pool_nets_never_exceed_the_program_bound():
    rng = np.random.default_rng(2026)
    stem = ConvGeometry(1, 2, 3, 5, padding=1)
    block = ConvGeometry(2, 2, 3, 5, padding=1)
    pool_stem = ConvGeometry(1, 2, 3, 4, padding=1)
    windows = _pool_windows(2, 4, 4, 2)
    chain_violations, trials = 0, 0
    for trial in range(150):
        t0, b0 = _pruned_conv(rng, stem, rng.uniform(0.3, 1.0))
        # block densities include 0 (a conv pruned away): the skip keeps the dimension a plain chain would lose
        t1, b1 = _pruned_conv(rng, block, float(rng.choice([0.0, 0.05, 0.15, 0.3, 0.6])))
        t2, b2 = _pruned_conv(rng, block, float(rng.choice([0.0, 0.05, 0.15, 0.3, 0.6])))
        a, c = rng.normal(size=25) * 3, rng.normal(size=25) * 3

        def residual_net(walk, x, s):
            h, hs = walk.relu(t0 @ x + b0, t0 @ s)
            g, gs = walk.relu(t1 @ h + b1, t1 @ hs)
            walk.relu(t2 @ g + b2 + h, t2 @ gs + hs)

        count = _count_regions(residual_net, a, c)
        ranks = [_rank(t0 @ (c - a)[:, None]), _rank(t1), _rank(t2)]
        program = [Relu(0, 50), Residual(1, 50, 2, 50, shortcut_rank=50)]
        assert math.log(count) <= _bound(program, ranks) + 1e-9, (trial, count, ranks)
        chain = [Relu(0, 50), Relu(1, 50), Relu(2, 50)]  # the residual block as a plain chain: not a bound
        chain_violations += math.log(count) > _bound(chain, ranks) + 1e-9
        trials += 1

        p0, q0 = _pruned_conv(rng, pool_stem, rng.uniform(0.2, 1.0))
        linear = rng.normal(size=(3, 8)) * (rng.random((3, 8)) < 0.7)
        a, c = rng.normal(size=16) * 3, rng.normal(size=16) * 3

        def pool_net(walk, x, s):
            p, ps = walk.relu_max_pool(p0 @ x + q0, p0 @ s, windows)
            walk.relu(linear @ p, linear @ ps)

        count = _count_regions(pool_net, a, c)
        program = [ReluMaxPool(0, 32, 8, 4), Relu(1, 3)]
        assert math.log(count) <= _bound(program, [_rank(p0 @ (c - a)[:, None]), _rank(linear)]) + 1e-9
    assert chain_violations >= 3, f"the plain-chain ResNet was caught {chain_violations} times: the oracle is too weak"


def _patterns(values: list[np.ndarray]) -> np.ndarray:
    """One row of bits per point: the concatenated activation patterns (a region of the net is convex, so points
    with different patterns lie in different regions)."""
    return np.concatenate(values, axis=1)


def test_regions_on_2d_slices_never_exceed_the_program_bound():
    """2-D slices ``a + u (b - a) + v (c - a)`` over a 120 x 120 grid: distinct activation patterns (ReLU signs,
    max-pool argmax of ``max(0, window)``) are distinct regions, a lower bound on the slice's count, which never
    exceeds the program's bound with ``n0 = 2`` (first layer's rank on the slice); the plain chain is caught."""
    rng = np.random.default_rng(7)
    stem = ConvGeometry(1, 2, 3, 4, padding=1)
    block = ConvGeometry(2, 2, 3, 4, padding=1)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 120), np.linspace(0, 1, 120)), -1).reshape(-1, 2)
    caught = 0
    pool_rng = np.random.default_rng(11)
    for _ in range(100):
        t0, b0 = _pruned_conv(rng, stem, rng.uniform(0.3, 1.0))
        t1, b1 = _pruned_conv(rng, block, float(rng.choice([0.0, 0.05, 0.15, 0.3, 0.6])))
        t2, b2 = _pruned_conv(rng, block, float(rng.choice([0.0, 0.05, 0.15, 0.3, 0.6])))
        a, u, v = (rng.normal(size=16) * 3 for _ in range(3))
        directions = np.stack((u - a, v - a), axis=1)  # 16 x 2
        x = a[None, :] + grid @ directions.T
        pre0 = x @ t0.T + b0
        h = np.maximum(pre0, 0)
        pre1 = h @ t1.T + b1
        g = np.maximum(pre1, 0)
        pre2 = g @ t2.T + b2 + h
        count = len({row.tobytes() for row in _patterns([pre0 > 0, pre1 > 0, pre2 > 0])})
        ranks = [_rank(t0 @ directions), _rank(t1), _rank(t2)]
        domains_input = 2

        def bound(program) -> float:
            domains = program_domains(domains_input, program, [max(r, 1) for r in ranks])

            def law(layer: int) -> np.ndarray:
                ln = np.full(ranks[layer] + 1, -np.inf)
                ln[ranks[layer]] = 0.0
                return ln

            return ln_expected_bound_of_program(domains_input, program, domains, law)

        assert math.log(count) <= bound([Relu(0, 32), Residual(1, 32, 2, 32, shortcut_rank=32)]) + 1e-9
        caught += math.log(count) > bound([Relu(0, 32), Relu(1, 32), Relu(2, 32)]) + 1e-9
        # a pooled net on the same slice: argmax of max(0, window) per window, then a pruned ReLU layer
        p0, q0 = _pruned_conv(pool_rng, stem, pool_rng.uniform(0.2, 1.0))
        linear = pool_rng.normal(size=(3, 8)) * (pool_rng.random((3, 8)) < 0.7)
        z = x @ p0.T + q0
        windows = _pool_windows(2, 4, 4, 2)
        pieces = np.concatenate((np.zeros((len(x), windows.shape[0], 1)), z[:, windows]), axis=2)
        pooled = pieces.max(axis=2)
        pre = pooled @ linear.T
        count = len({row.tobytes() for row in _patterns([pieces.argmax(axis=2).astype(np.int8), pre > 0])})
        ranks = [_rank(p0 @ directions), _rank(linear)]
        assert math.log(count) <= bound([ReluMaxPool(0, 32, 8, 4), Relu(1, 3)]) + 1e-9
    assert caught >= 2, f"the plain-chain ResNet was caught {caught} times on 2-D slices"


def test_a_weak_skip_caps_the_residual_rank_and_the_oracle_sees_a_wrong_cap():
    """The residual rank cap kappa = min(n_y, min(k1, k2) + rank S) where the skip is not the identity: a selection
    (rank 13 of 25: the positions an option-A style shortcut carries, the rest zero) and a pruned 1x1-conv shortcut
    with its own rank. The bound holds on every segment; the same bound told the selection has rank 0 is caught
    below the counted regions (so a cap that ignored the skip's rank would be seen)."""
    rng = np.random.default_rng(17)
    stem = ConvGeometry(1, 1, 3, 5, padding=1)
    block = ConvGeometry(1, 1, 3, 5, padding=1)
    shortcut = ConvGeometry(1, 1, 1, 5)
    selection = np.diag((np.arange(25) % 2 == 0).astype(float))  # every other position carried: rank 13
    caught = 0
    for trial in range(200):
        t0, b0 = _pruned_conv(rng, stem, rng.uniform(0.5, 1.0))
        t1, b1 = _pruned_conv(rng, block, float(rng.choice([0.0, 0.0, 0.1, 0.3])))  # 0: the skip alone carries
        t2, b2 = _pruned_conv(rng, block, float(rng.choice([0.0, 0.1, 0.3])))
        s3, _ = _pruned_conv(rng, shortcut, 1.0)
        a, c = rng.normal(size=25) * 3, rng.normal(size=25) * 3
        ranks = [_rank(t0 @ (c - a)[:, None]), _rank(t1), _rank(t2), _rank(s3)]
        counted = _count_regions(_residual_net(t0, b0, t1, b1, t2, b2, selection), a, c)
        assert math.log(counted) <= _bound([Relu(0, 25), Residual(1, 25, 2, 25, shortcut_rank=13)], ranks) + 1e-9
        wrong = _bound([Relu(0, 25), Residual(1, 25, 2, 25, shortcut_rank=0)], ranks)  # the skip's rank ignored
        caught += math.log(counted) > wrong + 1e-9
        counted = _count_regions(_residual_net(t0, b0, t1, b1, t2, b2, s3), a, c)
        assert math.log(counted) <= _bound([Relu(0, 25), Residual(1, 25, 2, 25, shortcut_layer=3)], ranks) + 1e-9
    assert caught >= 3, f"a cap ignoring the skip's rank was caught {caught} times: the oracle is too weak"


def _residual_net(t0, b0, t1, b1, t2, b2, skip):
    """ReLU stem, then a basic block whose skip is the matrix ``skip`` (identity, selection or a 1x1 conv)."""
    def net(walk, x, s):
        h, hs = walk.relu(t0 @ x + b0, t0 @ s)
        g, gs = walk.relu(t1 @ h + b1, t1 @ hs)
        walk.relu(t2 @ g + b2 + skip @ h, t2 @ gs + skip @ hs)
    return net
