"""Exports and ``allocator verify`` in the default run: the exact-sparsity rule against the tools' own arithmetic
(truncation and rounding of IEEE doubles), the formats' keys, and verify against hand-made pruned models. The real
NNI, llm-compressor and SparseML run in ``tests/interop`` (``make test-interop``); torch.nn.utils.prune and
torch.ao.pruning, which come with torch, run here too."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocator.allocation.exporters.exact import exact_sparsity

TOOL_RULES = {"truncating (NNI, llm-compressor, RigL)": lambda n, s: n - int(n * s),
              "rounding (torch, SparseML, torch.ao)": lambda n, s: n - round(n * s)}


@pytest.mark.pure
def test_exact_sparsity_realises_every_count_of_small_tensors_in_both_kinds_of_tool():
    misses_naive = 0
    for weights in range(1, 401):
        for kept in range(weights + 1):
            sparsity = exact_sparsity(weights, kept)
            for rule in TOOL_RULES.values():
                assert rule(weights, sparsity) == kept, (weights, kept)
            misses_naive += TOOL_RULES["truncating (NNI, llm-compressor, RigL)"](weights, 1 - kept / weights) != kept
    assert misses_naive > 0  # the plain 1 - k/n does miss: the rule above is what makes these exact


@pytest.mark.pure
@given(st.integers(1, 2**40).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_exact_sparsity_holds_for_large_tensors(case):
    weights, kept = case
    sparsity = exact_sparsity(weights, kept)
    assert 0.0 <= sparsity <= 1.0
    for rule in TOOL_RULES.values():
        assert rule(weights, sparsity) == kept


@pytest.mark.pure
def test_exact_sparsity_endpoints_and_bad_counts():
    assert exact_sparsity(7, 7) == 0.0 and exact_sparsity(7, 0) == 1.0
    assert int(1000 * (1 - 66 / 1000)) == 933  # the trap of interop.md: one weight too many
    assert int(1000 * exact_sparsity(1000, 66)) == 934
    for weights, kept in [(0, 0), (5, 6), (5, -1), (5.0, 2)]:
        with pytest.raises(ValueError, match="accepted 0 <= kept <= weights"):
            exact_sparsity(weights, kept)


@pytest.fixture(scope="module")
def nested_allocation():
    """An allocation of a network whose layers sit in nested modules (``features.0.weight``)."""
    from allocator import Network
    from allocator.allocation import allocate

    network = Network(40, (30, 20, 5), names=("features.0.weight", "features.2.weight", "head.weight"))
    return allocate(network, density=0.2)


@pytest.mark.solver
def test_every_format_names_modules_as_its_tool_does_and_carries_the_counts(nested_allocation):
    from allocator.allocation.exporters import EXPORTERS, export_text

    layers = nested_allocation.layers
    for kind, (syntax, _, _) in EXPORTERS.items():
        text = export_text(nested_allocation, kind)
        if syntax == "json":
            document = json.loads(text)
            assert document["format"] == kind and document["allocation"].startswith("sha256:")
            assert [(e["name"], e["weights"], e["kept"]) for e in document["layers"]] == [
                (layer.name, layer.weights, layer.kept) for layer in layers]
        else:
            for layer in layers:
                assert f"#   {layer.name}: kept {layer.kept} of {layer.weights}\n" in text
    pruned = [layer for layer in layers if layer.kept < layer.weights]
    nni = json.loads(export_text(nested_allocation, "nni"))["config_list"]
    assert [e["op_names"] for e in nni] == [[layer.name.rpartition(".")[0]] for layer in pruned]
    torch_prune = json.loads(export_text(nested_allocation, "torch-prune"))["modules"]
    assert {m: e["kwargs"]["amount"] for m, e in torch_prune.items()} == {
        layer.name.rpartition(".")[0]: layer.weights - layer.kept for layer in pruned}
    torch_ao = json.loads(export_text(nested_allocation, "torch-ao"))["config"]
    assert [e["tensor_fqn"] for e in torch_ao] == [layer.name for layer in pruned]
    jax = json.loads(export_text(nested_allocation, "jaxpruner"))["custom_sparsity_map"]
    assert list(jax) == ["features/layers_0/kernel", "features/layers_2/kernel", "head/kernel"]  # every layer
    rigl = json.loads(export_text(nested_allocation, "rigl"))["custom_sparsity_map"]
    assert list(rigl) == ["features/0", "features/2", "head"]
    for mapping in (jax, rigl):
        for layer, sparsity in zip(layers, mapping.values()):
            assert int(layer.weights * sparsity) == layer.weights - layer.kept
    recipe = export_text(nested_allocation, "llm-compressor")
    assert recipe.count("MagnitudePruningModifier:") == len(pruned) and 'targets: ["features.0"]' in recipe
    assert export_text(nested_allocation, "sparseml-legacy").count("!GMPruningModifier") == len(pruned)


@pytest.mark.solver
def test_bad_formats_and_paths_are_refused_by_name(nested_allocation):
    from dataclasses import replace

    from allocator import InvalidInputError
    from allocator.allocation.exporters import check_export_path, export_text

    with pytest.raises(InvalidInputError, match="'sparseml' is unknown .renamed: sparseml-legacy"):
        export_text(nested_allocation, "sparseml")
    with pytest.raises(InvalidInputError, match="accepted: torch-prune, torch-ao, nni"):
        export_text(nested_allocation, "onnx")
    with pytest.raises(InvalidInputError, match="ending in .yaml or .yml"):
        check_export_path("sparseml-legacy", "recipe.txt")
    empty = replace(nested_allocation, layers=(replace(nested_allocation.layers[0], kept=0),)
                    + nested_allocation.layers[1:])
    with pytest.raises(InvalidInputError, match="'features.0.weight' keeps 0 weights, which JaxPruner cannot"):
        export_text(empty, "jaxpruner")


def run(capsys, *argv):
    from allocator.cli.main import main

    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def mlp_case(tmp_path_factory):
    """mlp-2x100 at density 0.1 with fc2 pinned to 1809 of 10000 kept (a count that truncating tools miss with
    1 - k/n), its allocation file and the pruned model's state dict (pruned by torch.nn.utils.prune)."""
    import torch

    from allocator.allocation import Constraints, allocate
    from allocator.allocation.file import save
    from allocator.models import get_model

    folder = tmp_path_factory.mktemp("verify")
    entry = get_model("mlp-2x100")
    allocation = allocate(entry.bound_network(), density=0.1, constraints=Constraints(pinned={"fc2.weight": 0.1809}))
    path = save(allocation, folder / "allocation.json")
    torch.manual_seed(0)
    model = entry.build()
    from torch.nn.utils import prune

    for layer in allocation.layers:
        module = model.get_submodule(layer.name.rpartition(".")[0])
        prune.l1_unstructured(module, "weight", amount=layer.weights - layer.kept)
    return allocation, path, model, folder


