"""Allocation over conv and linear layers: the program MIP against its numeric surrogate, floors, the bound's
per-layer sensitivity, FLOPs, the registry's programs against their fx trace, and the CLI on CNNs."""

from __future__ import annotations

import pytest

from allocator.allocation.api import allocate
from allocator.bound.engine import ln_expected_bound
from allocator.bound.rank import RankModel
from allocator.errors import InvalidInputError
from allocator.formulation.mip import build_model
from allocator.formulation.objective import ExactObjective, surrogate_value
from allocator.formulation.problem import AllocationProblem, Constraints, make_budget
from allocator.network import ProgramBuilder
from allocator.solver.highs import SolverOptions, solve

MODEL = RankModel("binomial", conv_samples=8)


def tiny_cnn(include_output_layer: bool = True):
    b = ProgramBuilder((1, 6, 6))
    b.conv("c1.weight", 3, 3, padding=1, pool=2)
    b.residual_block(("r.c1.weight", 3, 3, 1, 1, True, False), ("r.c2.weight", 3, 3, 1, 1, True, False))
    b.flatten()
    b.linear("fc1.weight", 6)
    b.output("fc2.weight", 3)
    return b.build(include_output_layer=include_output_layer)


@pytest.mark.solver
def test_program_mip_optimum_is_the_numeric_surrogate_at_its_levels():
    network = tiny_cnn()
    problem = AllocationProblem.build(network, make_budget(network, density=0.2), MODEL, Constraints())
    objective = ExactObjective(problem)
    built = build_model(problem, objective, levels=12)
    report = solve(built.model, SolverOptions(time_limit_s=30))
    assert report.status == "optimal"
    kept = problem.kept_per_layer(built.chosen_units())
    assert surrogate_value(objective, kept) == pytest.approx(report.objective, abs=1e-6)


@pytest.mark.solver
def test_cnn_allocation_holds_floors_beats_baselines_and_reports_what_the_bound_sees():
    network = tiny_cnn()
    allocation = allocate(network, density=0.15, rank_model=MODEL, levels=20)
    budget = allocation.budget
    assert allocation.kept_total <= budget.kept
    floors = allocation.floors
    assert set(floors) == {"c1.weight", "r.c1.weight", "r.c2.weight"}
    for layer in allocation.layers:
        if layer.name in floors:
            assert layer.kept >= round(floors[layer.name] * layer.weights)
            assert floors[layer.name] <= budget.density
    for result in allocation.baselines.values():
        if result.ln_bound is not None:
            assert allocation.ln_bound >= result.ln_bound - 1e-9
    densities = [layer.kept / layer.weights for layer in allocation.layers]
    assert ln_expected_bound(network, densities, MODEL) == pytest.approx(allocation.ln_bound, abs=1e-9)
    for index, drop in enumerate(allocation.bound_drop_nats):
        if drop is None:
            assert not network.prunable[index]
            continue
        halved = list(allocation.kept)
        halved[index] //= 2
        by_hand = allocation.ln_bound - ln_expected_bound(network, [k / w for k, w in zip(halved, network.weights)],
                                                          MODEL)
        assert drop == pytest.approx(max(0.0, by_hand), abs=1e-9)
    sparse = allocate(network, density=0.02, rank_model=MODEL, levels=20)  # c1's share is below one weight
    assert "c1.weight" not in sparse.floors and sparse.kept[0] >= 1
    lifted = allocate(network, density=0.15, rank_model=MODEL, levels=20, conv_floor=None)
    assert lifted.floors is None and lifted.ln_bound >= allocation.ln_bound - 1e-9  # floors only constrain


@pytest.mark.solver
def test_cnn_flops_budget_counts_a_conv_weight_at_its_output_positions():
    network = tiny_cnn()
    assert network.flops_per_weight[:3] == (36.0, 9.0, 9.0)  # c1 on 6x6 (same), the block's convs on 3x3
    cap = 0.5 * sum(f * w for f, w, p in zip(network.flops_per_weight, network.weights, network.prunable) if p) * 0.2
    allocation = allocate(network, density=0.2, rank_model=MODEL, levels=20, conv_floor=None,
                          constraints=Constraints(flops_budget=cap))
    used = sum(f * k for f, k, p in zip(network.flops_per_weight, allocation.kept, network.prunable) if p)
    assert used <= cap + 1e-9


