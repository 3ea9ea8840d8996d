"""The study scripts run end to end in their --smoke modes and write their result files."""

import json
import math

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
    early = [r for r in document["rows"] if r["study"] == "pre-convergence"]
    assert {r["criterion"] for r in early} == {"magnitude", "kmp", "gradient", "kgp", "gradient-window"}
    assert all(0.0 <= r[k] <= 1.0 for r in early for k in ("overlap_gradient_two_batches",
                                                           "overlap_kgp_window_gradient"))
    from experiments import koopman_report

    second = tmp_path.parent / (tmp_path.name + "-seed1")
    assert koopman_study.main(["--smoke", "--model", "mlp-2x100", "--dataset", "mnist", "--data-dir", str(idx_dir),
                               "--out", str(second), "--seed", "1"]) == 0
    assert koopman_report.main([str(tmp_path), "--out", str(tmp_path / "REPORT.md")]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "Seeds [0, 1] (2)" in report and "noise floor" in report
    row = next(line for line in report.splitlines() if line.startswith("| 1 | 2 |"))  # epoch 1, two seeds
    assert row.count("[") >= 4  # intervals over the two seeds


def test_window_gradient_of_one_minibatch_is_the_gradient_rule(idx_dir):
    """Averaged over one minibatch the window-averaged rule is |w * g| of that minibatch (the gradient criterion)."""
    import torch

    from allocator.data import load_dataset
    from allocator.models import get_model
    from allocator.pruning import Tensors, scores
    from allocator.pruning.criteria import ScoreContext
    from experiments.koopman_study import window_gradient_scores

    data = Tensors.from_dataset(load_dataset("mnist", data_dir=idx_dir, validation=100))
    torch.manual_seed(0)
    model = get_model("mlp-2x100").build()
    names = ["fc1.weight", "fc2.weight"]
    one = window_gradient_scores(model, names, data, 32, 1)
    reference = scores("gradient", model, names, ScoreContext(inputs=data.train_x[:32], targets=data.train_y[:32]))
    for name in names:
        assert torch.allclose(one[name], reference[name], rtol=1e-5, atol=1e-12)
    two = window_gradient_scores(model, names, data, 32, 2)
    assert not torch.allclose(two["fc1.weight"], one["fc1.weight"])  # a second minibatch moves the average


def test_regions_study_smoke(tmp_path, idx_dir):
    from experiments import regions_study

    assert regions_study.main(["--smoke", "--dataset", "mnist", "--data-dir", str(idx_dir), "--out", str(tmp_path),
                               "--allocations", "ours,uniform,synflow"]) == 0
    table = (tmp_path / "results.csv").read_text().splitlines()
    assert table[0].startswith("density,allocation")
    assert "test_patterns_mean" in table[0] and "line_pieces_mean_mean" in table[0]
    assert len(table) == 1 + 1 + 2 * 3  # header, dense, two densities x three rules
    summary = (tmp_path / "summary.md").read_text()
    assert "n0 = 2" in summary and "| regions per random line |" in summary  # why the slice bound is gone
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


def test_the_reports_corrections_and_within_density_correlation_against_independent_computations():
    import numpy as np
    from scipy.stats import false_discovery_control

    from experiments.statistics import benjamini_hochberg, holm, within_group_correlation

    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.random(int(rng.integers(1, 40))) ** 2
        assert np.allclose(benjamini_hochberg(list(p)), false_discovery_control(p, method="bh"))
        assert all(h >= b - 1e-15 for h, b in zip(holm(list(p)), benjamini_hochberg(list(p))))  # Holm is stricter
    x, y = rng.normal(size=60), rng.normal(size=60)
    groups = [i % 4 for i in range(60)]
    y = y + 0.5 * x + np.array(groups) * 3.0  # an effect within groups, plus a large group offset
    dummies = np.eye(4)[groups]
    residual_x = x - dummies @ np.linalg.lstsq(dummies, x, rcond=None)[0]
    residual_y = y - dummies @ np.linalg.lstsq(dummies, y, rcond=None)[0]
    assert within_group_correlation(x, y, groups) == pytest.approx(np.corrcoef(residual_x, residual_y)[0, 1])
    assert within_group_correlation(x, np.array(groups, float), groups) != within_group_correlation(x, y, groups)
    assert np.isnan(within_group_correlation([1, 2], [3, 4], ["a", "b"]))  # nothing varies within a group


def test_the_rivals_study_plans_its_grid_and_reuses_paper_1s_folders(capsys, tmp_path):
    from experiments.rivals_study import main

    assert main(["--dry-run", "--models", "mlp-2x100,lenet-300-100", "--datasets", "fashion-mnist", "--seeds", "2",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "magnitude: 1 data sets x 2 models x 2 seeds x 11 rules" in out and "440 cells, 0 on disk (0 stranded" in out
    assert "random: 1 data sets x 2 models" in out and "in all: 880 cells, 0 on disk (0 stranded), 880 to run" in out
    assert main(["--dry-run", "--models", "mlp-2x100", "--datasets", "fashion-mnist", "--seeds", "1",
                 "--no-control"]) == 0  # paper 1's folder on disk: its recipe is the grid's
    assert "on disk" in capsys.readouterr().out


def test_rivals_report_merges_budgets_marks_identical_allocations_and_corrects(tmp_path):
    """Synthetic cells: two densities with one budget are one experiment; a rule with ours' counts is 'same
    allocation' (never tested); a rule 1 pp worse on every seed is a Holm-significant win for ours."""
    import json

    from experiments import rivals_report
    from experiments.statistics import holm

    folder = tmp_path / "paper1" / "mnist" / "mlp" / "magnitude"
    (folder / "cells").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"config": {"criterion": "magnitude"}}))
    kept = {"ours": {"a": 3, "b": 2}, "uniform": {"a": 3, "b": 2}, "erk": {"a": 4, "b": 1}}
    for seed in range(6):
        for density in (0.002, 0.0019):  # both keep 5 weights
            for rule, shift in (("ours", 0.0), ("uniform", 0.0), ("erk", -0.01 - 0.001 * seed)):
                cell = {"seed": seed, "density": density, "allocation": rule, "criterion": "magnitude",
                        "kept": kept[rule], "ln_bound": 10.0 + shift, "test_accuracy": 0.5 + 0.01 * seed + shift}
                (folder / "cells" / f"seed{seed}-d{density}-{rule}-magnitude.json").write_text(json.dumps(cell))
    odd = folder / "cells" / "seed5-d0.002-erk-magnitude.json"  # a cell of seed 5 from another dense model
    odd.write_text(json.dumps({**json.loads(odd.read_text()), "dense_test_accuracy": 0.9}))
    out = tmp_path / "REPORT.md"
    assert rivals_report.main(["--root", str(tmp_path / "paper1"), "--out", str(out)]) == 0
    assert "mlp on mnist: seeds [5]" in out.read_text()
    text = out.read_text()
    assert "densities 0.0019 (same budget as 0.002) merged" in text
    analysis = rivals_report.analyse(tmp_path / "paper1")
    (uniform,) = analysis["secondary"]["uniform"]
    assert uniform["identical"] and uniform["verdict"] == "same allocation" and uniform["p"] != uniform["p"]  # nan
    (erk,) = analysis["secondary"]["erk"]
    assert erk["density"] == 0.002 and erk["pairs"] == 6 and abs(erk["mean"] - 0.0125) < 1e-12
    assert erk["verdict"] == "better" and erk["p_holm"] == holm([erk["p"]])[0]
    (primary,) = analysis["primary"]
    assert primary["other"] == "uniform" and primary["verdict"] == "same allocation"
    assert (tmp_path / "rivals-primary.png").stat().st_size > 1000
    assert "No random-pruning cells on disk yet" in text
    # the random-pruning control: its own family, never mixed into the magnitude grid's comparisons
    control = tmp_path / "paper1" / "mnist" / "mlp" / "random"
    (control / "cells").mkdir(parents=True)
    (control / "config.json").write_text(json.dumps({"config": {"criterion": "random"}}))
    for seed in range(6):
        for rule, shift in (("ours", 0.02), ("uniform", 0.0)):
            cell = {"seed": seed, "density": 0.002, "allocation": rule, "criterion": "random",
                    "kept": kept[rule] if rule == "ours" else {"a": 2, "b": 3}, "ln_bound": 10.0,
                    "test_accuracy": 0.4 + 0.01 * seed + shift + 0.001 * (seed % 2)}
            (control / "cells" / f"seed{seed}-d0.002-{rule}-random.json").write_text(json.dumps(cell))
    (again,) = rivals_report.analyse(tmp_path / "paper1")["secondary"]["uniform"]  # unchanged by the control
    assert again["identical"] and again["pairs"] == uniform["pairs"] == 6
    randomised = rivals_report.analyse(tmp_path / "paper1", "random")
    (row,) = randomised["secondary"]["uniform"]
    assert row["pairs"] == 6 and abs(row["mean"] - 0.02) < 1e-12 and row["verdict"] == "better"
    assert rivals_report.main(["--root", str(tmp_path / "paper1"), "--out", str(out)]) == 0
    assert "| mnist | mlp | 12 | 1 / 0 of 1 | 1 / 0 of 1 |" in out.read_text()