@pytest.mark.torch
@pytest.mark.solver
def test_verify_reads_every_form_of_a_pruned_model(capsys, mlp_case):
    import torch
    from torch.nn.utils import prune

    allocation, path, model, folder = mlp_case
    assert allocation.layers[1].kept == 1809
    raw = folder / "raw.pt"  # weight_orig x weight_mask, before prune.remove
    torch.save(model.state_dict(), raw)
    masks = folder / "masks.pt"  # NNI's shape: {module: {parameter: mask}}
    torch.save({name: {"weight": module.weight_mask} for name, module in model.named_children()}, masks)
    for module in model.children():
        prune.remove(module, "weight")
    plain = folder / "plain.pt"
    torch.save(model.state_dict(), plain)
    whole = folder / "model.pt"
    torch.save(model, whole)
    for argv in ([raw], [plain], [masks, "--masks"], [whole, "--trust-pickle"]):
        status, out, err = run(capsys, "verify", path, *argv)
        assert status == 0 and "all 3 tensors realise" in out and "1809" in out, (argv, out, err)
    status, out, err = run(capsys, "verify", path, whole)
    assert status == 2 and "pass --trust-pickle" in err and "\n" not in err.strip()


@pytest.mark.torch
@pytest.mark.solver
def test_verify_reports_each_mismatch_on_one_line_and_exits_1(capsys, mlp_case):
    import torch

    allocation, path, model, folder = mlp_case
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    state = {name.replace("_orig", ""): tensor * state.get(name.replace("_orig", "_mask"), 1)
             for name, tensor in state.items() if not name.endswith("_mask")}
    weight = state["fc2.weight"].view(-1)
    weight[(weight == 0).nonzero()[0]] = 0.5  # one pruned weight back
    del state["fc3.weight"]
    state["fc1.weight"] = state["fc1.weight"][:, :10]
    bad = folder / "bad.pt"
    torch.save(state, bad)
    status, out, _ = run(capsys, "verify", path, bad, "--quiet")
    lines = [line for line in out.splitlines() if line.startswith("MISMATCH")]
    assert status == 1 and len(lines) == 3, out
    assert "MISMATCH fc2.weight: realised 1810 kept, allocated 1809 (+1) of 10000" in lines
    assert any("fc1.weight: 1000 weights in the model, 78400 in the file" in line for line in lines)
    assert any("no tensor named 'fc3.weight'" in line for line in lines)
    assert "verify: 3 of 3 tensors differ" in out
    (folder / "junk.pt").write_text("not torch")
    status, _, err = run(capsys, "verify", path, folder / "junk.pt")
    assert status == 2 and "is not a torch.save file" in err
    status, _, err = run(capsys, "verify", path, folder / "absent.pt")
    assert status == 2 and "is not a file" in err


