"""The torch side: data readers, describe, criteria, masks, training, validation (small and fast)."""

import json
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

from allocator import InvalidInputError  # noqa: E402
from allocator.data import load_dataset  # noqa: E402
from allocator.data.sources import DataMissingError, read_idx  # noqa: E402
from allocator.models import get_model, model_names  # noqa: E402
from allocator.pruning import (  # noqa: E402
    ScoreContext,
    Tensors,
    TrainConfig,
    apply_masks,
    describe,
    global_kept,
    make_permanent,
    mask_from_scores,
    prune_to_counts,
    scores,
    train,
    verify_counts,
)
from allocator.pruning.masks import MaskCountError  # noqa: E402

pytestmark = pytest.mark.torch
torch.set_num_threads(1)



def test_idx_reader_and_mnist_dataset(idx_dir):
    images = read_idx(idx_dir / "train-images-idx3-ubyte.gz")
    assert images.shape == (700, 28, 28) and images.dtype == np.uint8
    data = load_dataset("mnist", data_dir=idx_dir, validation=100)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (600, 100, 200)
    assert data.train_x.shape[1:] == (1, 28, 28)
    # normalisation (x/255 - 0.1307) / 0.3081 applied; the split is a permutation so compare sets of values
    assert np.isclose(np.sort(data.train_x.ravel())[0], (images.min() / 255 - 0.1307) / 0.3081, atol=1e-6)
    with pytest.raises(DataMissingError, match="missing from"):
        load_dataset("mnist", data_dir=idx_dir / "nowhere")
    with pytest.raises(InvalidInputError, match="data set 'imagenet' is unknown"):
        load_dataset("imagenet")


def test_cifar_batches(tmp_path):
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 20))}
        with open(tmp_path / name, "wb") as stream:
            pickle.dump(batch, stream)
    data = load_dataset("cifar10", data_dir=tmp_path, validation=10)
    assert data.train_x.shape == (90, 3, 32, 32) and len(data.val_y) == 10 and len(data.test_y) == 20


@pytest.mark.data
def test_fashion_mnist_default_is_installed():
    data = load_dataset("fashion-mnist")
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (55000, 5000, 10000)
    assert np.bincount(data.test_y).tolist() == [1000] * 10


@pytest.mark.parametrize("name", model_names())
def test_registry_matches_describe(name):
    entry = get_model(name)
    torch.manual_seed(0)
    model = entry.build()
    described = describe(model, torch.zeros((1,) + entry.input_shape))
    assert described.network.names == entry.network.names
    assert described.network.widths == entry.network.widths
    assert described.network.input_width == entry.network.input_width


def test_describe_refuses_unsupported_layers():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    with pytest.raises(InvalidInputError, match="LayerNorm"):
        describe(model, torch.zeros(1, 4))
    lenet = get_model("lenet5").build()
    described = describe(lenet, torch.zeros(1, 1, 28, 28))
    assert described.network.input_width == 400 and [c.name for c in described.conv_layers] == ["conv1.weight", "conv2.weight"]


def test_mask_keeps_exact_count_with_deterministic_ties():
    scores_ = torch.tensor([[1.0, 3.0, 3.0], [3.0, 0.5, 2.0]])
    mask = mask_from_scores(scores_, 2)
    assert mask.tolist() == [[False, True, True], [False, False, False]]  # ties: lower flat index first
    for kept in range(7):
        assert int(mask_from_scores(scores_, kept).sum()) == kept
    with pytest.raises(InvalidInputError, match="kept 7 is outside"):
        mask_from_scores(scores_, 7)


def test_lamp_scores_by_definition():
    model = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -3.0, 2.0], [0.5, 2.0, -1.0]]))
    lamp = scores("lamp", model, ["0.weight"])["0.weight"].flatten().tolist()
    w2 = [1.0, 9.0, 4.0, 0.25, 4.0, 1.0]
    for u, value in enumerate(w2):  # denominator: weights at least as large (ties: positions from u on)
        order = sorted(range(6), key=lambda v: (w2[v], v))
        tail = sum(w2[v] for v in order[order.index(u):])
        assert lamp[u] == pytest.approx(value / tail)


