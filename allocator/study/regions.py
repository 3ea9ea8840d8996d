"""The regions run shared by ``allocator regions`` and the studies: train (or load) a dense MLP, prune a copy by
the cell protocol, and count the linear regions of both exactly on a plane through three test images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from allocator.errors import InvalidInputError

Say = Callable[[str], None]
REGION_RULES = ("ours", "uniform")


@dataclass(frozen=True)
class RegionsRequest:
    """What ``run_regions`` does; ``check()`` refuses every bad value before any work.

    Attributes:
        allocation_file: an allocation file whose kept counts prune the copy; or ``density`` with ``rule``: solve
            one now (``ours``) or take its ``uniform`` baseline. Neither: only the dense model is counted.
        points: three test-set indices spanning the plane. resolution: side of the sampling grid (lower bound,
            picture).
    """

    model: str = "mlp-2x100"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    checkpoint: str | None = None
    train_epochs: int = 3
    seed: int = 0
    allocation_file: str | None = None
    density: float | None = None
    rule: str = "ours"
    finetune_epochs: int = 3
    points: tuple[int, ...] = (0, 1, 2)
    resolution: int = 300
    threads: int = 1
    input_shape: tuple[int, ...] | None = None
    trust_model_file: bool = False

    def entry(self, data_shape: tuple[int, ...] | None = None):
        """The model's ``ModelEntry`` (``allocator.pruning.model_source.resolve_model``)."""
        from allocator.pruning.model_source import resolve_model

        return resolve_model(self.model, input_shape=self.input_shape or data_shape,
                             trust_model_file=self.trust_model_file)

    def check(self) -> None:
        """Raise ``InvalidInputError`` naming the first bad value."""
        self.entry()
        if self.allocation_file and self.density is not None:
            raise InvalidInputError("give --allocation FILE or --density, not both")
        if self.density is not None and not 0.0 < self.density <= 1.0:
            raise InvalidInputError(f"--density {self.density!r} is outside (0, 1]")
        if self.rule not in REGION_RULES:
            raise InvalidInputError(f"rule {self.rule!r} is unknown; accepted: {', '.join(REGION_RULES)}")
        if len(self.points) != 3 or len(set(self.points)) != 3 or any(p < 0 for p in self.points):
            raise InvalidInputError(f"--points {','.join(map(str, self.points))} must be three distinct test-set "
                                    f"indices >= 0, such as 0,1,2")
        for label, value in (("--train-epochs", self.train_epochs), ("--finetune-epochs", self.finetune_epochs)):
            if value < 0:
                raise InvalidInputError(f"{label} is {value!r}; expected an integer >= 0")


@dataclass
class RegionsRun:
    """What ``run_regions`` measured: per model (``dense``, ``pruned``), test accuracy and the region count."""

    request: RegionsRequest
    dataset: dict[str, object]
    rows: dict[str, dict[str, object]]
    models: dict[str, object]
    plane: object

    def to_json(self) -> dict[str, object]:
        return {"model": self.request.model, "dataset": self.dataset, "points": list(self.request.points),
                "results": self.rows}