@pytest.mark.torch
@pytest.mark.solver
def test_export_command_and_its_snippets_prune_exactly_in_torch(capsys, mlp_case):
    """``allocator export`` writes the file and prints the snippet; the printed snippet, run as is, prunes a fresh
    model in torch.nn.utils.prune and torch.ao.pruning to exactly the allocation (the pinned trap included)."""
    import torch

    from allocator.models import get_model

    allocation, path, _, folder = mlp_case
    for kind in ("torch-prune", "torch-ao"):
        out_path = folder / f"{kind}.json"
        status, snippet, err = run(capsys, "export", path, "--format", kind, "--out", out_path, "--snippet")
        assert status == 0 and f"wrote {out_path}" in err, err
        assert snippet.startswith(f"export_path = {str(out_path)!r}")  # stdout: the snippet alone
        torch.manual_seed(1)
        model = get_model("mlp-2x100").build()
        exec(compile(snippet, kind, "exec"), {"model": model})
        for layer in allocation.layers:
            assert int(torch.count_nonzero(model.get_submodule(layer.name[:-7]).weight)) == layer.kept
        pruned = folder / f"{kind}.pt"
        torch.save(model.state_dict(), pruned)
        assert run(capsys, "verify", path, pruned)[0] == 0
    status, _, err = run(capsys, "export", path, "--format", "nni", "--snippet")
    assert status == 2 and "--snippet with --out FILE" in err
    status, out, err = run(capsys, "export", path, "--format", "sparseml-legacy", "--out", folder / "r.txt")
    assert status == 2 and "ending in .yaml or .yml" in err
    status, _, err = run(capsys, "solve", "--arch", "784,100,10", "--density", "0.1",
                         "--export", f"sparseml={folder / 'r.yaml'}")
    assert status == 2 and "renamed: sparseml-legacy" in err


@pytest.mark.pure
def test_the_readme_shows_every_snippet_as_the_tool_prints_it():
    from pathlib import Path

    from allocator.allocation.exporters import SNIPPETS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for kind, snippet in SNIPPETS.items():
        assert snippet in readme, f"README lacks the {kind} snippet of allocator export --snippet"


@pytest.mark.pure
def test_yaml_floats_read_back_as_the_same_double_and_jaxpruners_float32_count():
    import numpy as np
    import yaml

    from allocator.allocation.exporters.exact import float32_kept, float32_sparsity
    from allocator.allocation.exporters.formats import yaml_float

    for value in (5e-05, 1e-05, 0.99, 1.0, 0.0, 0.1 + 0.2, math.nextafter(1.0, 0.0), 2.5e-10):
        text = yaml_float(value)
        assert isinstance(yaml.safe_load(text), float) and yaml.safe_load(text) == value, text
    rng = np.random.default_rng(0)
    for weights in (1, 7, 150, 78400, 9_437_184):
        for kept in {1, weights, *(int(k) for k in rng.integers(1, weights + 1, 200))}:
            sparsity = float32_sparsity(weights, kept)
            assert sparsity is not None and float32_kept(weights, sparsity) == kept, (weights, kept)
            assert float(np.float32(sparsity)) == sparsity  # JaxPruner's float32 reads exactly this value
    assert float32_sparsity(102_760_448, 12_345_677) is None  # float32 steps of 8 near 1e8: out of reach


