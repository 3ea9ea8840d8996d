"""Re-spending dead weights: the same kept count per layer, no fewer effective weights, and a validate run that
records what it traded."""

from __future__ import annotations

import json

import pytest


@pytest.mark.torch
def test_respend_keeps_the_counts_and_never_loses_effective_weights():
    import torch

    from allocator.pruning.effective import effective_counts, respend_dead

    generator = torch.Generator().manual_seed(0)
    shapes = [(30, 40), (20, 30), (10, 20), (5, 10)]
    for trial in range(40):
        scores = [torch.rand(shape, generator=generator) for shape in shapes]
        density = [0.02, 0.05, 0.1, 0.3][trial % 4]
        masks = [torch.rand(shape, generator=generator) < density for shape in shapes]
        before = effective_counts([m.float() for m in masks])
        respent, traded = respend_dead(scores, masks)
        after = effective_counts([m.float() for m in respent])
        assert [int(m.sum()) for m in respent] == [int(m.sum()) for m in masks]
        assert sum(after) >= sum(before)
        if traded == 0:
            assert after == before
        # the fixed point: where a dead weight is left, its layer has no pruned weight between live units
        reached = [torch.ones(shapes[0][1], dtype=torch.bool)]
        for mask in respent:
            reached.append((mask & reached[-1][None, :]).any(dim=1))
        reaching = [torch.ones(shapes[-1][0], dtype=torch.bool)]
        for mask in reversed(respent):
            reaching.insert(0, (mask & reaching[0][:, None]).any(dim=0))
        for layer, mask in enumerate(respent):
            live = reaching[layer + 1][:, None] & reached[layer][None, :]
            if int((mask & ~live).sum()) > 0:
                assert int((~mask & live).sum()) == 0, (trial, layer)


@pytest.mark.study
def test_validate_respends_dead_weights_with_the_same_counts(capsys, tmp_path, idx_dir):
    from allocator.cli.main import main

    out = tmp_path / "run"
    argv = ["validate", "--model", "mlp-2x100", "--dataset", f"idx:{idx_dir}", "--density", "0.002", "--seeds", "1",
            "--epochs", "1", "--finetune-epochs", "1", "--allocations", "ours,uniform", "--respend-dead",
            "--quiet", "--out", str(out)]
    assert main(argv) == 0
    cells = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert cells and all("respent" in cell for cell in cells)
    for cell in cells:
        total = sum(cell["kept"].values())
        assert sum(cell["effective_kept"][name] for name in cell["kept"]) <= total
    assert any(cell["respent"] > 0 for cell in cells)
    assert main(argv[:-3] + ["--model", "lenet5", "--out", str(tmp_path / "cnn")]) == 2  # refused: convolutions
    assert "respend_dead traces paths through a chain" in capsys.readouterr().err


@pytest.mark.pure
def test_the_expected_effective_count_of_random_masks_matches_enumeration():
    import itertools

    import numpy as np

    from allocator.network.paths import effective_counts, expected_random_effective

    shapes, kept = [(2, 3), (2, 2), (1, 2)], [2, 2, 1]
    layers = []
    for (rows, cols), count in zip(shapes, kept):
        options = []
        for chosen in itertools.combinations(range(rows * cols), count):
            flat = np.zeros(rows * cols, dtype=bool)
            flat[list(chosen)] = True
            options.append(flat.reshape(rows, cols))
        layers.append(options)
    total, draws = np.zeros(3), 0
    for masks in itertools.product(*layers):  # every equally likely draw, exactly
        total += effective_counts(list(masks))
        draws += 1
    exact = total / draws
    sampled = expected_random_effective(shapes, kept, samples=20000, seed=1)
    assert np.allclose(sampled, exact, atol=0.03), (sampled, exact)
    assert expected_random_effective([(5000, 5000)] * 2, [10, 10]) is None  # too large: not computed


@pytest.mark.solver
def test_solve_shows_the_share_on_paths_if_random(capsys):
    from allocator.cli.main import main

    assert main(["solve", "--arch", "784,100,100,10", "--density", "0.001", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "on paths if random" in out and " %" in out


@pytest.mark.torch
def test_channel_level_effective_counts_of_a_sequential_cnn():
    import numpy as np
    import torch

    from allocator.network.paths import effective_counts, effective_counts_sequential

    rng = np.random.default_rng(5)
    chain = [rng.random((6, 8)) < 0.3, rng.random((5, 6)) < 0.3, rng.random((3, 5)) < 0.5]
    assert effective_counts_sequential(chain) == effective_counts(chain)  # no conv: the chain's own count
    conv1 = np.zeros((2, 1, 3, 3), bool)
    conv1[0, 0, 1, 1] = conv1[1, 0, 0, 0] = True                  # both channels fed
    conv2 = np.zeros((3, 2, 3, 3), bool)
    conv2[0, 0, :, :] = True                                      # channel 0 -> 0 (9 taps)
    conv2[2, 1, 0, 0] = True                                      # channel 1 -> 2, which feeds nothing
    fc = np.zeros((4, 3 * 4), bool)
    fc[0, 0:4] = True                                             # reads channel 0's four positions
    fc[1, 4:8] = True                                             # channel 1: reached by nothing
    head = np.ones((2, 4), bool)
    assert effective_counts_sequential([conv1, conv2, fc, head]) == [1, 9, 4, 2]  # head: only fc unit 0 is reached
    with pytest.raises(ValueError, match="a linear layer of 10 inputs after 3 channels"):
        effective_counts_sequential([conv2, np.ones((2, 10), bool)])
    del torch


@pytest.mark.study
def test_validate_a_cnn_with_its_convs_inside_records_channel_level_effective_weights(capsys, tmp_path, idx_dir):
    from allocator.cli.main import main

    out = tmp_path / "cnn"
    assert main(["validate", "--model", "lenet5", "--dataset", f"idx:{idx_dir}", "--density", "0.02", "--seeds", "1",
                 "--epochs", "1", "--finetune-epochs", "1", "--allocations", "ours,uniform", "--convs-inside",
                 "--quiet", "--out", str(out)]) == 0
    cells = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert len(cells) == 2
    for cell in cells:
        assert cell["effective_level"] == "channel" and set(cell["kept"]) <= set(cell["effective_kept"])
        assert all(cell["effective_kept"][name] <= kept for name, kept in cell["kept"].items())
        assert sum(cell["effective_kept"][name] for name in cell["kept"]) > 0