def test_global_kept_is_one_threshold():
    layer_scores = {"a": torch.tensor([5.0, 1.0, 3.0]), "b": torch.tensor([4.0, 2.0])}
    assert global_kept(layer_scores, 3) == {"a": 2, "b": 1}
    assert global_kept(layer_scores, 0) == {"a": 0, "b": 0}


def test_gradient_and_random_criteria():
    torch.manual_seed(0)
    model = get_model("mlp-2x100").build()
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    grad = scores("gradient", model, ["fc1.weight"], ScoreContext(inputs=x, targets=y))["fc1.weight"]
    loss = nn.functional.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(loss, [model.fc1.weight])
    assert torch.allclose(grad, (model.fc1.weight * g).abs().double())
    first = scores("random", model, ["fc1.weight"], ScoreContext(seed=3))["fc1.weight"]
    again = scores("random", model, ["fc1.weight"], ScoreContext(seed=3))["fc1.weight"]
    other = scores("random", model, ["fc1.weight"], ScoreContext(seed=4))["fc1.weight"]
    assert torch.equal(first, again) and not torch.equal(first, other)
    with pytest.raises(InvalidInputError, match="needs one labelled minibatch"):
        scores("gradient", model, ["fc1.weight"])


def test_prune_to_counts_and_make_permanent():
    torch.manual_seed(0)
    model = get_model("mlp-2x100").build()
    kept = {"fc1.weight": 46, "fc2.weight": 42}
    prune_to_counts(model, scores("magnitude", model, list(kept)), kept)
    assert int(torch.count_nonzero(model.fc1.weight)) == 46 and int(torch.count_nonzero(model.fc2.weight)) == 42
    # the kept weights are the largest ones
    kept_values = model.fc1.weight_orig[model.fc1.weight_mask.bool()].abs()
    dropped = model.fc1.weight_orig[~model.fc1.weight_mask.bool()].abs()
    assert kept_values.min() >= dropped.max()
    assert sorted(make_permanent(model)) == ["fc1.weight", "fc2.weight"]
    assert not hasattr(model.fc1, "weight_mask") and int(torch.count_nonzero(model.fc1.weight)) == 46