@pytest.mark.solver
def test_tool_limits_are_refused_by_name(nested_allocation):
    from dataclasses import replace

    from allocator import InvalidInputError
    from allocator.allocation.exporters import export_text

    huge = replace(nested_allocation, layers=(replace(nested_allocation.layers[0], weights=102_760_448,
                                                      kept=12_345_677),) + nested_allocation.layers[1:])
    with pytest.raises(InvalidInputError, match="cannot be realised by JaxPruner's float32 count"):
        export_text(huge, "jaxpruner")
    dense = replace(nested_allocation, layers=tuple(replace(layer, kept=layer.weights)
                                                    for layer in nested_allocation.layers))
    with pytest.raises(InvalidInputError, match="SparseML refuses a recipe without modifiers"):
        export_text(dense, "sparseml-legacy")
    empty = replace(nested_allocation, layers=(replace(nested_allocation.layers[0], kept=0),)
                    + nested_allocation.layers[1:])
    recipe = export_text(empty, "sparseml-legacy")  # SparseML refuses 1.0: the double below it, which rounds to all
    assert f"final_sparsity: {math.nextafter(1.0, 0.0)!r}" in recipe


@pytest.mark.torch
@pytest.mark.solver
def test_verify_reads_torch_ao_models_and_says_what_a_state_dict_lacks(capsys, mlp_case):
    import torch
    from torch.ao.pruning import WeightNormSparsifier

    from allocator.allocation.exporters import export_text
    from allocator.models import get_model

    allocation, path, _, folder = mlp_case
    torch.manual_seed(2)
    model = get_model("mlp-2x100").build()
    config = json.loads(export_text(allocation, "torch-ao"))["config"]
    sparsifier = WeightNormSparsifier(sparse_block_shape=(1, 1), zeros_per_block=1)
    sparsifier.prepare(model, config)
    sparsifier.step()  # masks made, not squashed
    state = folder / "ao-state.pt"
    torch.save(model.state_dict(), state)
    status, out, _ = run(capsys, "verify", path, state, "--quiet")
    assert status == 1 and out.count("squash_mask()") == 2, out  # fc1, fc2: dense originals, masks not saved
    sparsifier.squash_mask()
    torch.save(model.state_dict(), state)
    assert run(capsys, "verify", path, state)[0] == 0
    from torch.nn.utils import prune

    hooked = get_model("mlp-2x100").build()  # a whole model still under torch.nn.utils.prune's hooks
    for layer in allocation.layers:
        prune.l1_unstructured(hooked.get_submodule(layer.name[:-7]), "weight", amount=layer.weights - layer.kept)
    torch.save(hooked, folder / "hooked.pt")
    status, out, err = run(capsys, "verify", path, folder / "hooked.pt", "--trust-pickle")
    assert status == 0 and "all 3 tensors realise" in out, out + err
    masks = {"fc1": {"weight": torch.ones(100, 784)}}  # NNI masks only what it prunes; fc3 is dense by allocation
    (folder / "few-masks.pt").unlink(missing_ok=True)
    torch.save(masks, folder / "few-masks.pt")
    status, out, _ = run(capsys, "verify", path, folder / "few-masks.pt", "--masks", "--quiet")
    assert status == 1 and "MISMATCH fc1.weight: realised 78400" in out and "fc3" not in out
    assert "MISMATCH fc2.weight: no mask named 'fc2.weight'" in out
    bad = {"fc1.weight_orig": torch.ones(100, 784), "fc1.weight_mask": torch.ones(10, 10)}
    torch.save(bad, folder / "bad-mask.pt")
    status, out, err = run(capsys, "verify", path, folder / "bad-mask.pt", "--quiet")
    assert status == 1 and "the mask has 100 entries and the weights 78400" in out and "Traceback" not in out + err
