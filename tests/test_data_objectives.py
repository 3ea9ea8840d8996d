"""The data objectives: ``distortion`` and ``guarded`` against exhaustive search over every integer split, the
guard checked with the exact bound, and their refusals."""

from __future__ import annotations

import numpy as np
import pytest

from allocator import Network
from allocator.allocation import allocate
from allocator.bound.rank import RankModel
from allocator.errors import InvalidInputError
from allocator.formulation.distortion import DistortionCurves
from allocator.formulation.objective import ExactObjective
from allocator.formulation.problem import AllocationProblem, Constraints, make_budget

pytestmark = pytest.mark.solver


def _curves() -> DistortionCurves:
    first = tuple(sorted({int(round(v)) for v in np.geomspace(1, 78_400, 40)}))
    second = tuple(sorted({int(round(v)) for v in np.geomspace(1, 10_000, 40)}))
    return DistortionCurves({"fc1.weight": (first, tuple(10 / np.sqrt(first))),
                             "fc2.weight": (second, tuple(5 / np.log1p(second)))}, 1024)


def _splits(total: int):
    return [(a, total - a) for a in range(1, total)]


def test_distortion_and_guarded_are_the_optimum_of_every_integer_split():
    network = Network.from_arch("784,100,100,10")
    curves = _curves()
    problem = AllocationProblem.build(network, make_budget(network, density=0.001), RankModel("binomial"), Constraints())
    exact = ExactObjective(problem)
    total = problem.budget.kept

    def distortion(a: int, b: int) -> float:
        return curves.at("fc1.weight", a) + curves.at("fc2.weight", b)

    best = min(distortion(a, b) for a, b in _splits(total))
    ours = allocate(network, density=0.001, objective="distortion", distortion=curves)
    assert ours.objective["distortion"] == pytest.approx(best, abs=1e-9)

    guarded = allocate(network, density=0.001, objective="guarded", distortion=curves, guard_nats=1.0)
    floor = guarded.objective["ln_floor"]
    bound_best = allocate(network, density=0.001).ln_bound
    assert floor == pytest.approx(bound_best - 1.0, abs=1e-9)
    feasible = [distortion(a, b) for a, b in _splits(total) if exact.of_kept([a, b, 1000]) >= floor - 1e-12]
    assert guarded.objective["guard_met"] and guarded.ln_bound >= floor - 1e-9
    assert guarded.objective["distortion"] == pytest.approx(min(feasible), abs=1e-9)
    # the guard binds here: the unguarded answer falls more than a nat below the bound's best
    assert ours.ln_bound < floor and guarded.objective["distortion"] > ours.objective["distortion"]


def test_data_objectives_refuse_what_they_cannot_use():
    network = Network.from_arch("784,100,100,10")
    with pytest.raises(InvalidInputError, match="needs distortion curves"):
        allocate(network, density=0.001, objective="guarded")
    with pytest.raises(InvalidInputError, match="guard is -1"):
        allocate(network, density=0.001, objective="guarded", distortion=_curves(), guard_nats=-1)
    partial = DistortionCurves({"fc1.weight": ((1, 10), (1.0, 0.5))}, 64)
    with pytest.raises(InvalidInputError, match="missing the prunable layer"):
        allocate(network, density=0.001, objective="distortion", distortion=partial)
    with pytest.raises(InvalidInputError, match="ascending"):
        DistortionCurves({"fc1.weight": ((10, 1), (1.0, 0.5))}, 64)
    with pytest.raises(InvalidInputError, match="objective"):
        allocate(network, density=0.001, objective="accuracy")


@pytest.mark.torch
def test_cli_solves_the_guarded_objective_on_a_models_outputs(capsys, idx_dir, tmp_path):
    from allocator.allocation.file import load
    from allocator.cli.main import main

    out = tmp_path / "guarded.json"
    status = main(["solve", "--model", "mlp-2x100", "--density", "0.001", "--objective", "guarded", "--dataset",
                   f"idx:{idx_dir}", "--calibration-size", "128", "--train-epochs", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert status == 0 and "objective: guarded" in text and "128 calibration images" in text
    loaded = load(out)
    assert loaded.saturation_density is not None and loaded.saturation_density > 0.001  # density 0.001 is below it
    assert f"saturation density {loaded.saturation_density:.4g}" in text and "the bound is not saturated here" in text
    assert loaded.objective["name"] == "guarded" and loaded.objective["guard_met"] is True
    assert loaded.ln_bound >= loaded.objective["ln_floor"] - 1e-9
    assert main(["solve", "--model", "mlp-2x100", "--density", "0.001", "--objective", "distortion"]) == 2
    assert "needs --model and --dataset" in capsys.readouterr().err


@pytest.mark.torch
def test_the_cell_rules_with_data_objectives_spend_the_budget_and_keep_the_guard():
    import torch

    from allocator.bound.engine import ln_expected_bound
    from allocator.models import get_model
    from allocator.study.cells import kept_for_rule

    entry = get_model("mlp-2x100")
    torch.manual_seed(0)
    model = entry.build()
    network = entry.network
    reference = allocate(network, density=0.001)
    calibration = torch.randn(64, *entry.input_shape)
    prunable = [n for n, p in zip(network.names, network.prunable) if p]
    for rule, guard in (("ours-distortion", None), ("ours-guarded", 1.0), ("ours-guarded:0.1", 0.1),
                        ("ours-guarded:5", 5.0)):
        kept = kept_for_rule(rule, reference, model, prunable, calibration=calibration)
        assert sum(kept.values()) == reference.budget.kept
        if guard is not None:
            densities = [kept.get(n, w) / w for n, w in zip(network.names, network.weights)]
            assert ln_expected_bound(network, densities) >= reference.ln_bound - guard - 1e-9, rule
    from allocator.study.config import ValidateConfig

    with pytest.raises(InvalidInputError, match="the guard 'x' is not a number of nats >= 0"):
        ValidateConfig(allocations=("ours", "ours-guarded:x")).check()


def test_a_measured_distortion_never_gets_the_every_integer_certificate():
    """The search over every integer allocation gives the last layer what is left, optimal only for a monotone
    objective: with a distortion that rises from 1 kept weight to 2 (a measured curve need not be monotone) it must
    not run, nor be claimed (a review found '[1, 1, 96] optimal' while [1, 1, 1] was better)."""
    from allocator.formulation.distortion import DistortionCurves

    network = Network.from_arch("784,100,100,100,10")
    step = ((1, 2, 10000), (0.0, 10.0, 10.0))
    curves = DistortionCurves({"fc1.weight": ((1, 2, 78400), (0.0, 10.0, 10.0)), "fc2.weight": step, "fc3.weight": step},
                              calibration_size=10)
    result = allocate(network, density=0.001, objective="distortion", distortion=curves)
    assert "every integer allocation" not in result.certificate
    assert allocate(network, density=0.001).upper_bound["method"] == "exhaustive search over every integer allocation"