def test_apply_masks_is_all_or_nothing():
    torch.manual_seed(0)
    model = get_model("mlp-2x100").build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    good = torch.ones(100, 784, dtype=torch.bool)
    with pytest.raises(InvalidInputError, match="mask for fc2.weight has shape"):
        apply_masks(model, {"fc1.weight": good, "fc2.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(InvalidInputError, match="no module 'fc9'"):
        apply_masks(model, {"fc1.weight": good, "fc9.weight": good})
    assert not hasattr(model.fc1, "weight_mask")

    # A failure while applying (after fc1 was already pruned) restores fc1.
    original = prune.custom_from_mask
    calls = []

    def flaky(module, name, mask):
        calls.append(name)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(module, name, mask)

    prune.custom_from_mask = flaky
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            apply_masks(model, {"fc1.weight": good & (torch.rand(100, 784) > 0.5),
                                "fc2.weight": torch.ones(100, 100, dtype=torch.bool)})
    finally:
        prune.custom_from_mask = original
    assert not hasattr(model.fc1, "weight_mask") and "weight" in model.fc1._parameters
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)


def test_verify_counts_names_the_layer():
    model = get_model("mlp-2x100").build()
    prune_to_counts(model, scores("magnitude", model, ["fc1.weight"]), {"fc1.weight": 10})
    with pytest.raises(MaskCountError, match=r"fc1.weight: allocated 11, realised 10 \(-1\)"):
        verify_counts(model, {"fc1.weight": 11})


def test_training_is_reproducible_and_masks_stay_fixed(idx_dir):
    data = Tensors.from_dataset(load_dataset("mnist", data_dir=idx_dir, validation=100))
    config = TrainConfig(epochs=2, batch_size=64)
    states = []
    for _ in range(2):
        torch.manual_seed(5)
        model = get_model("mlp-2x100").build()
        result = train(model, data, config, seed=5)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert result.best_epoch in (0, 1, 2) and len(result.history) == 2
    assert result.history[-1].select_accuracy > 0.5  # the stripe is learnable
    prune_to_counts(model, scores("magnitude", model, ["fc1.weight"]), {"fc1.weight": 500})
    train(model, data, TrainConfig(epochs=1, batch_size=64, select_on="last"), seed=1)
    assert int(torch.count_nonzero(model.fc1.weight)) <= 500
    assert int(model.fc1.weight_mask.sum()) == 500
    with pytest.raises(InvalidInputError, match="select_on is 'best'"):
        TrainConfig(select_on="best")


@pytest.mark.solver
@pytest.mark.study
def test_validation_run_resumes(idx_dir, tmp_path):
    from allocator.study.config import ValidateConfig
    from allocator.study.tables import format_summary
    from allocator.study.validate import run_validation

    config = ValidateConfig(
        model="mlp-2x100", dataset="mnist", data_dir=str(idx_dir), densities=(0.01,),
        allocations=("ours", "uniform", "lamp"), seeds=(0, 1),
        train=TrainConfig(epochs=1, batch_size=64), finetune=TrainConfig(epochs=1, batch_size=64),
    )
    summary = run_validation(config, tmp_path)
    cells = sorted((tmp_path / "cells").glob("*.json"))
    assert len(cells) == 6
    assert (tmp_path / "accuracy_vs_density.png").stat().st_size > 1000
    for cell in map(lambda p: json.loads(p.read_text()), cells):
        assert sum(cell["kept"].values()) <= round(0.01 * 88400)
    paired = summary["paired_ours_minus_uniform"][0]
    assert paired["pairs"] == 2
    assert "paired difference ours - uniform" in format_summary(summary)
    # A second run finds every cell and trains nothing: delete the dense checkpoints to prove it.
    for path in (tmp_path / "dense").glob("*.pt"):
        path.unlink()
    cells[0].unlink()
    again = run_validation(config, tmp_path)  # redoes one cell (retraining seed 0's dense model)
    assert len(list((tmp_path / "cells").glob("*.json"))) == 6
    assert again["table"] == summary["table"]  # deterministic: the redone cell matches
    with pytest.raises(InvalidInputError, match="another configuration .*finetune"):
        run_validation(ValidateConfig(**{**config.__dict__, "finetune": TrainConfig(epochs=2)}), tmp_path)
    # more seeds extend the same run
    extended = run_validation(ValidateConfig(**{**config.__dict__, "seeds": (2,)}), tmp_path)
    assert extended["seeds"] == [0, 1, 2] and extended["paired_ours_minus_uniform"][0]["pairs"] == 3
    # so do more densities and rules, with the dense models already there (no retraining: their files stay)
    dense_files = {p: p.stat().st_mtime_ns for p in (tmp_path / "dense").glob("*.pt")}
    grown = run_validation(ValidateConfig(**{**config.__dict__, "densities": (0.02,), "allocations": ("ours", "erk")}),
                           tmp_path)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in dense_files.items())  # reused, not retrained
    assert {(row["density"], row["allocation"]) for row in grown["table"]} == {
        (0.01, rule) for rule in config.allocations} | {(0.02, "ours"), (0.02, "erk")}
    assert [row["density"] for row in grown["paired_ours_minus"]["erk"]] == [0.02]
    # a seed whose cells came from another dense model (checkpoint lost, retraining not bit-identical) is refused
    # before any new cell: a cell of seed 0 says its dense model scored otherwise
    stale = sorted((tmp_path / "cells").glob("seed0-*.json"))[0]
    record = json.loads(stale.read_text())
    record["dense_test_accuracy"] = record["dense_test_accuracy"] - 0.0022
    stale.write_text(json.dumps(record))
    before = sorted(p.name for p in (tmp_path / "cells").glob("*.json"))
    with pytest.raises(InvalidInputError, match=r"seed 0: the dense model now has test accuracy .* came from one at"):
        run_validation(ValidateConfig(**{**config.__dict__, "allocations": ("ours", "erk", "igq")}), tmp_path)
    assert sorted(p.name for p in (tmp_path / "cells").glob("*.json")) == before