def test_rivals_report_projects_the_grids_missing_time_from_the_task_records(tmp_path):
    import json

    from experiments import rivals_report

    records = [{"dataset": "fashion-mnist", "model": "mlp-2x100", "criterion": "magnitude", "seconds": 100.0,
                "new_cells": 50}, {"dataset": "mnist-npm10k", "model": "mlp-2x100", "criterion": "magnitude",
                                   "seconds": 10.0, "new_cells": 50},
               {"dataset": "mnist-npm10k", "model": "mlp-2x200", "criterion": "magnitude", "seconds": 30.0,
                "new_cells": 0}]  # a resumed task that computed nothing: no measurement
    (tmp_path / "tasks.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    folder = tmp_path / "fashion-mnist" / "mlp-2x100" / "magnitude" / "cells"
    folder.mkdir(parents=True)
    (folder / "seed0-d0.2-ours-magnitude.json").write_text("{}")  # an unfinished seed with no checkpoint: stranded
    (folder / "seed1-d0.2-ours-magnitude.json").write_text("{}")  # one whose checkpoint is there: grows
    (folder.parent / "dense").mkdir()
    (folder.parent / "dense" / "seed1-0123abcd.pt").write_bytes(b"")
    records.append({"dataset": "mnist-npm10k", "model": "lenet5", "criterion": "magnitude", "seconds": 8.0,
                    "new_cells": 4})  # measured on one data set only: scaled to the other
    (tmp_path / "tasks.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{\"dataset\": \"cut")
    t = rivals_report.grid_time(tmp_path)
    rows = {(r["dataset"], r["model"], r["criterion"]): r for r in t["rows"]}
    assert t["cost_ratio"] == 10.0 and t["unreadable"] == 1
    assert rows[("fashion-mnist", "mlp-2x100", "magnitude")]["core_seconds_per_cell"] == 2.0
    assert rows[("fashion-mnist", "mlp-2x100", "magnitude")]["present"] == 2
    assert rows[("fashion-mnist", "mlp-2x100", "magnitude")]["stranded"] == 1
    assert rows[("mnist-npm10k", "mlp-2x100", "random")]["core_seconds_per_cell"] == 0.2  # the grid folder's cost
    assert rows[("mnist-npm10k", "mlp-2x100", "random")]["how"] == "borrowed"
    assert rows[("fashion-mnist", "lenet5", "magnitude")]["core_seconds_per_cell"] == 20.0  # 2 s x 10
    assert rows[("mnist-npm10k", "mlp-2x200", "magnitude")]["core_seconds_per_cell"] is None
    text = "\n".join(rivals_report.time_section(tmp_path))
    assert "| fashion-mnist | mlp-2x100 | magnitude | 1210 | 2 | 1 | 2.00 | 0.7 |" in text  # 1209 cells x 2 s
    assert "| mnist-npm10k | mlp-2x100 | random | 1210 | 0 | 0 | †0.20 | 0.1 |" in text
    assert "| fashion-mnist | lenet5 | magnitude | 1430 | 0 | 0 | ~20.00 | 7.9 |" in text
    assert "On disk 2 of 20680 cells (1 of them stranded); the 20679 to compute" in text
    assert "1 line(s) of tasks.jsonl did not parse" in text


def test_cnn_report_compares_each_of_ours_with_every_rule_once_paired_by_seed(tmp_path):
    """``comparisons`` against a hand computation: differences on the seeds both rules hold, ours against the guarded
    rule listed once (under ``ours``), the guarded rule against the others."""
    from experiments import cnn_report

    accuracy = {("ours", 0): 0.80, ("ours", 1): 0.82, ("ours-guarded:0.1", 0): 0.84, ("ours-guarded:0.1", 1): 0.83,
                ("lamp", 0): 0.83, ("lamp", 1): 0.86, ("lamp", 2): 0.90}  # lamp's seed 2 has no pair
    cells = tmp_path / "fashion-mnist" / "lenet5" / "magnitude" / "cells"
    cells.mkdir(parents=True)
    for (rule, seed), value in accuracy.items():
        (cells / f"seed{seed}-d0.01-{rule.replace(':', '@')}-magnitude.json").write_text(json.dumps(
            {"seed": seed, "density": 0.01, "allocation": rule, "test_accuracy": value, "kept": {"a": seed}}))
    folder = cells.parent
    ours = {r["rule"]: r for r in cnn_report.comparisons(folder, "ours")}
    guarded = {r["rule"]: r for r in cnn_report.comparisons(folder, "ours-guarded:0.1")}
    assert set(ours) == {"ours-guarded:0.1", "lamp"} and set(guarded) == {"lamp"}
    assert ours["lamp"]["pairs"] == 2 and ours["lamp"]["mean"] == pytest.approx(-0.035)
    # two pairs: t = mean / (sd / sqrt 2) with one degree of freedom, whose law is Cauchy: p = 1 - 2 atan|t| / pi
    t = -0.035 / (math.sqrt(2) * 0.005 / math.sqrt(2))
    assert ours["lamp"]["wins"] == 0 and ours["lamp"]["p"] == pytest.approx(1 - 2 * math.atan(abs(t)) / math.pi)
    assert guarded["lamp"]["mean"] == pytest.approx(((0.84 - 0.83) + (0.83 - 0.86)) / 2)
    assert guarded["lamp"]["wins"] == 1 and guarded["lamp"]["losses"] == 1
    assert ours["ours-guarded:0.1"]["mean"] == pytest.approx(((0.80 - 0.84) + (0.82 - 0.83)) / 2)
    # seed 1's lamp cell re-run on another dense model: it no longer pairs with ours' seed 1
    path = cells / "seed1-d0.01-lamp-magnitude.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "dense_test_accuracy": 0.88}))
    again = {r["rule"]: r for r in cnn_report.comparisons(folder, "ours")}
    assert again["lamp"]["pairs"] == 1 and again["lamp"]["other_dense"] == 1
    assert again["lamp"]["mean"] == pytest.approx(0.80 - 0.83)
    assert cnn_report.dense_models_per_seed(folder)[1] == {None: 2, 0.88: 1}


def test_cnn_report_timing_takes_dense_seconds_from_checkpoints_then_task_records(tmp_path):
    """``timing``: a model whose checkpoints are kept uses their ``train_seconds``; one without them the sweep's
    ``dense_train_seconds``; one with neither prints '-' (not nan) and projects cells only."""
    from experiments import cnn_report

    folders = []
    for model in ("lenet5", "vgg-small", "resnet8"):
        folder = tmp_path / "fashion-mnist" / model / "magnitude"
        (folder / "cells").mkdir(parents=True)
        (folder / "cells" / "seed0-d0.01-ours-magnitude.json").write_text(json.dumps(
            {"seed": 0, "density": 0.01, "allocation": "ours", "test_accuracy": 0.8, "seconds": 10.0}))
        folders.append(folder)
    (folders[0] / "dense").mkdir()
    (folders[0] / "dense" / "seed0.json").write_text(json.dumps({"seed": 0, "train_seconds": 100.0}))
    (tmp_path / "tasks.jsonl").write_text("\n".join(json.dumps(t) for t in [
        {"model": "lenet5", "dense_train_seconds": 999.0}, {"model": "vgg-small", "dense_train_seconds": 40.0},
        {"model": "vgg-small", "dense_train_seconds": 60.0}, {"model": "resnet8", "dense_train_seconds": None}])
        + '\n{"model": "vgg-small", "dense_train_sec')  # a line cut short by a killed run: skipped
    text = "\n".join(cnn_report.timing(tmp_path, folders))
    assert "| lenet5 | 1 | 100 | 1 | 10 |" in text  # the checkpoint's record wins over the task's
    assert "| vgg-small | 1 | 50 | 1 | 10 |" in text  # the median of the task records
    assert "| resnet8 | 1 | - | 1 | 10 |" in text and "nan" not in text
    from experiments.cnn_study import ALLOCATIONS, DENSITIES, QUICK

    # 5 seeds x every density x every rule x 10 s a cell, scaled from the quick profile's fine-tuning epochs to 15
    cells_only = 5 * len(DENSITIES) * len(ALLOCATIONS) * 10.0 * 15 / QUICK["finetune_epochs"] / 3600
    assert f"| resnet8 | 1 | - | 1 | 10 | {cells_only:.1f} |" in text
