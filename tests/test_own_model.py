"""A user's own model and data from the command line: solve -> export -> torch.nn.utils.prune -> validate, and the
README's Python path, run as written."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from allocator.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
MY_MLP = f"{ROOT / 'experiments' / 'examples' / 'my_mlp.py'}:MyMLP"

pytestmark = [pytest.mark.torch, pytest.mark.solver]


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _npz(path, seed=0, train=300, test=100):
    """A learnable npz data set: the label is a bright stripe in the image (as the IDX fixture)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", train), ("test", test)):
        labels = rng.integers(0, 10, count)
        images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label: 2 * label + 2, :] = 255
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    np.savez(path, **arrays)
    return path


def test_solve_exports_keyed_by_the_models_own_names_apply_in_torch_prune(capsys, tmp_path):
    import torch
    from torch.nn.utils import prune

    from experiments.examples.my_mlp import MyMLP

    status, out, err = run(capsys, "solve", "--model", MY_MLP, "--density", "0.005,0.002", "--out", tmp_path / "a.json",
                           "--export", f"torch-prune={tmp_path / 'tp.json'}", "--quiet")
    assert status == 0, err
    for suffix in ("-d0.005", "-d0.002"):
        allocation = json.loads((tmp_path / f"a{suffix}.json").read_text())
        assert allocation["network"]["layer_order"] == ["encoder.weight", "hidden.1.weight", "bottleneck.weight",
                                                         "head.weight"]
        exported = json.loads((tmp_path / f"tp{suffix}.json").read_text())
        model = MyMLP()
        for module, entry in exported["modules"].items():  # the real tool, as the README says
            prune.l1_unstructured(model.get_submodule(module), **entry["kwargs"])
        for name, layer in allocation["layers"].items():
            realised = int(torch.count_nonzero(model.get_submodule(name.rpartition(".")[0]).weight))
            assert realised == layer["kept"], name


@pytest.mark.study
def test_validate_an_own_model_on_npz_data_and_a_solved_allocation(capsys, tmp_path):
    data = _npz(tmp_path / "mine.npz")
    status, _, err = run(capsys, "solve", "--model", MY_MLP, "--density", "0.01", "--min-density", "0.008",
                         "--out", tmp_path / "constrained.json", "--quiet")
    assert status == 0, err
    out_dir = tmp_path / "run"
    argv = ["validate", "--model", MY_MLP, "--dataset", f"npz:{data}", "--allocation", tmp_path / "constrained.json",
            "--allocations", "ours,uniform,uniform-gale", "--seeds", "2", "--epochs", "2", "--finetune-epochs", "1",
            "--save-models", "--label", "own model, own data", "--out", out_dir]
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    summary = json.loads((out_dir / "summary.json").read_text())
    rules = {row["allocation"] for row in summary["table"]}
    assert rules == {"ours", "uniform", "file-constrained"}  # uniform-gale is unavailable at this budget ...
    assert "uniform-gale at density 0.01" in out  # ... and the table says so
    assert set(summary["paired_ours_minus"]) == {"uniform", "file-constrained"}
    assert summary["label"] == "own model, own data"
    assert (out_dir / "allocations" / "my_mlp-MyMLP-d0.01.json").is_file()  # inside the run folder, a portable name
    assert not list((ROOT / "experiments" / "examples").glob("*MyMLP-d*.json"))  # not next to the model file
    cell = json.loads((out_dir / "cells" / "seed0-d0.01-file-constrained-magnitude.json").read_text())
    constrained = json.loads((tmp_path / "constrained.json").read_text())
    assert cell["kept"] == {n: l["kept"] for n, l in constrained["layers"].items() if l["prunable"]}
    import torch

    state = torch.load(out_dir / cell["model_file"])
    assert {n: int(torch.count_nonzero(state[n])) for n in cell["kept"]} == cell["kept"]
    # a cell file cut short is computed again, and the run says so
    path = out_dir / "cells" / "seed1-d0.01-ours-magnitude.json"
    before = json.loads(path.read_text())
    path.write_text(path.read_text()[:40])
    status, _, err = run(capsys, *argv[:-2], "--out", out_dir)  # not quiet: progress goes to stderr
    assert status == 0
    assert "unreadable or incomplete; computing the cell again" in err and "7 of 8 cells are already done" in err
    assert json.loads(path.read_text())["test_accuracy"] == before["test_accuracy"]


def test_model_sources_refuse_in_one_line(capsys, tmp_path):
    import torch

    from experiments.examples.my_mlp import MyMLP

    whole = tmp_path / "whole.pt"
    torch.save(MyMLP(), whole)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a model")
    cases = [
        (["--model", str(whole)], "runs code from the file; pass --trust-model-file"),
        (["--model", str(garbage), "--trust-model-file"], "could not be read as a saved model"),
        (["--model", "no_such_module:Factory"], "cannot import 'no_such_module'"),
        (["--model", f"{ROOT / 'experiments' / 'examples' / 'my_mlp.py'}:Nope"], "has no callable 'Nope'"),
        (["--model", MY_MLP, "--input-shape", "1,2,3"], "does not take inputs of shape 1,2,3"),
        (["--model", MY_MLP, "--input-shape", "a,b"], "--input-shape 'a,b' is not comma-separated"),
    ]
    for extra, fragment in cases:
        status, out, err = run(capsys, "solve", *extra, "--density", "0.01", "--out", tmp_path / "x.json")
        assert status == 2 and fragment in err and err.count("\n") == 1 and "Traceback" not in err, (extra, err)
        assert not (tmp_path / "x.json").exists()
    status, out, err = run(capsys, "solve", "--model", whole, "--trust-model-file", "--density", "0.01", "--quiet")
    assert status == 0 and "encoder.weight" in out


@pytest.mark.data
@pytest.mark.study
def test_the_readme_python_path_runs_as_written(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Your own model"):text.index("## Validation on real data")]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    kept = json.loads((tmp_path / "my-allocation.json").read_text())["layers"]
    assert "test accuracy" in out
    assert all(f"'{name}': {layer['kept']}" in out for name, layer in kept.items() if layer["prunable"])
