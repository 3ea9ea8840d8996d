"""The study scripts run end to end in their --smoke modes and write their result files."""

import json

import pytest

pytestmark = [pytest.mark.study, pytest.mark.torch, pytest.mark.solver]


def test_koopman_study_smoke(tmp_path, idx_dir):
    from experiments import koopman_study

    assert koopman_study.main(["--smoke", "--model", "mlp-2x100", "--dataset", "mnist", "--data-dir", str(idx_dir),
                               "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    converged = [r for r in document["rows"] if r["study"] == "converged"]
    assert {r["criterion"] for r in converged} == {"magnitude", "kmp"}
    assert all(0.0 <= r["overlap_kmp_gmp"] <= 1.0 for r in converged)
    assert (tmp_path / "koopman_study.png").stat().st_size > 1000
    assert "Converged: KMP vs global magnitude" in (tmp_path / "summary.md").read_text()


def test_regions_study_smoke(tmp_path, idx_dir):
    from experiments import regions_study

    assert regions_study.main(["--smoke", "--dataset", "mnist", "--data-dir", str(idx_dir), "--out", str(tmp_path)]) == 0
    table = (tmp_path / "results.csv").read_text().splitlines()
    assert table[0].startswith("density,allocation")
    assert len(table) == 1 + 1 + 2 * 2  # header, dense, two densities x two allocations
    assert (tmp_path / "regions_study.png").stat().st_size > 1000


def test_paper1_study_and_report_smoke(tmp_path, idx_dir):
    """The sweep (batched engine) and the report end to end on the small IDX fixture, one tiny grid."""
    from experiments import paper1_report, paper1_study

    out = tmp_path / "paper1"
    assert paper1_study.main(["--smoke", "--models", "mlp-2x100", "--datasets", "mnist", "--data-dir",
                              f"mnist={idx_dir}", "--backend", "serial", "--workers", "1", "--out", str(out)]) == 0
    cells = list((out / "mnist" / "mlp-2x100" / "magnitude" / "cells").glob("*.json"))
    assert len(cells) == 2 * 2 * 5  # seeds x densities x allocations
    assert paper1_report.main(["--root", str(out)]) == 0
    report = (out / "REPORT.md").read_text()
    assert "## mlp-2x100 on mnist (magnitude)" in report and "ours - uniform (pp)" in report
    assert "| mnist | mlp-2x100 | 2 |" in report  # two whole-seed tasks timed from tasks.jsonl
    assert (out / "ours_minus_uniform.png").stat().st_size > 1000