@pytest.mark.torch
def test_registry_cnn_programs_equal_their_fx_trace():
    import torch

    from allocator.models import get_model, model_names
    from allocator.pruning.fx_program import translate

    checked = 0
    for name in model_names():
        entry = get_model(name)
        if entry.conv_builder is None:
            continue
        torch.manual_seed(0)
        module = entry.build()
        for include in (True, False):
            traced = translate(module, entry.input_shape, include_output_layer=include)
            written = entry.bound_network(include_output_layer=include)
            assert traced == written, name
        assert written.all_parameters == sum(p.numel() for p in module.parameters())
        checked += 1
    assert checked == 6


@pytest.mark.torch
def test_the_translator_and_describe_refuse_what_they_cannot_prove_by_name():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from allocator.pruning.description import describe
    from allocator.pruning.fx_program import translate

    class TanhCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.fc = nn.Linear(2 * 4 * 4, 3)

        def forward(self, x):
            return self.fc(torch.tanh(self.conv(x)).flatten(1))

    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, groups=2)
            self.fc = nn.Linear(2 * 4 * 4, 3)

        def forward(self, x):
            return self.fc(F.relu(self.conv(x)).flatten(1))

    class OddSkip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)
            self.fc = nn.Linear(2 * 6 * 6, 3)

        def forward(self, x):
            return self.fc(F.relu(self.b(F.relu(self.a(x))) + torch.sigmoid(x)).flatten(1))

    class TanhMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.fc2(torch.tanh(self.fc1(x)))

    class ResidualMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = torch.relu(self.fc1(x))
            return self.fc3(torch.relu(self.fc2(h) + h))

    with pytest.raises(InvalidInputError, match=r"conv 'conv' is followed by 'tanh'"):
        translate(TanhCNN(), (1, 6, 6))
    with pytest.raises(InvalidInputError, match="groups 2"):
        translate(Grouped(), (2, 6, 6))
    with pytest.raises(InvalidInputError, match="shortcut is not x"):
        translate(OddSkip(), (2, 6, 6))
    with pytest.raises(InvalidInputError, match=r"'tanh' \(tanh\) after the first Linear"):
        describe(TanhMLP(), torch.zeros(1, 4))
    with pytest.raises(InvalidInputError, match="skip connection"):
        describe(ResidualMLP(), torch.zeros(1, 4))


