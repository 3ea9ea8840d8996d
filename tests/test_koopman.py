"""Koopman pruning without data: DMD on known linear systems and koopman.md's quadratic-loss sanity checks."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from allocator import InvalidInputError  # noqa: E402
from allocator.koopman import SnapshotStore, exact_dmd, koopman_scores, record_window  # noqa: E402
from allocator.pruning import ScoreContext, Tensors, scores  # noqa: E402
from allocator.pruning.criteria import global_kept  # noqa: E402

pytestmark = pytest.mark.torch


def _store(rows, in_memory=True, directory=None, names=("w",)):
    rows = np.asarray(rows)
    store = SnapshotStore(list(names), [(rows.shape[1],)] if len(names) == 1 else [(rows.shape[1] // 2,)] * 2,
                          in_memory=in_memory, directory=directory)
    for row in rows:
        store.append(row)
    return store


def test_gram_and_combine_match_dense_numpy(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((9, 1000)).astype(np.float32)
    on_disk = _store(rows, in_memory=False, directory=tmp_path)
    in_memory = _store(rows)
    dense = rows.astype(np.float64)
    for store in (on_disk, in_memory):
        assert np.allclose(store.gram(chunk=128), dense @ dense.T, rtol=1e-12)
        coefficients = rng.standard_normal((8, 3)) + 1j * rng.standard_normal((8, 3))
        assert np.allclose(store.combine(coefficients, rows=slice(1, None), chunk=100), dense[1:].T @ coefficients)
    assert (tmp_path / "snapshots.f32").stat().st_size == rows.nbytes
    on_disk.close()
    assert not (tmp_path / "snapshots.f32").exists()
    with pytest.raises(InvalidInputError, match="snapshot has 3 values"):
        in_memory.append(np.zeros(3))


def test_dmd_recovers_a_known_linear_system():
    rng = np.random.default_rng(1)
    true_eigenvalues = np.array([1.0, 0.9, 0.75, 0.5, -0.3, 0.6])
    basis = rng.standard_normal((6, 6))
    a = basis @ np.diag(true_eigenvalues) @ np.linalg.inv(basis)
    theta = [rng.standard_normal(6)]
    for _ in range(14):
        theta.append(a @ theta[-1])
    store = _store(np.array(theta, dtype=np.float32).astype(np.float64), names=("w",))
    store._rows = [np.asarray(t, dtype=np.float64) for t in theta]  # keep float64 rows for an exact check
    dmd = exact_dmd(store)
    assert dmd.rank == 6
    assert np.allclose(np.sort(dmd.eigenvalues.real), np.sort(true_eigenvalues), atol=1e-6)
    assert np.allclose(dmd.eigenvalues.imag, 0, atol=1e-6)
    # the decomposition reproduces the trajectory and its first step
    modes = np.stack([dmd.mode(store, i) for i in range(dmd.rank)], axis=1)
    for t in (0, 3, 10):
        assert np.allclose(np.real(modes @ (dmd.amplitudes * dmd.eigenvalues ** t)), theta[t], atol=1e-6)
    assert np.allclose(dmd.predicted_change(store, 0), theta[1] - theta[0], atol=1e-6)
    with pytest.raises(InvalidInputError, match="at least 3 snapshots"):
        exact_dmd(_store(np.ones((2, 4))))


class Quadratic:
    """L(theta) = 0.5 (theta - target)^T H (theta - target), H diagonal with four curvature levels."""

    def __init__(self, size=60, seed=2):
        rng = np.random.default_rng(seed)
        self.target = rng.standard_normal(size) * np.linspace(0.2, 3.0, size)
        self.curvature = rng.choice([0.05, 0.2, 0.5, 1.0], size)
        self.start = rng.standard_normal(size) * 2.0
        self.lr = 0.5

    def gradient(self, theta):
        return self.curvature * (theta - self.target)

    def trajectory(self, steps):
        theta = [self.start.copy()]
        for _ in range(steps):
            theta.append(theta[-1] - self.lr * self.gradient(theta[-1]))
        return np.array(theta)


def _mask(values, kept):
    return set(np.argsort(-np.abs(values), kind="stable")[:kept])


def test_quadratic_after_convergence_kmp_equals_magnitude():
    problem = Quadratic()
    path = problem.trajectory(700)
    result = koopman_scores(_store(path[-15:]))
    assert abs(result.eigenvalue - 1.0) < 1e-6
    current = path[-15]
    for kept in (6, 15, 30, 45):
        assert _mask(result.kmp["w"], kept) == _mask(current, kept)


def test_quadratic_early_window_kmp_predicts_the_final_mask():
    problem = Quadratic()
    path = problem.trajectory(14)
    result = koopman_scores(_store(path))
    final = problem.target  # where training converges
    for kept in (10, 20, 30):
        kmp_overlap = len(_mask(result.kmp["w"], kept) & _mask(final, kept)) / kept
        current_overlap = len(_mask(path[0], kept) & _mask(final, kept)) / kept
        assert kmp_overlap > current_overlap
        assert kmp_overlap >= 0.99


def test_quadratic_kgp_matches_the_gradient_rule():
    problem = Quadratic()
    path = problem.trajectory(14)
    result = koopman_scores(_store(path), step=0)
    expected = np.abs(path[0] * problem.lr * problem.gradient(path[0]))
    assert np.allclose(result.kgp["w"], expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_criteria_registry_and_global_threshold():
    problem = Quadratic()
    path = problem.trajectory(14)
    half = path.shape[1] // 2
    result = koopman_scores(_store(path, names=("a.weight", "b.weight")))
    model = torch.nn.Module()
    context = ScoreContext(extra={"koopman": result})
    kmp = scores("kmp", model, ["a.weight", "b.weight"], context)
    assert kmp["a.weight"].shape == (half,)
    counts = global_kept(kmp, 20)
    assert sum(counts.values()) == 20
    with pytest.raises(InvalidInputError, match="needs a Koopman decomposition"):
        scores("kgp", model, ["a.weight"], ScoreContext())
    with pytest.raises(InvalidInputError, match="holds no snapshots of c.weight"):
        scores("kmp", model, ["c.weight"], context)


def test_record_window_leaves_the_model_alone():
    from allocator.models import get_model

    torch.manual_seed(0)
    model = get_model("mlp-2x100").build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(640, 1, 28, 28)
    y = torch.randint(0, 10, (640,))
    data = Tensors(x, y, x[:64], y[:64], x[:64], y[:64])
    store = record_window(model, data, ["fc1.weight", "fc2.weight"], steps=12, stride=3, in_memory=True)
    assert store.count == 5  # the start and after steps 3, 6, 9, 12
    assert np.allclose(store.row(0)[:78400], model.fc1.weight.detach().numpy().ravel())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    result = koopman_scores(store)
    assert set(result.kmp) == {"fc1.weight", "fc2.weight"} and result.kmp["fc1.weight"].shape == (100, 784)
