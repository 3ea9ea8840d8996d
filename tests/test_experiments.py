"""The study scripts run end to end in their --smoke modes and write their result files."""

import json

import pytest

pytestmark = [pytest.mark.torch, pytest.mark.solver]


def test_koopman_study_smoke(tmp_path):
    from experiments import koopman_study

    assert koopman_study.main(["--smoke", "--model", "mlp-2x100", "--dataset", "fashion-mnist", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    converged = [r for r in document["rows"] if r["study"] == "converged"]
    assert {r["criterion"] for r in converged} == {"magnitude", "kmp"}
    assert all(0.0 <= r["overlap_kmp_gmp"] <= 1.0 for r in converged)
    assert (tmp_path / "koopman_study.png").stat().st_size > 1000
    assert "Converged: KMP vs global magnitude" in (tmp_path / "summary.md").read_text()


def test_regions_study_smoke(tmp_path):
    from experiments import regions_study

    assert regions_study.main(["--smoke", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "results.csv").read_text().splitlines()
    assert table[0].startswith("density,allocation")
    assert len(table) == 1 + 1 + 2 * 2  # header, dense, two densities x two allocations
    assert (tmp_path / "regions_study.png").stat().st_size > 1000