@pytest.mark.solver
def test_weight_baselines_register_with_allocate():
    from allocator.allocation import allocate
    from allocator.bound import ln_expected_bound
    from allocator.pruning import weight_baselines

    torch.manual_seed(0)
    model = get_model("mlp-2x100").build()
    network = get_model("mlp-2x100").network
    result = allocate(network, density=0.01, baselines=("uniform",), extra_baselines=weight_baselines(model),
                      raw_baselines=True)
    for name in ("global-magnitude", "lamp"):
        baseline = result.baselines[name]
        assert sum(baseline.kept[:2]) == result.budget.kept and baseline.kept[2] == 1000
        densities = [k / w for k, w in zip(baseline.kept, network.weights)]
        assert baseline.ln_bound == pytest.approx(ln_expected_bound(network, densities), abs=1e-9)
    expected = global_kept(scores("magnitude", model, ["fc1.weight", "fc2.weight"]), result.budget.kept)
    magnitude = result.baselines["global-magnitude"]
    raw = magnitude.raw_kept if magnitude.repaired else magnitude.kept
    assert raw[:2] == (expected["fc1.weight"], expected["fc2.weight"])
    if magnitude.repaired:  # one global threshold emptied a layer: held to min_kept = 1 like ours
        assert min(magnitude.kept[:2]) >= 1 and min(raw[:2]) == 0


@pytest.mark.solver
def test_apply_allocation_refuses_a_mismatched_model_and_fits_a_matching_one():
    from allocator.allocation import allocate
    from allocator.pruning import apply_allocation

    allocation = allocate(get_model("mlp-2x200").network, density=0.01, baselines=())
    model = get_model("mlp-2x100").build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InvalidInputError, match=r"fc1.weight has shape \(100, 784\) in the model, \(200, 784\)"):
        apply_allocation(model, allocation)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    fitting = allocate(get_model("mlp-2x100").network, density=0.01, baselines=())
    counts = apply_allocation(model, fitting)
    assert counts == {"fc1.weight": fitting.kept[0], "fc2.weight": fitting.kept[1]}
    verify_counts(model, counts)


@pytest.mark.solver
@pytest.mark.study
def test_regions_cli_on_a_small_trained_model(idx_dir, tmp_path, capsys):
    from allocator.cli.main import main

    status = main(["regions", "--model", "mlp-2x100", "--dataset", "mnist", "--data-dir", str(idx_dir),
                   "--train-epochs", "1", "--density", "0.01", "--finetune-epochs", "1", "--json",
                   "--resolution", "100", "--out", str(tmp_path / "regions.png")])
    document = json.loads(capsys.readouterr().out)
    assert status == 0 and (tmp_path / "regions.png").stat().st_size > 1000
    dense, pruned = document["results"]["dense"], document["results"]["pruned"]
    for row in (dense, pruned):
        assert row["sampled_lower_bound"] <= row["regions"] <= row["plane_bound"]
    kept = [round(d * w) for d, w in zip(pruned["densities"][:2], (78400, 10000))]
    assert sum(kept) == 884  # density 0.01 of the 88,400 prunable weights


@pytest.mark.parametrize("model_name, density, max_density", [("mlp-2x100", 0.002, 0.05), ("lenet5", 0.01, 0.05),
                                                               ("mlp-2x100", 0.01, 0.01)])
def test_sparse_finetune_equals_masked_dense_training(idx_dir, model_name, density, max_density):
    """The last case mixes a sparse layer (fc1 at 717 of 78,400) with a pruned layer kept dense in the twin (fc2 at
    167 of 10,000): that layer must stay masked while the twin trains."""
    from allocator.allocation import allocate
    from allocator.pruning import apply_allocation
    from allocator.pruning.finetune.sparse import finetune

    data = Tensors.from_dataset(load_dataset("mnist", data_dir=idx_dir, validation=100))
    entry = get_model(model_name)
    allocation = allocate(entry.network, density=density, baselines=())
    models = []
    for sparse in (False, True):
        torch.manual_seed(3)
        model = entry.build()
        counts = apply_allocation(model, allocation)
        config = TrainConfig(epochs=2, batch_size=64)
        (finetune(model, entry.build, data, config, seed=9, max_density=max_density) if sparse else train(model, data, config, seed=9))
        verify_counts(model, counts)
        models.append(model)
    dense_state, sparse_state = models[0].state_dict(), models[1].state_dict()
    assert set(dense_state) == set(sparse_state)
    for key in dense_state:
        assert torch.allclose(dense_state[key], sparse_state[key], atol=1e-5), key
    for name, kept in counts.items():
        module = models[1].get_submodule(name.rsplit(".", 1)[0])
        assert int(torch.count_nonzero(module.weight)) <= kept