@pytest.mark.torch
def test_cli_solves_a_users_cnn_with_its_convs_inside_the_bound(tmp_path, capsys):
    from allocator.cli.main import main

    source = tmp_path / "netdef.py"
    source.write_text(
        "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.c1 = nn.Conv2d(1, 3, 3, padding=1)\n"
        "        self.bn = nn.BatchNorm2d(3)\n"
        "        self.head = nn.Linear(3 * 4 * 4, 4)\n"
        "    def forward(self, x):\n"
        "        return self.head(F.max_pool2d(F.relu(self.bn(self.c1(x))), 2).flatten(1))\n"
        "def build():\n    return Net()\n")
    status = main(["solve", "--model", f"{source}:build", "--input-shape", "1,8,8", "--density", "0.3",
                   "--conv-samples", "4", "--cache-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "1 convolutions inside the bound, n0 = 64" in out and "bound sees" in out
    assert "c1.weight" in out and "conv floors: 1 convs" in out
    assert list(tmp_path.glob("conv-*.npz"))  # the rank table was kept


@pytest.mark.pure
def test_cli_keeps_paper_1s_frozen_convention_on_request(capsys):
    from allocator.cli.main import main

    assert main(["bound", "--model", "lenet5", "--density", "1", "--rank-model", "dense", "--frozen-convs"]) == 0
    frozen = capsys.readouterr().out
    assert "linear chain, n0 = 400" in frozen and "148.3288" in frozen
    assert main(["bound", "--model", "lenet5", "--density", "1", "--rank-model", "dense"]) == 0
    inside = capsys.readouterr().out
    assert "2 convolutions inside the bound, n0 = 784" in inside and "2684.80" in inside


@pytest.mark.solver
def test_a_cnn_allocation_file_round_trips_its_program(tmp_path):
    from allocator.allocation.file import load, save

    network = tiny_cnn()
    allocation = allocate(network, density=0.15, rank_model=MODEL, levels=20)
    save(allocation, tmp_path / "cnn.json")
    loaded = load(tmp_path / "cnn.json")
    assert loaded.network == network and loaded.rank_model == MODEL
    assert loaded.floors == allocation.floors and loaded.bound_drop_nats == allocation.bound_drop_nats
    densities = [layer.kept / layer.weights for layer in loaded.layers]
    assert ln_expected_bound(loaded.network, densities, loaded.rank_model) == pytest.approx(loaded.ln_bound, abs=1e-9)


@pytest.mark.solver
def test_the_lagrangian_certificate_holds_on_pooled_and_residual_cnns():
    from allocator.allocation.search import exhaustive_search, grid_for
    from allocator.formulation.upper_bound import lagrangian_upper_bound

    b = ProgramBuilder((1, 6, 6))
    b.conv("c1.weight", 3, 3, padding=1, pool=2)
    b.conv("c2.weight", 4, 2)
    b.flatten()
    b.output("fc.weight", 3)
    network = b.build()
    problem = AllocationProblem.build(network, make_budget(network, density=0.1), MODEL, Constraints())
    objective = ExactObjective(problem)
    _, best, _ = exhaustive_search(problem, objective, grid_for(problem, 60))
    upper = lagrangian_upper_bound(problem)
    assert upper is not None and upper.ln_bound >= best - 1e-9
    allocation = allocate(network, density=0.1, rank_model=MODEL, levels=20, conv_floor=None)
    assert allocation.upper_bound["ln_bound"] >= allocation.ln_bound - 1e-9
    b = ProgramBuilder((1, 6, 6))
    b.conv("c1.weight", 2, 3, padding=1)
    b.residual_block(("r.c1.weight", 4, 3, 2, 1, True, False), ("r.c2.weight", 4, 3, 1, 1, True, False), "option-a")
    b.flatten()
    b.output("fc.weight", 3)
    residual = b.build()
    step, domain = residual.bound_program[1], residual.domains[1]
    assert step.shortcut_rank == 18 < min(domain, step.width) == 36  # the second conv's law matters: relaxed
    problem = AllocationProblem.build(residual, make_budget(residual, density=0.1), MODEL, Constraints())
    _, best, _ = exhaustive_search(problem, ExactObjective(problem), grid_for(problem, 12))
    upper = lagrangian_upper_bound(problem)
    assert upper is not None and upper.ln_bound >= best - 1e-9


@pytest.mark.torch
def test_the_translator_reads_common_idioms_and_refuses_unproven_pools_and_relus():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from allocator.pruning.fx_program import translate

    class ViewIdiom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2 * 3 * 3, 3)

        def forward(self, x):
            h = F.avg_pool2d(F.relu(self.conv(x)), kernel_size=2)
            return self.fc(h.view(h.size(0), -1))

    network = translate(ViewIdiom(), (1, 6, 6))
    assert [type(s).__name__ for s in network.bound_program] == ["Relu", "Cap", "Cap", "Relu"]

    class PaddedPool(ViewIdiom):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2 * 4 * 4, 3)  # a padded 2x2 pool of 6x6 gives 4x4

        def forward(self, x):
            return self.fc(F.avg_pool2d(F.relu(self.conv(x)), 2, padding=1).flatten(1))

    with pytest.raises(InvalidInputError, match="without padding"):
        translate(PaddedPool(), (1, 6, 6))

    class InputRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 4), nn.Linear(4, 3)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(torch.relu(x).flatten(1))))

    with pytest.raises(InvalidInputError, match="no ReLU has rectified"):
        translate(InputRelu(), (1, 4, 4))
