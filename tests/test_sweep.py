"""The sweep runner: parallel local backend, resume, and (when installed) Ray on a local instance."""

import json

import pytest

pytestmark = [pytest.mark.study, pytest.mark.torch, pytest.mark.solver]


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    from tests.conftest import write_fake_idx

    return write_fake_idx(tmp_path_factory.mktemp("idx-sweep"), seed=5, counts=(("train", 400), ("t10k", 100)))


def _spec(idx_dir, seeds):
    from allocator.study.sweep import SweepSpec

    return SweepSpec(datasets=("mnist",), models=("mlp-2x100",), densities={"mlp-2x100": (0.01, 0.002)},
                     allocations=("ours", "uniform"), seeds=seeds, train_epochs=1, finetune_epochs=1,
                     data_dirs={"mnist": str(idx_dir)})


def test_local_backend_runs_tasks_in_parallel_and_resumes(idx_dir, tmp_path):
    from allocator.study.sweep import run_sweep

    reports = run_sweep(_spec(idx_dir, (0, 1, 2)), tmp_path, backend="local", workers=2, say=lambda m: None)
    assert len(reports) == 3 and all(r["cells"] == 4 for r in reports)
    folder = tmp_path / "mnist" / "mlp-2x100" / "magnitude"
    assert len(list((folder / "cells").glob("*.json"))) == 12
    assert len(list((folder / "dense").glob("*.pt"))) == 3  # one dense model per seed
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["seeds"] == [0, 1, 2]
    assert {row["pairs"] for row in summary["paired_ours_minus_uniform"]} == {3}
    # resume: removing one cell and rerunning recomputes only that cell, with the same result
    victim = sorted((folder / "cells").glob("seed1-*ours*.json"))[0]
    before = json.loads(victim.read_text())
    victim.unlink()
    run_sweep(_spec(idx_dir, (0, 1, 2)), tmp_path, backend="serial", say=lambda m: None)
    after = json.loads(victim.read_text())
    assert after["test_accuracy"] == before["test_accuracy"]
    log = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    first, second = log[:3], log[3:]
    assert all(r["new_cells"] == 4 and r["dense_trained"] and r["dense_train_seconds"] > 0 for r in first)
    assert sorted(r["new_cells"] for r in second) == [0, 0, 1] and not any(r["dense_trained"] for r in second)
    assert len({r["sweep"] for r in first}) == 1 and first[0]["workers"] == 2


@pytest.mark.ray
@pytest.mark.slow
def test_ray_backend_on_a_local_instance(idx_dir, tmp_path):
    pytest.importorskip("ray")
    from allocator.study.sweep import run_sweep

    reports = run_sweep(_spec(idx_dir, (0, 1)), tmp_path, backend="ray", workers=2, say=lambda m: None)
    assert sorted(r["cells"] for r in reports) == [4, 4]
    folder = tmp_path / "mnist" / "mlp-2x100" / "magnitude"
    assert len(list((folder / "cells").glob("*.json"))) == 8


def test_bad_sweep_arguments(tmp_path):
    from allocator import InvalidInputError
    from allocator.study.sweep import SweepSpec, run_sweep

    spec = SweepSpec(datasets=("mnist",), models=("mlp-2x100",), densities={}, seeds=(0,))
    with pytest.raises(InvalidInputError, match="no densities given for model"):
        run_sweep(spec, tmp_path)
    with pytest.raises(InvalidInputError, match="backend 'spark' is unknown"):
        run_sweep(spec, tmp_path, backend="spark")


def test_a_failing_task_is_logged_and_the_others_complete(idx_dir, tmp_path, monkeypatch):
    import allocator.study.sweep as sweep

    real = sweep.run_task

    def flaky(task):
        if task.seed == 0:
            raise ValueError("boom in seed 0")
        return real(task)

    monkeypatch.setattr(sweep, "run_task", flaky)
    messages: list[str] = []
    with pytest.raises(RuntimeError, match=r"(?s)1 of 2 sweep tasks failed.*seed 0: ValueError: boom"):
        sweep.run_sweep(_spec(idx_dir, (0, 1)), tmp_path, backend="serial", say=messages.append)
    log = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert [r.get("failed") for r in log] == ["ValueError: boom in seed 0", None]
    assert log[1]["new_cells"] == 4 and any("FAILED" in m for m in messages)
