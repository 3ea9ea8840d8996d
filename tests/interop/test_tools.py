"""Every export applied by the real tool, through the very snippet the README and ``allocator export --snippet``
print, to registry models at several budgets (pins that hit counts where a truncating tool would keep one weight
too many among them); ``allocator verify`` then checks realised == allocated on every weight tensor, and so does a
plain count of the non-zeros.

``make test-interop`` runs this file once per environment: ``--tool torch`` in the project's own (torch.nn.utils.prune
and torch.ao.pruning), ``--tool nni|llmcompressor|sparseml-legacy`` in theirs (``tests/interop/*.txt``). In its own
environment a tool that does not import is a failure, not a skip.
"""

from __future__ import annotations

import importlib.metadata
import json
import math

import pytest

pytestmark = [pytest.mark.interop, pytest.mark.torch]

FORMATS = {"torch": ("torch-prune", "torch-ao"), "nni": ("nni",), "llmcompressor": ("llm-compressor",),
           "sparseml-legacy": ("sparseml-legacy",)}
DISTRIBUTIONS = {"torch": "torch", "nni": "nni", "llmcompressor": "llmcompressor", "sparseml-legacy": "sparseml"}


def naive_trap(weights: int, kept: int) -> bool:
    """Whether the plain double ``1 - kept / weights`` makes a truncating tool keep one weight too many."""
    return int(weights * (1.0 - kept / weights)) != weights - kept


def first_trap(weights: int, start: int) -> int:
    return next(k for k in range(start, weights) if naive_trap(weights, k))


def _cases():
    """(model name, allocate() keywords): MLPs and a CNN with its convolutions inside the bound."""
    from allocator.allocation import Constraints

    def pin(name: str, weights: int, start: int) -> Constraints:
        return Constraints(pinned={name: first_trap(weights, start) / weights})

    return [
        ("mlp-2x100", {"density": 0.05}),
        ("mlp-2x100", {"density": 0.002}),
        ("mlp-2x100", {"density": 0.1, "constraints": pin("fc2.weight", 100 * 100, 1000)}),  # 1809 of 10000
        ("lenet-300-100", {"density": 0.1, "constraints": pin("fc2.weight", 300 * 100, 1000)}),  # 1979 of 30000
        ("lenet5", {"density": 0.05, "constraints": pin("conv1.weight", 150, 10)}),  # a conv: 22 of 150
        ("lenet5", {"density": 0.01}),
        ("mlp-2x100", {"density": 0.01, "constraints": Constraints(min_kept=0, pinned={"fc2.weight": 1e-5})}),  # fc2 kept 0
    ]


@pytest.fixture(scope="module")
def tool(request):
    name = request.config.getoption("--tool")
    if name not in FORMATS:
        raise pytest.UsageError(f"--tool {name!r}: accepted {', '.join(FORMATS)}")
    return name


@pytest.fixture(scope="module")
def allocations():
    from allocator.allocation import allocate
    from allocator.models import get_model

    solved = []
    for model_name, keywords in _cases():
        allocation = allocate(get_model(model_name).bound_network(), **keywords)
        solved.append((model_name, allocation))
    return solved


def test_the_tool_is_installed_in_its_environment(tool):
    version = importlib.metadata.version(DISTRIBUTIONS[tool])  # PackageNotFoundError fails the run
    print(f"{tool}: {DISTRIBUTIONS[tool]} {version}")


def test_the_budgets_include_counts_that_trap_truncating_tools_and_a_layer_kept_at_0(allocations):
    assert any(layer.kept == 0 for _, allocation in allocations for layer in allocation.layers)
    traps = [(name, layer.name, layer.kept) for name, allocation in allocations for layer in allocation.layers
             if layer.kept < layer.weights and naive_trap(layer.weights, layer.kept)]
    assert len(traps) >= 2, traps  # the pins above: without them this file would not test the nudged sparsity


def _apply(kind: str, allocation, model, tmp_path):
    from allocator.allocation.exporters import EXPORTERS, export_text, snippet_for

    path = tmp_path / f"{kind}.{EXPORTERS[kind][0]}"  # SparseML reads a recipe by its extension
    path.write_text(export_text(allocation, kind))
    exec(compile(snippet_for(kind, str(path)), f"<snippet {kind}>", "exec"), {"model": model})
    return path


def _verify(capsys, allocation_path, model, tmp_path):
    import torch

    from allocator.cli.main import main

    pruned = tmp_path / "pruned.pt"
    torch.save(model.state_dict(), pruned)
    capsys.readouterr()
    status = main(["verify", str(allocation_path), str(pruned)])
    return status, capsys.readouterr().out


@pytest.mark.parametrize("case", range(len(_cases())))
def test_each_export_realises_the_allocation_exactly_in_the_real_tool(tool, allocations, case, capsys, tmp_path):
    import torch

    from allocator.allocation.file import dumps
    from allocator.models import get_model

    model_name, allocation = allocations[case]
    allocation_path = tmp_path / "allocation.json"
    allocation_path.write_text(dumps(allocation))
    for kind in FORMATS[tool]:
        torch.manual_seed(case)
        model = get_model(model_name).build()
        _apply(kind, allocation, model, tmp_path)
        realised = {name: int(torch.count_nonzero(parameter)) for name, parameter in model.named_parameters()}
        for layer in allocation.layers:  # the plain count, independent of verify
            assert realised[layer.name] == layer.kept, (kind, model_name, layer.name)
        status, out = _verify(capsys, allocation_path, model, tmp_path)
        assert status == 0 and "realise" in out, out


TRUNCATING = {"nni", "llm-compressor"}  # int(n * s); torch.ao and SparseML round


def test_the_naive_sparsity_misses_in_truncating_tools_only(tool, allocations, capsys, tmp_path, monkeypatch):
    """The oracle can fail: with ``1 - kept / weights`` written, the truncating tools keep one weight too many on
    the trap layer and verify says so with exit 1; the rounding tools still realise it exactly (interop.md)."""
    import torch

    import allocator.allocation.exporters.formats as formats
    from allocator.allocation.file import dumps
    from allocator.models import get_model

    monkeypatch.setattr(formats, "sparsity_of", lambda layer: 1.0 - layer.kept / layer.weights)
    model_name, allocation = allocations[2]  # the pinned trap on fc2 of mlp-2x100
    allocation_path = tmp_path / "allocation.json"
    allocation_path.write_text(dumps(allocation))
    for kind in FORMATS[tool]:
        if kind == "torch-prune":
            continue  # it writes int counts, not sparsities
        torch.manual_seed(0)
        model = get_model(model_name).build()
        _apply(kind, allocation, model, tmp_path)
        status, out = _verify(capsys, allocation_path, model, tmp_path)
        if kind in TRUNCATING:
            assert status == 1 and "MISMATCH fc2.weight: realised 1810 kept, allocated 1809 (+1)" in out, out
        else:
            assert status == 0, out


def test_exports_carry_integer_counts_for_every_layer(tool, allocations):
    from allocator.allocation.exporters import export_text

    _, allocation = allocations[0]
    for kind in FORMATS[tool]:
        text = export_text(allocation, kind)
        for layer in allocation.layers:
            if text.lstrip().startswith("{"):
                entry = next(e for e in json.loads(text)["layers"] if e["name"] == layer.name)
                assert (entry["weights"], entry["kept"]) == (layer.weights, layer.kept)
                assert math.isclose(entry["sparsity"], 1 - layer.kept / layer.weights, abs_tol=1e-15)
            else:
                assert f"{layer.name}: kept {layer.kept} of {layer.weights}" in text
