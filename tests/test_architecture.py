"""The seams the architecture issue created: layer specs, kernel-aware ERK, rank laws by layer kind, the objective
and describer registries, validated solver options, seeds, the shared training loop, and the import layering."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

from allocator import InvalidInputError, Network
from allocator.network import LayerSpec


def _conv_network() -> Network:
    """A conv layer (6 out channels, 3 in channels, 3x3 kernel, 26x26 outputs) then two linear layers."""
    return Network(27, (6, 20, 10), ("conv.weight", "fc1.weight", "fc2.weight"), (True, True, False),
                   flops_per_weight=(676.0, 1.0, 1.0), kernels=((3, 3), (), ()))


@pytest.mark.pure
def test_layer_specs_carry_kind_shape_kernel_and_cost():
    conv, fc1, fc2 = _conv_network().layers
    assert (conv.kind, conv.rows, conv.cols, conv.kernel, conv.tensor_shape) == ("conv", 6, 27, (3, 3), (6, 3, 3, 3))
    assert conv.weights == 162 and conv.flops_per_weight == 676.0 and conv.prunable and conv.in_bound
    assert (fc1.kind, fc1.tensor_shape, fc1.kernel) == ("linear", (20, 6), ())
    assert not fc2.prunable
    with pytest.raises(InvalidInputError, match="not a multiple of its kernel size 9"):
        Network(28, (6, 10), kernels=((3, 3), ()))
    with pytest.raises(InvalidInputError, match="kernel of fc1.weight is"):
        Network(27, (6, 10), kernels=((0, 3), ()))


@pytest.mark.pure
def test_compression_ratio_counts_every_parameter():
    network = Network.from_arch("784,100,100,10")
    all_parameters = 78400 + 10000 + 1000 + 100 + 100 + 10
    assert network.all_parameters == all_parameters
    assert network.compression_ratio(88) == pytest.approx(all_parameters / (all_parameters - 88400 + 88))


@pytest.mark.pure
def test_rank_laws_are_looked_up_by_layer_kind():
    from allocator.bound import RankModel, ln_expected_bound

    conv = _conv_network().layers[0]
    with pytest.raises(InvalidInputError, match=r"rank model 'binomial' has no law for conv layers \(conv.weight\)"):
        RankModel("binomial").law_for(conv, 0.5)
    with pytest.raises(InvalidInputError, match="no law for conv layers"):
        ln_expected_bound(_conv_network(), [0.5, 0.5, 1.0])
    linear = Network.from_arch("50,20,10").layers[0]
    assert RankModel("binomial").law_for(linear, 0.1).mean() == RankModel("binomial").law(20, 50, 0.1).mean()


@pytest.mark.solver
def test_erk_is_kernel_aware_and_equals_er_on_linear_layers():
    from allocator.allocation.baselines import get_baseline
    from allocator.bound import RankModel
    from allocator.formulation import AllocationProblem, make_budget

    def problem(network, kept):
        return AllocationProblem.build(network, make_budget(network, kept=kept), RankModel("dense"))

    # hand computation: conv (6, 3, 3, 3) has 162 weights, fc1 (20, 6) has 120; budget 60 kept.
    # ER:  s = (6 + 3) / 18 = 0.5 and (20 + 6) / 120; eps = 60 / (0.5 * 162 + 26) = 60 / 107
    # ERK: s = (6 + 3 + 3 + 3) / 162 and 26 / 120;    eps = 60 / (15 + 26) = 60 / 41
    conv_problem = problem(_conv_network(), 60)
    er = get_baseline("er").kept(conv_problem)
    erk = get_baseline("erk").kept(conv_problem)
    assert er[:2] == (round(60 / 107 * 0.5 * 162), round(60 / 107 * 26))  # 45, 15
    assert erk[:2] == (round(60 / 41 * 15), round(60 / 41 * 26))  # 22, 38
    linear_problem = problem(Network.from_arch("300,60,40,10"), 500)
    assert get_baseline("er").kept(linear_problem) == get_baseline("erk").kept(linear_problem)


@pytest.mark.solver
def test_objectives_are_a_registry():
    from allocator.allocation import allocate
    from allocator.formulation.objectives import get_objective, objective_names

    assert "bound" in objective_names()
    assert get_objective("bound").name == "bound"
    with pytest.raises(InvalidInputError, match="objective 'banana' is unknown; accepted: bound"):
        allocate(Network.from_arch("50,20,10"), density=0.1, objective="banana")


@pytest.mark.pure
@pytest.mark.parametrize("options, fragment", [
    (dict(presolve="banana"), "presolve is 'banana'; accepted: off, on, choose"),
    (dict(mip_rel_gap=-1), "mip_rel_gap is -1; expected a relative gap in [0, 1)"),
    (dict(time_limit_s=0), "time limit is 0 s"),
    (dict(time_limit_s=math.inf), "time limit is inf s"),
    (dict(threads=0), "threads is 0"),
])
def test_solver_options_are_checked_when_made(options, fragment):
    from allocator.solver import SolverOptions

    with pytest.raises(InvalidInputError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        SolverOptions(**options)


@pytest.mark.solver
def test_the_mip_report_is_frozen_and_its_status_an_enum():
    import dataclasses

    from allocator.allocation import allocate
    from allocator.solver import Termination

    result = allocate(Network.from_arch("100,30,20,10"), density=0.05, baselines=())
    assert result.mip.status is Termination.OPTIMAL and result.mip.status == "optimal"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.mip.seconds = 0.0


@pytest.mark.pure
def test_seeds_come_from_one_table():
    from allocator.study.seeds import SEED_OFFSETS, derive_seed

    assert derive_seed(4, "dense") == 4 and derive_seed(4, "finetune") == 4 + SEED_OFFSETS["finetune"]
    assert len(set(SEED_OFFSETS.values())) == len(SEED_OFFSETS)  # distinct streams per purpose
    with pytest.raises(InvalidInputError, match="seed purpose 'x' is unknown"):
        derive_seed(0, "x")


@pytest.mark.torch
def test_after_step_stops_training_where_it_says():
    import torch

    from allocator.pruning import Tensors, TrainConfig, train

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    data = Tensors(x, y, x[:0], y[:0], x, y)
    steps = []
    result = train(model, data, TrainConfig(epochs=3, batch_size=8, select_on="last"), 0,
                   after_step=lambda step: steps.append(step) or step >= 7)
    assert steps == list(range(1, 8))  # 5 steps per epoch: stopped inside the second epoch
    assert len(result.history) == 1


@pytest.mark.torch
def test_describe_uses_the_registry_of_module_types():
    import torch

    from allocator.pruning.description import describe, register_describer

    class Scaled(torch.nn.Module):  # a weighted module type the registry does not know
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(5, 5))

        def forward(self, x):
            return x @ self.weight

    model = torch.nn.Sequential(Scaled(), torch.nn.Linear(5, 3))
    with pytest.raises(InvalidInputError, match=r"layer '0' \(Scaled\) has parameters and is not supported"):
        describe(model, torch.zeros(1, 5))
    register_describer(Scaled, "linear")(lambda name, module, shape: LayerSpec(name, "linear", 5, 5, (), 1, True, True))
    try:
        described = describe(model, torch.zeros(1, 5))
        assert described.network.names == ("0.weight", "1.weight") and described.network.widths == (5, 3)
    finally:
        import importlib

        importlib.import_module("allocator.pruning.description")._DESCRIBERS.pop(Scaled)


@pytest.mark.pure
def test_reports_import_neither_torch_nor_pyomo():
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, allocator.study.statistics, allocator.study.summary, "
         "allocator.study.tables, allocator.study.config, experiments.paper1_report; "
         "print('torch' in sys.modules, 'pyomo' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.split() == ["False", "False"]


@pytest.mark.pure
def test_a_closed_stdout_pipe_exits_quietly():
    process = subprocess.Popen([sys.executable, "-m", "allocator", "models"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before anything is written, as with `| head -0`
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and err == b""


@pytest.mark.pure
def test_the_layering_contract_holds():
    """The import-linter contracts of pyproject.toml (also run by `make test`)."""
    from pathlib import Path

    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed in this environment (pip install '.[test]')")
    result = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stdout[-2000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.torch
def test_validate_rules_come_from_the_registries():
    from allocator.allocation import baseline_names
    from allocator.pruning.baselines import WEIGHT_RULES
    from allocator.study.config import ALLOCATION_RULES, DATA_OBJECTIVE_RULES, WEIGHT_BASED_RULES

    assert WEIGHT_BASED_RULES == tuple(WEIGHT_RULES)
    assert DATA_OBJECTIVE_RULES == ("ours-distortion", "ours-guarded")
    assert ALLOCATION_RULES == ("ours",) + baseline_names() + tuple(WEIGHT_RULES) + DATA_OBJECTIVE_RULES


def _imports(path):
    import ast

    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.pure
def test_what_import_linter_cannot_see():
    """import-linter does not see ``models/`` (installed as ``allocator.models`` through package-dir) nor imports by
    string; this test covers both: only the layers above ``models`` import it, ``models/`` imports only below itself,
    and ``importlib`` appears only where user models and the lazy ``allocator.pruning`` namespace need it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    above_models = ("allocator/pruning/", "allocator/koopman/", "allocator/regions/", "allocator/study/", "allocator/cli/")
    importlib_allowed = {"allocator/pruning/__init__.py", "allocator/pruning/model_source.py"}
    problems = []
    for path in sorted((root / "allocator").rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        names = set(_imports(path))
        if any(n == "allocator.models" or n.startswith("allocator.models.") for n in names) and not relative.startswith(above_models):
            problems.append(f"{relative} imports allocator.models from below it")
        text = path.read_text()
        if any(call in text for call in ("import_module(", "spec_from_file_location(", "__import__(")) \
                and relative not in importlib_allowed:
            problems.append(f"{relative} imports by string (importlib)")
    allowed_in_models = ("allocator.errors", "allocator.network", "allocator.models")
    for path in sorted((root / "models").rglob("*.py")):
        for name in _imports(path):
            if name.startswith("allocator") and not name.startswith(allowed_in_models):
                problems.append(f"models/{path.name} imports {name}")
    import allocator.pruning as pruning

    for name, module in pruning._EXPORTS.items():  # the lazy namespace reaches only into its own package
        assert not module.startswith(".") and importlib_target_exists(f"allocator.pruning.{module}"), name
    assert not problems, problems


def importlib_target_exists(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.pure
def test_every_experiment_script_ends_through_run_main():
    """Each script under experiments/ that runs as a program ends with ``run_main(main)`` (an ``AllocatorError``
    printed as one line, exit 2), and bad input reaches the user as one line without a traceback: a bad
    ``--repeats`` (argparse) and a missing results root (an ``AllocatorError`` raised by the report)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "experiments"
    scripts = [p for p in sorted(root.glob("*.py")) if '__name__ == "__main__"' in p.read_text()]
    assert len(scripts) >= 25
    for path in scripts:
        tree = ast.parse(path.read_text())
        guards = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
        assert guards and "run_main(main)" in ast.unparse(guards[-1]), path.name
    for arguments in (["experiments.bench_depth", "--repeats", "0"],
                      ["experiments.rivals_report", "--root", "/nonexistent-results"]):
        result = subprocess.run([sys.executable, "-m", *arguments], capture_output=True, text=True,
                                cwd=root.parent, timeout=120)
        assert result.returncode in (1, 2), (arguments, result.stderr)  # argparse and AllocatorError: 2
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2, result.stderr
