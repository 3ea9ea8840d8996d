"""What defines a validation run: its configuration, checked before any work, and the identity of its run folder."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from allocator.allocation.baselines import baseline_names
from allocator.errors import InvalidInputError
from allocator.pruning.finetune.config import TrainConfig

KOOPMAN_CRITERIA = ("kmp", "kgp")

#: ``ours`` and every registered weight-free baseline (``allocator.allocation.baselines``).
WEIGHT_FREE_RULES = ("ours",) + baseline_names()
#: The rules that read a trained model's weights (``allocator.pruning.baselines.WEIGHT_RULES``; a test holds the two
#: equal, this module stays free of torch).
WEIGHT_BASED_RULES = ("global-magnitude", "lamp", "synflow", "rd", "alpha")
#: ``ours`` with a data objective (``allocator.formulation.distortion``): per seed, the dense model's distortion curves on
#: a calibration batch of training images, then ``allocate(objective=...)`` at the cell's budget and constraints.
DATA_OBJECTIVE_RULES = ("ours-distortion", "ours-guarded")
#: ``ours-guarded:TAU``: the guarded objective with its own guard of TAU nats (the default rule uses 1 nat).
GUARD_PREFIX = "ours-guarded:"


def guard_of(rule: str) -> float | None:
    """The guard (nats) of an ``ours-guarded:TAU`` rule, ``None`` for another rule; a bad TAU is refused."""
    if not rule.startswith(GUARD_PREFIX):
        return None
    text = rule[len(GUARD_PREFIX):]
    value = float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else math.nan  # plain decimals: one name per guard
    if not (math.isfinite(value) and value >= 0):
        raise InvalidInputError(f"allocation {rule!r}: the guard {text!r} is not a number of nats >= 0 "
                                f"(a plain decimal such as ours-guarded:3 or ours-guarded:0.5)")
    return value
ALLOCATION_RULES = WEIGHT_FREE_RULES + WEIGHT_BASED_RULES + DATA_OBJECTIVE_RULES

# How cells are computed, not what they measure: a run may be resumed with another engine.
ENGINE_FIELDS = frozenset({"threads", "sparse_finetune", "save_models"})


@dataclass(frozen=True)
class ValidateConfig:
    """Everything that defines a validation run (frozen into ``config.json`` of the run folder)."""

    model: str = "mlp-2x100"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    densities: tuple[float, ...] = (0.001,)
    allocations: tuple[str, ...] = ("ours", "uniform")
    criterion: str = "magnitude"
    seeds: tuple[int, ...] = (0, 1, 2)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: TrainConfig = field(default_factory=TrainConfig)
    rank_model: str = "binomial"
    threads: int = 1
    label: str = ""
    validation: int | None = None  # held-out training images; None: min(5000, 10 % of train)
    koopman_steps: int | None = None  # kmp/kgp: optimiser steps in the snapshot window; None: one epoch
    koopman_stride: int = 1
    sparse_finetune: bool = True  # fast engines: kept weights only, many cells batched (same results)
    freeze_features: bool = False  # fine-tune the linear chain only; layers before fc1 stay at the dense model
    input_shape: tuple[int, ...] | None = None  # a model that is not registered: one example's shape (else the data's)
    trust_model_file: bool = False  # allow a model pickled by torch.save(model) (unpickling runs its code)
    allocation_files: tuple[str, ...] = ()  # solved allocations, each validated as rule "file-<stem>" at its density
    save_models: bool = False  # keep every fine-tuned pruned model (masks made permanent) under models/
    convs_inside: bool = False  # a CNN's convs inside the bound and pruned (default: frozen, paper 1's convention)
    respend_dead: bool = False  # trade kept weights on no input-output path for live ones (MLPs; same counts)

    def file_rules(self) -> dict[str, str]:
        """``{"file-<stem>": path}`` for every allocation file."""
        from pathlib import Path

        return {f"file-{Path(path).stem}": path for path in self.allocation_files}

    def file_densities(self) -> dict[str, float]:
        """The density each file rule is validated at: the density its budget was given as (else its kept share)."""
        from allocator.allocation.file import load

        densities = {}
        for rule, path in self.file_rules().items():
            budget = load(path).budget
            densities[rule] = budget.given_value if budget.given_as == "density" else budget.density
        return densities

    def cells(self) -> list[tuple[float, str]]:
        """Every (density, rule) cell of one seed: each rule at each density, a file rule at its own density."""
        files = self.file_densities() if self.allocation_files else {}
        return [(density, rule) for density in self.densities for rule in self.allocations
                if rule not in files or files[rule] == density]

    def check(self) -> None:
        """Raise ``InvalidInputError`` on any bad value, before any work starts."""
        import torch

        import allocator.koopman  # noqa: F401  (registers the kmp and kgp criteria)
        from allocator.pruning.criteria import criterion_names

        self.entry()
        files = self.file_rules()
        if len(files) != len(self.allocation_files):
            raise InvalidInputError(f"allocation files {list(self.allocation_files)} repeat a file name; give each a "
                                    f"distinct name (its rule is file-<name>)")
        for rule in self.allocations:
            if rule not in ALLOCATION_RULES and rule not in files and guard_of(rule) is None:
                raise InvalidInputError(f"allocation {rule!r} is unknown; accepted: {', '.join(ALLOCATION_RULES)}, "
                                        f"{GUARD_PREFIX}TAU"
                                        + (f", {', '.join(files)}" if files else ""))
        for rule, density in self.file_densities().items():
            if rule not in self.allocations or density not in self.densities:
                raise InvalidInputError(f"allocation file {files[rule]} (rule {rule}) is at density {density:g}: put "
                                        f"{rule} in the allocations and {density:g} in the densities")
        if len(set(self.allocations)) != len(self.allocations) or not self.allocations:
            raise InvalidInputError(f"allocations {list(self.allocations)!r} must be distinct and not empty")
        if self.criterion not in criterion_names():
            raise InvalidInputError(f"criterion {self.criterion!r} is unknown; accepted: {', '.join(criterion_names())}")
        for density in self.densities:
            if not (isinstance(density, float) and 0.0 < density <= 1.0):
                raise InvalidInputError(f"density {density!r} is outside (0, 1]")
        if not self.densities or not self.seeds:
            raise InvalidInputError("give at least one density and one seed")
        for label, values in (("densities", self.densities), ("seeds", self.seeds)):
            repeated = sorted({v for v in values if list(values).count(v) > 1})
            if repeated:
                raise InvalidInputError(f"{label} {list(values)} repeat {', '.join(map(str, repeated))}; give each once")
        if self.threads < 1:
            raise InvalidInputError(f"threads is {self.threads!r}; expected an integer >= 1")
        if self.convs_inside and (self.freeze_features or self.criterion in KOOPMAN_CRITERIA):
            raise InvalidInputError("convs_inside prunes the convolutions: it cannot go with freeze_features (which "
                                    "keeps them at the dense model) nor with the Koopman criteria (linear chains only)")
        if self.convs_inside and self.entry().conv_builder is None:
            raise InvalidInputError(f"convs_inside: model {self.model} has no convolution to put inside the bound")
        if self.convs_inside:
            self.entry().conv_network  # a CNN the fx translator cannot prove is refused here, by name
        if self.respend_dead and (self.entry().conv_builder is not None or self.criterion in KOOPMAN_CRITERIA):
            raise InvalidInputError(f"respend_dead traces paths through a chain of linear layers: model {self.model} "
                                    f"{'has convolutions' if self.entry().conv_builder is not None else 'with a Koopman criterion is not supported'}; "
                                    f"accepted: an MLP with a weight-score criterion (magnitude, random, gradient, lamp)")
        if "alpha" in self.allocations:  # AlphaPruning fits each prunable tensor's spectrum: refuse tiny ones now
            from allocator.pruning.alpha import MIN_TAIL

            network = self.entry().bound_network(frozen_convs=not self.convs_inside)
            for spec, prunable in zip(network.layers, network.prunable):
                shape = spec.tensor_shape
                if prunable and min(shape[0], math.prod(shape[1:])) < MIN_TAIL + 1:
                    raise InvalidInputError(f"allocation 'alpha' fits a power law to each prunable tensor's "
                                            f"{MIN_TAIL + 1}+ singular values; {spec.name} of shape {tuple(shape)} has "
                                            f"{min(shape[0], math.prod(shape[1:]))}")
        if self.freeze_features:
            from allocator.pruning.finetune.batched import check_chain

            entry = self.entry()
            try:
                check_chain(entry.build(), torch.rand(2, *entry.input_shape))
            except InvalidInputError as error:
                raise InvalidInputError(f"freeze_features needs a model whose head is a ReLU chain of its linear layers; "
                                        f"{self.model}: {error}") from None

    def entry(self, data_shape: tuple[int, ...] | None = None):
        """The model's ``ModelEntry`` (``allocator.pruning.model_source.resolve_model``); a model that is not
        registered takes ``input_shape``, else ``data_shape`` (the data set's), else what its first layer says."""
        from allocator.pruning.model_source import resolve_model

        return resolve_model(self.model, input_shape=self.input_shape or data_shape,
                             trust_model_file=self.trust_model_file)

    def to_json(self) -> dict[str, object]:
        document = asdict(self)
        document["input_shape"] = None if self.input_shape is None else list(self.input_shape)
        document["allocation_files"] = list(self.allocation_files)
        document["densities"] = list(self.densities)
        document["allocations"] = list(self.allocations)
        document["seeds"] = list(self.seeds)
        return document


#: What a run folder can grow by: more seeds, densities or rules only add cells (the dense models are reused),
#: so tasks for different seeds (a sweep) can also share one folder concurrently.
GROWABLE_FIELDS = ("seeds", "densities", "allocations", "allocation_files")


def run_identity(config: ValidateConfig) -> dict[str, object]:
    """What a run folder is bound to: the configuration without ``GROWABLE_FIELDS`` and the label."""
    identity = config.to_json()
    for key in GROWABLE_FIELDS + ("label",):
        identity.pop(key)
    identity.pop("save_models")  # how results are kept, not what they measure
    identity.pop("trust_model_file")  # a permission, not part of what is measured
    if identity["input_shape"] is None:  # registered models (and the runs that predate the option) have none
        identity.pop("input_shape")
    return identity


def changed_fields(previous: dict[str, object], identity: dict[str, object]) -> list[str]:
    """Fields of ``identity`` that differ from a stored run's; fields the stored run predates (also inside the
    nested training settings) count as their defaults, and engine fields are ignored."""
    defaults = ValidateConfig().to_json()

    def same(old: object, new: object, default: object) -> bool:
        if isinstance(new, dict) and isinstance(old, dict):
            base = default if isinstance(default, dict) else {}
            return all(same(old.get(k, base.get(k)), v, base.get(k)) for k, v in new.items())
        return old == new

    return sorted(key for key, value in identity.items()
                  if key not in ENGINE_FIELDS and not same(previous.get(key, defaults.get(key)), value, defaults.get(key)))
