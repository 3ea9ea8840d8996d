import json
import subprocess
import sys

import pytest

from allocator.bound.recursion import bound_for_ranks_by_enumeration
from allocator.cli.main import main


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.pure
def test_bound_summary(capsys):
    status, out, err = run(capsys, "bound", "--arch", "784,100,100,10", "--density", "0.001,0.001,1")
    assert status == 0 and err == ""
    assert "ln E[B]   = 119.8049 nats" in out
    assert "log2 E[B] = 172.8419" in out
    assert "E[B]      = 1.073e+52" in out
    assert "papers' convention" in out


@pytest.mark.pure
def test_bound_json(capsys):
    status, out, _ = run(
        capsys, "bound", "--arch", "784,100,100,10", "--density", "0.001", "--json", "--exclude-output-layer"
    )
    document = json.loads(out)
    assert status == 0
    for key in ("ln_bound", "log2_bound", "rank_model", "include_output_layer", "widths", "densities"):
        assert key in document
    assert document["densities"] == [0.001, 0.001, 1.0]  # single value: prunable layers only
    assert document["include_output_layer"] is False
    assert document["widths"] == [100, 100, 10]


@pytest.mark.pure
def test_bound_model_name_and_structural(capsys):
    status, out, _ = run(
        capsys, "bound", "--model", "mlp-2x100", "--density", "0.01", "--rank-model", "structural",
        "--samples", "16", "--json",
    )
    document = json.loads(out)
    assert status == 0 and document["structural_samples"] == 16
    assert document["rank_model_options"] == {"samples": 16, "seed": 0, "reduce_variance": True}


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["bound", "--arch", "784,0,10", "--density", "0.1"], "width of weight layer 1 is 0"),
        (["bound", "--arch", "784,100,10", "--density", "0.1,2"], "density of fc2.weight is 2.0"),
        (["bound", "--arch", "784,100,10", "--density", "0.1,0.1,1"], "3 densities given for 2 weight layers"),
        (["bound", "--arch", "784,100,10", "--density", "abc"], "argument --density: 'abc' is not a number"),
        (["bound", "--arch", "784,100,10"], "--density"),
        (["bound", "--model", "nope", "--density", "0.1"], "model 'nope' is not registered"),
        (["bound", "--arch", "4,3,2", "--density", "1", "--rank-model", "x"], "argument --rank-model"),
        (["bound", "--arch", "4,3,2", "--density", "1", "--rank-model", "dense", "--paper-p0"], "--paper-p0"),
        (["bound", "--arch", "4,3,2", "--density", "1", "--samples", "0"], "argument --samples"),
        (["frobnicate"], "invalid choice"),
    ],
)
@pytest.mark.pure
def test_errors_are_one_line_exit_2(capsys, argv, fragment):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and fragment in err
    assert "Traceback" not in err


@pytest.mark.pure
def test_console_script_and_no_torch_import():
    result = subprocess.run(
        [sys.executable, "-m", "allocator", "bound", "--arch", "4,3,2", "--density", "1,1", "--rank-model", "dense",
         "--exact"],
        capture_output=True, text=True, check=True,
    )
    value = bound_for_ranks_by_enumeration(4, [3, 2], [3, 2])
    assert f"E[B]      = {value:.3e}" in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, allocator, allocator.bound, allocator.cli.main, allocator.models; "
         "print('torch' in sys.modules, 'pyomo' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.split() == ["False", "False"]


@pytest.mark.solver
def test_solve_table_file_and_exports(capsys, tmp_path):
    out = tmp_path / "alloc.json"
    nni = tmp_path / "nni.json"
    status, stdout, _ = run(
        capsys, "solve", "--arch", "784,100,100,10", "--density", "0.001", "--out", str(out),
        "--export", f"nni={nni}", "--quiet",
    )
    assert status == 0
    assert "ours kept" in stdout and "uniform kept" in stdout and "erk kept" in stdout
    assert "certificate:" in stdout and "MIP: optimal" in stdout
    document = json.loads(out.read_text())
    kept = [document["layers"][name]["kept"] for name in ("fc1.weight", "fc2.weight")]
    assert sum(kept) == document["budget"]["kept"] == 88
    assert f"ours {document['objective']['ln_bound']:.4f}"[5:] in stdout
    assert json.loads(nni.read_text())["config_list"][0]["op_names"] == ["fc1"]


