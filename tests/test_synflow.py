"""SynFlow's allocation against its definition worked by hand, and its plumbing as an allocation rule."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.torch


def test_one_round_scores_are_the_synaptic_flow_by_hand():
    import torch
    from torch import nn

    from allocator.pruning.synflow import synflow_kept

    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    w1, w2 = model[0].weight.detach().abs().double(), model[2].weight.detach().abs().double()
    # R = 1^T |W2| |W1| 1: dR/dW1[i, j] = sum_k |W2|[k, i]; dR/dW2[k, i] = sum_j |W1|[i, j]
    scores1 = w1 * w2.sum(dim=0)[:, None]
    scores2 = w2 * w1.sum(dim=1)[None, :]
    flat = torch.cat([scores1.flatten(), scores2.flatten()])
    for budget in (1, 4, 9, 18):
        chosen = torch.argsort(-flat, stable=True)[:budget]
        expected = {"0.weight": int((chosen < 12).sum()), "2.weight": int((chosen >= 12).sum())}
        assert synflow_kept(model, ["0.weight", "2.weight"], budget, (4,), rounds=1) == expected


def test_synflow_keeps_the_budget_exactly_and_is_a_registered_rule():
    import torch
    from torch import nn

    from allocator.errors import InvalidInputError
    from allocator.pruning.baselines import WEIGHT_RULES, weight_rule_kept
    from allocator.study.config import WEIGHT_BASED_RULES

    assert set(WEIGHT_BASED_RULES) == set(WEIGHT_RULES)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                          nn.Linear(100, 10))
    kept = weight_rule_kept("synflow", model, ["1.weight", "3.weight"], 88, (1, 28, 28))
    assert sum(kept.values()) == 88 and min(kept.values()) > 0  # SynFlow avoids layer collapse
    assert kept == weight_rule_kept("synflow", model, ["1.weight", "3.weight"], 88, (1, 28, 28))
    with pytest.raises(InvalidInputError, match="input shape"):
        weight_rule_kept("synflow", model, ["1.weight"], 10)
    with pytest.raises(InvalidInputError, match="not a parameter"):
        weight_rule_kept("synflow", model, ["fc9.weight"], 10, (1, 28, 28))


def test_rd_choice_is_the_exhaustive_optimum_of_its_menu_and_meets_the_budget():
    import itertools

    import torch
    from torch import nn

    from allocator.pruning.rd import distortion_curves, rd_kept, _choose

    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    names = ["0.weight", "2.weight"]
    inputs = torch.randn(64, 6)
    menus = [[1, 3, 8, 30], [1, 2, 6, 20]]
    curves = distortion_curves(model, names, inputs, menus)
    for budget in (2, 9, 14, 33, 50):
        best = min((sum(curves[l][v] for l, v in enumerate(choice)), choice)
                   for choice in itertools.product(range(4), range(4))
                   if sum(menus[l][v] for l, v in enumerate(choice)) <= budget)
        chosen = _choose(menus, curves, budget)
        assert sum(curves[l][menus[l].index(k)] for l, k in enumerate(chosen)) == pytest.approx(best[0], abs=1e-9)
    # pruning nothing costs nothing; the full answer spends exactly the budget
    assert curves[0][-1] == pytest.approx(0.0, abs=1e-12) and curves[1][-1] == pytest.approx(0.0, abs=1e-12)
    kept = rd_kept(model, names, 17, inputs)
    assert sum(kept.values()) == 17 and all(k >= 1 for k in kept.values())


def test_effective_counts_against_brute_force_paths():
    import itertools

    import torch

    from allocator.pruning.effective import effective_counts

    rng = torch.Generator().manual_seed(5)
    for _ in range(30):
        widths = [int(v) for v in torch.randint(1, 5, (4,), generator=rng)]
        weights = [(torch.rand(widths[l + 1], widths[l], generator=rng) < 0.4).float() for l in range(3)]
        alive = [set() for _ in weights]
        for path in itertools.product(*(range(w) for w in widths)):  # every input-to-output path
            if all(weights[l][path[l + 1], path[l]] for l in range(3)):
                for l in range(3):
                    alive[l].add((path[l + 1], path[l]))
        assert effective_counts(weights) == [len(a) for a in alive]


def test_solve_lists_synflow_beside_the_other_rules(capsys):
    from allocator.cli.main import main

    assert main(["solve", "--model", "mlp-2x100", "--density", "0.001", "--baselines", "uniform,igq,synflow"]) == 0
    out = capsys.readouterr().out
    assert "synflow" in out and "igq" in out
    assert main(["solve", "--arch", "784,100,100,10", "--density", "0.001", "--baselines", "synflow"]) == 2
    assert "needs --model" in capsys.readouterr().err


@pytest.mark.torch
def test_alpha_pruning_fits_known_tails_and_gives_heavier_tails_more_weights():
    import numpy as np
    import torch
    from torch import nn

    from allocator.pruning.alpha import alpha_kept, power_law_alpha, spectrum

    rng = np.random.default_rng(3)
    for exponent in (2.5, 3.0, 4.0):  # Pareto samples of known tail exponent
        sample = (1 - rng.random(3000)) ** (-1 / (exponent - 1))
        assert abs(power_law_alpha(sample) - exponent) < 0.25, exponent
    matrix = torch.randn(40, 60, dtype=torch.float64)  # the spectrum is W^T W's: squared singular values
    assert np.allclose(spectrum(matrix), np.sort(np.linalg.eigvalsh((matrix.T @ matrix).numpy()))[-40:], rtol=1e-8)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(200, 150), nn.ReLU(), nn.Linear(150, 150), nn.ReLU(), nn.Linear(150, 10))
    with torch.no_grad():  # layer 2: a heavy-tailed spectrum (a few strong directions), layer 0: Gaussian
        u, _, v = torch.linalg.svd(model[2].weight)
        model[2].weight.copy_(u @ torch.diag(torch.tensor([30.0 / (i + 1) ** 0.7 for i in range(150)])) @ v)
    names = ["0.weight", "2.weight"]
    kept = alpha_kept(model, names, 500)
    assert sum(kept.values()) == 500
    assert kept["2.weight"] / 22500 > kept["0.weight"] / 30000  # the heavier tail keeps the higher density
    ratio = (kept["2.weight"] / 22500) / (kept["0.weight"] / 30000)
    assert ratio == pytest.approx(5.0, rel=0.02)  # the default spread: a factor of 5 between the extremes


@pytest.mark.torch
def test_alpha_at_full_density_and_tiny_tensors_and_guard_names(tmp_path):
    import torch
    from torch import nn

    from allocator.errors import InvalidInputError
    from allocator.pruning.alpha import alpha_kept
    from allocator.study.config import ValidateConfig

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(50, 30), nn.ReLU(), nn.Linear(30, 20))
    assert alpha_kept(model, ["0.weight", "2.weight"], 10**6) == {"0.weight": 1500, "2.weight": 600}  # all kept
    source = tmp_path / "tiny.py"
    source.write_text("from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(784, 4), "
                      "nn.ReLU(), nn.Linear(4, 10))\n")
    with pytest.raises(InvalidInputError, match="1.weight of shape .4, 784. has 4"):
        ValidateConfig(model=f"{source}:make", allocations=("ours", "alpha")).check()
    for bad in ("ours-guarded:1_0", "ours-guarded: 1", "ours-guarded:1e-1", "ours-guarded:-1"):
        with pytest.raises(InvalidInputError, match="plain decimal"):
            ValidateConfig(allocations=("ours", bad)).check()
