"""Batched fine-tuning of many pruned cells equals training each cell alone (the oracle: ``train`` on the
masked dense model, torch.nn.utils.prune's own path)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from allocator.errors import InvalidInputError  # noqa: E402
from allocator.models.convnets import LeNet5  # noqa: E402
from allocator.models.mlp import MLP  # noqa: E402
from allocator.pruning.finetune.batched import (  # noqa: E402
    BatchedChain, ChainData, check_chain, finetune_cells, layer_modes)
from allocator.pruning.masks import prune_to_counts  # noqa: E402
from allocator.pruning.finetune.training import Tensors, TrainConfig, train  # noqa: E402

pytestmark = pytest.mark.torch


def _data(inputs: int, classes: int = 5, seed: int = 0, shape: tuple[int, ...] | None = None) -> Tensors:
    generator = torch.Generator().manual_seed(seed)
    shape = shape or (inputs,)
    centres = torch.randn(classes, *shape, generator=generator)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, classes, (n,), generator=generator)
        return centres[y] + 0.8 * torch.randn(n, *shape, generator=generator), y

    return Tensors(*split(600), *split(150), *split(150))


def _pruned(build, state, kept: dict[str, int], seed: int):
    model = build()
    model.load_state_dict(state)
    generator = torch.Generator().manual_seed(seed)
    scores = {name: torch.rand(model.get_submodule(name.rsplit(".", 1)[0]).weight.shape, generator=generator)
              for name in kept}
    prune_to_counts(model, scores, kept)
    return model


# kept counts of fc1 (20x24 = 480 weights) and fc2 (24x16 = 384): sparse, mixed, dense-masked, one empty layer
CELLS = [{"fc1.weight": 3, "fc2.weight": 2}, {"fc1.weight": 4, "fc2.weight": 3}, {"fc1.weight": 0, "fc2.weight": 3},
         {"fc1.weight": 2, "fc2.weight": 200}, {"fc1.weight": 300, "fc2.weight": 100}, {"fc1.weight": 4, "fc2.weight": 1}]


@pytest.mark.parametrize("select_on, max_density", [("validation", 0.02), ("validation", 1.0), ("last", 0.02)])
def test_batched_cells_equal_training_each_alone(select_on, max_density):
    """max_density 0.02 mixes the layer modes (three groups); 1.0 puts all six cells in one sparse group, whose
    cells peak at different epochs, so selection must be per cell."""
    torch.manual_seed(1)
    build = lambda: MLP(20, (24, 16), 5)  # noqa: E731
    state = build().state_dict()
    data = _data(20)
    config = TrainConfig(epochs=5, batch_size=32, select_on=select_on)
    alone, batched = [], []
    for index, kept in enumerate(CELLS):
        model = _pruned(build, state, kept, seed=index)
        result = train(model, data, config, seed=5)
        alone.append((model, result))
        batched.append(_pruned(build, state, kept, seed=index))
    results = finetune_cells(batched, ChainData.from_model(batched[0], data), config, seed=5, max_density=max_density)
    if select_on == "validation":  # the cells peak at different epochs, so selection must be per cell
        assert len({result.best_epoch for _, result in alone}) > 1
    modes = {layer_modes(m, max_density) for m in batched}
    assert modes == {("sparse", "sparse", "dense")} if max_density == 1.0 else {("sparse", "sparse", "dense"), ("sparse", "dense", "dense"), ("dense", "dense", "dense")} <= modes
    for (model, expected), got_model, got in zip(alone, batched, results):
        assert got.best_epoch == expected.best_epoch
        for a, b in zip(expected.history, got.history):
            assert a.train_loss == pytest.approx(b.train_loss, abs=1e-5)
            assert a.select_loss == pytest.approx(b.select_loss, abs=1e-5)
        reference, state_got = model.state_dict(), got_model.state_dict()
        assert set(reference) == set(state_got)
        for key in reference:
            assert torch.allclose(reference[key], state_got[key], atol=1e-5), key
        for name in ("fc1", "fc2"):  # the masks are untouched
            module = got_model.get_submodule(name)
            assert int(module.weight_mask.sum()) == CELLS[batched.index(got_model)][f"{name}.weight"]


def test_frozen_features_train_only_the_chain_of_lenet():
    torch.manual_seed(2)
    build = lambda: LeNet5()  # noqa: E731
    dense = build()
    data = _data(784, shape=(1, 28, 28))
    check_chain(dense, data.train_x[:8])
    chain_data = ChainData.from_model(dense, data)
    assert chain_data.train_x.shape == (600, 400)
    config = TrainConfig(epochs=2, batch_size=50)
    cells = [_pruned(build, dense.state_dict(), {"fc1.weight": k, "fc2.weight": 5}, seed=k) for k in (10, 40)]
    conv_before = [m.conv1.weight.clone() for m in cells]
    finetune_cells(cells, chain_data, config, seed=3)
    # oracle: train the same cell alone with every non-chain parameter frozen
    for k, model, conv in zip((10, 40), cells, conv_before):
        assert torch.equal(model.conv1.weight, conv)
        reference = _pruned(build, dense.state_dict(), {"fc1.weight": k, "fc2.weight": 5}, seed=k)
        for name, parameter in reference.named_parameters():
            parameter.requires_grad_(name.startswith("fc"))
        train(reference, data, config, seed=3)
        for key, value in reference.state_dict().items():
            assert torch.allclose(value, model.state_dict()[key], atol=1e-5), key


def test_check_chain_refuses_a_model_that_is_not_a_relu_chain():
    class Tanh(MLP):
        def forward(self, inputs):
            return self.fc2(torch.tanh(self.fc1(inputs.flatten(1))))

    model = Tanh(6, (5,), 3)
    with pytest.raises(InvalidInputError, match="not a ReLU chain"):
        check_chain(model, torch.randn(4, 6))
    check_chain(MLP(6, (5,), 3), torch.randn(4, 6))


def test_batched_chain_rejects_mixed_pruning():
    torch.manual_seed(0)
    a, b = MLP(6, (5,), 3), MLP(6, (5,), 3)
    prune_to_counts(a, {"fc1.weight": torch.rand(5, 6)}, {"fc1.weight": 3})
    with pytest.raises(InvalidInputError, match="pruned in some models"):
        BatchedChain([a, b], ("dense", "dense"))


class _NoBias(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(20, 24, bias=False)
        self.fc2 = torch.nn.Linear(24, 16, bias=False)
        self.fc3 = torch.nn.Linear(16, 5)

    def forward(self, inputs):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(inputs)))))


def test_layers_without_bias_stay_without_bias():
    torch.manual_seed(4)
    state = _NoBias().state_dict()
    data = _data(20)
    config = TrainConfig(epochs=3, batch_size=32)
    alone = _pruned(_NoBias, state, CELLS[0], seed=0)
    expected = train(alone, data, config, seed=2)
    batched = [_pruned(_NoBias, state, kept, seed=i) for i, kept in enumerate(CELLS[:2])]
    got = finetune_cells(batched, ChainData.from_model(batched[0], data), config, seed=2)
    assert [r.select_loss for r in got[0].history] == pytest.approx([r.select_loss for r in expected.history], abs=1e-6)
    assert batched[0].fc1.bias is None and not any("bias0" in n for n, _ in BatchedChain(batched, ("sparse",) * 2 + ("dense",)).named_parameters())


def test_pruned_bias_and_dropout_are_refused():
    from torch.nn.utils import prune

    model = MLP(6, (5,), 3)
    prune.l1_unstructured(model.fc1, "bias", amount=1)
    with pytest.raises(InvalidInputError, match="pruned bias"):
        BatchedChain([model], ("dense", "dense"))

    class Dropped(MLP):
        def forward(self, inputs):
            return self.fc2(torch.nn.functional.dropout(torch.relu(self.fc1(inputs.flatten(1))), 0.5, self.training))

    with pytest.raises(InvalidInputError, match="training mode"):
        check_chain(Dropped(6, (5,), 3), torch.randn(4, 6))