def run_regions(request: RegionsRequest, say: Say | None = None, plot_to: str | Path | None = None) -> RegionsRun:
    """Run ``request`` (module docstring); with ``plot_to``, also write the plane coloured by region (PNG).

    The pruned copy follows the cell protocol (``allocator.study.cells``): magnitude scores of the dense model,
    exactly the allocated count per tensor, fine-tuning seeded by ``derive_seed(seed, "finetune")``.
    """
    import torch

    from allocator.allocation.file import load as load_allocation
    from allocator.data import load_dataset
    from allocator.pruning import Tensors, TrainConfig, allocation_counts, evaluate, make_permanent, scores, set_threads, train
    from allocator.regions.model import count_model_regions, data_slice, images, mlp_layers, plot_regions
    from allocator.study.cells import finetune_cell, prune_from_dense
    from allocator.study.seeds import derive_seed

    request.check()
    say = say or (lambda message: None)
    set_threads(request.threads)
    allocation = load_allocation(request.allocation_file) if request.allocation_file else None
    dataset = load_dataset(request.dataset, data_dir=request.data_dir)
    entry = request.entry(data_shape=tuple(dataset.input_shape))
    data = Tensors.from_dataset(dataset)
    if tuple(entry.input_shape) != tuple(dataset.input_shape):
        data = data.reshaped(entry.input_shape)
    indices = list(request.points)
    images(data.test_x, indices)  # indices outside the test split are refused before training
    torch.manual_seed(derive_seed(request.seed, "dense"))
    dense = entry.build()
    mlp_layers(dense)  # refuse non-MLPs before training
    # an allocation file that does not fit the model is refused here, naming each tensor, before any training
    kept: dict[str, int] | None = allocation_counts(allocation, dense) if allocation is not None else None
    if request.checkpoint:
        _load_checkpoint(dense, _checkpoint_state(request.checkpoint, request.model), request.checkpoint, request.model)
    else:
        say(f"training {request.model} on {request.dataset} for {request.train_epochs} epochs (seed {request.seed})")
        train(dense, data, TrainConfig(epochs=request.train_epochs), derive_seed(request.seed, "dense"))
    models = {"dense": dense}
    if kept is None and request.density is not None:
        from allocator.allocation import allocate

        result = allocate(entry.network, density=request.density, baselines=("uniform",))
        counts = result.kept if request.rule == "ours" else result.baselines["uniform"].kept
        kept = {n: k for n, k, p in zip(entry.network.names, counts, entry.network.prunable) if p}
    if kept is not None:
        pruned = prune_from_dense(entry.build, dense.state_dict(), scores("magnitude", dense, list(kept)), kept)
        if request.finetune_epochs:
            say(f"fine-tuning the pruned model for {request.finetune_epochs} epochs with masks fixed")
            finetune_cell(pruned, entry.build, data, TrainConfig(epochs=request.finetune_epochs), request.seed)
        make_permanent(pruned)
        models["pruned"] = pruned
    plane = data_slice(images(data.test_x, indices), dataset.mean[0], dataset.std[0])
    rows = {}
    for label, model in models.items():
        count = count_model_regions(model, plane, request.resolution)
        rows[label] = {"test_accuracy": evaluate(model, data.test_x, data.test_y)[1], **count.to_json()}
    if plot_to:
        plot_regions(models, plane, plot_to, request.resolution,
                     title=f"{request.model} on the plane through test images {indices}",
                     exact_counts={label: int(row["regions"]) for label, row in rows.items()})
    return RegionsRun(request, dataset.describe(), rows, models, plane)


def _checkpoint_state(path: str, model_name: str) -> dict:
    """The state_dict in ``path`` (read with ``weights_only``: no code runs), or one line saying what is wrong."""
    import pickle

    import torch

    if not Path(path).is_file():
        raise InvalidInputError(f"--checkpoint {path!r}: no such file")
    with open(path, "rb") as stream:
        header = stream.read(4)
    if not (header.startswith(b"PK") or header.startswith(b"\x80")):  # torch.save's zip, or a legacy pickle
        raise InvalidInputError(f"--checkpoint {path!r} is not a file written by torch.save (give a model's "
                                f"state_dict() saved with torch.save)")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            raise InvalidInputError(f"--checkpoint {path!r} holds pickled objects, not only tensors (a whole model "
                                    f"saved with torch.save(model)?): give its state_dict(), or pass the file as "
                                    f"--model with --trust-model-file") from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidInputError(f"--checkpoint {path!r} could not be read: {first}") from None
    if not isinstance(state, dict):
        raise InvalidInputError(f"--checkpoint {path!r} holds a {type(state).__name__}, not a state_dict")
    return state


def _load_checkpoint(model, state: dict, path: str, model_name: str) -> None:
    """``model.load_state_dict(state)``, refusing in one line that names every key missing, unexpected or of
    another shape."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        raise InvalidInputError(f"--checkpoint {path!r} does not fit {model_name}: "
                                f"{'; '.join(details) or str(error).strip()}") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {', '.join(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected {', '.join(result.unexpected_keys)}")
    if problems:
        raise InvalidInputError(f"--checkpoint {path!r} does not fit {model_name}: {'; '.join(problems)}")