@pytest.mark.solver
def test_solve_json_and_model_name(capsys):
    status, stdout, stderr = run(capsys, "solve", "--model", "mlp-2x100", "--sparsity", "0.999", "--json",
                                 "--baselines", "uniform")
    document = json.loads(stdout)
    assert status == 0 and stderr == ""  # no progress lines with --json
    assert document["budget"]["given_as"] == "sparsity"
    assert set(document["baselines"]) == {"uniform"}
    assert document["objective"]["ln_bound"] >= document["baselines"]["uniform"]["ln_bound"]


@pytest.mark.solver
@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--density", "0"], "budget density is 0.0"),
        (["--density", "0.001", "--kept", "3"], "not allowed with argument"),
        (["--kept", "10", "--min-kept", "20"], "below what the constraints require"),
        (["--density", "0.01", "--pin", "fc9.weight=0.1"], "'fc9.weight', which is not a prunable layer"),
        (["--density", "0.01", "--pin", "0.1"], "NAME=DENSITY"),
        (["--density", "0.01", "--min-density", "x"], "argument --min-density: 'x' is not a density"),
        (["--density", "0.01", "--export", "onnx=a.txt"], "argument --export"),
        (["--density", "0.01", "--baselines", "magic"], "baseline 'magic' is unknown"),
        (["--density", "0.01", "--time-limit", "0"], "time limit is 0.0 s"),
        (["--density", "0.01", "--certificate-seconds", "-1"], "certificate time is -1.0 s"),
        (["--density", "0.01", "--certificate-seconds", "nan"], "certificate time is nan s"),
    ],
)
def test_solve_errors_are_one_line(capsys, argv, fragment):
    status, out, err = run(capsys, "solve", "--arch", "784,100,100,10", *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--density", "0.01", "--allocations", "ours,magic"], "allocation 'magic' is unknown"),
        (["--density", "0.01", "--criterion", "oracle"], "criterion 'oracle' is unknown"),
        (["--density", "2"], "density 2.0 is outside (0, 1]"),
        (["--density", "0.01", "--model", "vgg"], "model 'vgg' is not registered"),
        (["--density", "0.01", "--select-on", "best"], "argument --select-on"),
        (["--density", "0.01", "--dataset", "mnist"], "mnist needs --data-dir"),
    ],
)
@pytest.mark.torch
def test_validate_errors_are_one_line(capsys, tmp_path, argv, fragment):
    status, out, err = run(capsys, "validate", "--out", str(tmp_path / "run"), "--quiet", *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err


@pytest.mark.pure
def test_bound_json_is_strict_when_the_bound_is_zero(capsys):
    status, out, _ = run(capsys, "bound", "--arch", "4,3,2", "--density", "0,1", "--paper-p0", "--json")
    document = json.loads(out, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert status == 0 and document["ln_bound"] is None and document["log2_bound"] is None


@pytest.mark.solver
def test_unwritable_outputs_fail_before_solving(capsys, tmp_path, monkeypatch):
    from allocator.allocation import api

    monkeypatch.setattr(api, "solve", lambda *a, **k: pytest.fail("solved before checking the output path"))
    for argv, fragment in [(["--out", str(tmp_path)], "is a directory"),
                           (["--export", f"nni={tmp_path}"], "is a directory"),
                           (["--out", "/proc/nope/x.json"], "cannot write '/proc/nope/x.json'")]:
        status, out, err = run(capsys, "solve", "--arch", "784,100,100,10", "--density", "0.01", *argv)
        assert status == 2 and out == "" and err.count("\n") == 1 and fragment in err