@pytest.mark.parametrize("model_name, freeze", [("mlp-2x100", False), ("lenet5", True)])
@pytest.mark.solver
@pytest.mark.study
def test_batched_engine_equals_the_reference_engine_cell_by_cell(idx_dir, tmp_path, model_name, freeze):
    """Same run, two engines: batched cells (sparse and dense groups) vs one masked model at a time."""
    from allocator.study.validate import ValidateConfig, run_validation

    base = dict(model=model_name, dataset="mnist", data_dir=str(idx_dir), densities=(0.003, 0.05),
                allocations=("ours", "uniform"), seeds=(0,), freeze_features=freeze,
                train=TrainConfig(epochs=1, batch_size=64), finetune=TrainConfig(epochs=2, batch_size=64))
    messages: list[str] = []
    run_validation(ValidateConfig(**base, sparse_finetune=True), tmp_path / "batched", say=messages.append)
    run_validation(ValidateConfig(**base, sparse_finetune=False), tmp_path / "reference")
    assert any("engine: batched cells" in m for m in messages)
    cells = sorted((tmp_path / "reference" / "cells").glob("*.json"))
    assert len(cells) == 4
    duplicates = 0
    for path in cells:
        reference = json.loads(path.read_text())
        batched = json.loads((tmp_path / "batched" / "cells" / path.name).read_text())
        assert "batched_cells" not in reference
        assert batched["kept"] == reference["kept"]
        if "same_counts_as" in batched:  # computed once: the cell with the same counts in this seed
            source = batched["same_counts_as"]
            twin = json.loads((tmp_path / "batched" / "cells" /
                               f"seed0-d{source['density']!r}-{source['allocation']}-magnitude.json").read_text())
            assert twin["kept"] == batched["kept"] and twin["test_loss"] == batched["test_loss"]
            duplicates += 1
        else:
            assert batched["batched_cells"] >= 1
        assert batched["test_loss"] == pytest.approx(reference["test_loss"], abs=1e-4), path.name
        assert abs(batched["test_accuracy"] - reference["test_accuracy"]) <= 1 / 200 + 1e-9
        assert batched["finetune_best_epoch"] == reference["finetune_best_epoch"]
    assert duplicates >= 1  # at 0.05 ours keeps uniform's counts
    # resuming without a duplicate copies it from its twin on disk instead of training again
    copied = next(p for p in (tmp_path / "batched" / "cells").glob("*.json") if "same_counts_as" in json.loads(p.read_text()))
    before = json.loads(copied.read_text())
    copied.unlink()
    messages.clear()
    run_validation(ValidateConfig(**base, sparse_finetune=True), tmp_path / "batched", say=messages.append)
    assert json.loads(copied.read_text()) == before
    assert not any(m.startswith("seed 0: fine-tuning") for m in messages)


@pytest.mark.study
def test_a_stored_run_predating_a_nested_setting_still_matches():
    from allocator.study.config import ValidateConfig, changed_fields as _changed_fields, run_identity

    identity = run_identity(ValidateConfig())
    stored = json.loads(json.dumps(identity))
    del stored["finetune"]["weight_decay"], stored["freeze_features"], stored["sparse_finetune"]
    assert _changed_fields(stored, identity) == []
    stored["finetune"]["lr"] = 0.5
    assert _changed_fields(stored, identity) == ["finetune"]


@pytest.mark.study
def test_freeze_features_is_refused_for_a_model_without_a_relu_chain(tmp_path):
    from allocator.study.validate import ValidateConfig, run_validation

    config = ValidateConfig(model="resnet20", dataset="cifar10", data_dir=str(tmp_path), freeze_features=True)
    with pytest.raises(InvalidInputError, match="freeze_features needs a model .* resnet20"):
        run_validation(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    ValidateConfig(model="lenet5", freeze_features=True).check()
