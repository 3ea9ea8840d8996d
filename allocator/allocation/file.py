"""The allocation file: one versioned JSON document keyed by module name, with a content hash.

Layout (``FORMAT``, ``VERSION`` 2):

    format, version, created_by
    network      input_width, widths, include_output_layer, flops_per_weight, layer_order
    layers       {name: shape, weights, kept, density, sparsity, prunable, pinned, tied_group}
    budget       kept, density, prunable_weights, given_as, given_value, counts, compression_ratio
    objective    rank_model, rank_model_options, include_output_layer, ln_bound, log2_bound,
                 surrogate, surrogate_value
    constraints  the side constraints as given
    solver       status, certificate, mip{...}, polish{...}, solve_seconds, versions{...}
    baselines    {name: description, kept{name: count} | null, ln_bound | null, unavailable | null, repaired,
                 raw_kept{name: count} and raw_ln_bound when the raw counts were asked for and repaired}
    content_hash "sha256:<hex>" over the canonical JSON of the whole decision record: network, layers, budget,
                 objective, constraints, baselines and solver, less every timing ("seconds") and the versions

``kept`` is the source of truth; density and sparsity are derived from it. The hash covers the decision, its
bound, what was proven and the baselines it was compared with, not timings, so two runs that choose the same
allocation hash the same, and a file whose status, certificate or baseline bounds were edited is refused.
Version 1 files (hash over network, layers, budget and objective only) are still read. Loading checks the
format, the version, the hash and that every derived number agrees with the kept counts.
"""

from __future__ import annotations

import dataclasses

import hashlib
import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from allocator import __version__
from allocator.allocation.record import Allocation, AllocationStatus, BaselineResult, LayerAllocation
from allocator.formulation.problem import Budget, Constraints
from allocator.solver.highs import MipReport, Termination
from allocator.bound.rank import RankModel
from allocator.errors import InvalidInputError
from allocator.io_utils import atomic_write_text
from allocator.bound.engine import bound_convention
from allocator.network import Cap, ConvGeometry, Network, Relu, ReluMaxPool, Residual

FORMAT = "layerwise-allocation"
VERSION = 2
READABLE_VERSIONS = (1, 2)
HASHED_SECTIONS = ("network", "layers", "budget", "objective")
#: Version 2 hashes these too (without timings and versions).
RECORD_SECTIONS = ("constraints", "baselines", "solver")
SURROGATE_NAME = "rank-capped product form: sum_l ln S(n_l, min(m_{l-1}, E[rank_l], n_l))"


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _from_number(value: float | None, missing: float = math.nan) -> float:
    return missing if value is None else float(value)


def _versions() -> dict[str, str]:
    versions = {"allocator": __version__, "python": platform.python_version()}
    for package in ("numpy", "scipy", "pyomo", "highspy", "networkx"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # pragma: no cover - installed as dependencies
            versions[package] = "not installed"
    return versions


def _without_timings(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_timings(v) for k, v in value.items() if "seconds" not in k and k != "versions"}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def content_hash(document: Mapping[str, Any]) -> str:
    """``sha256`` of the canonical JSON (sorted keys, no spaces) of the hashed sections: for version 2 the whole
    decision record less timings and versions, for version 1 network, layers, budget and objective."""
    payload = {section: document[section] for section in HASHED_SECTIONS}
    if document.get("version", VERSION) >= 2:
        payload.update({section: _without_timings(document[section]) for section in RECORD_SECTIONS})
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _mip_document(mip: MipReport | None) -> dict[str, Any] | None:
    if mip is None:
        return None
    return {
        "status": mip.status, "objective": _number(mip.objective), "bound": _number(mip.bound),
        "gap": _number(mip.gap), "seconds": mip.seconds, "first_solve_seconds": mip.first_solve_seconds,
        "build_seconds": mip.build_seconds, "solutions": mip.solutions, "binaries": mip.binaries,
        "solver": mip.solver, "solver_version": mip.solver_version, "options": dict(mip.options),
    }


def _constraints_document(constraints: Constraints) -> dict[str, Any]:
    def densities(value: float | Mapping[str, float] | None) -> float | dict[str, float] | None:
        return dict(value) if isinstance(value, Mapping) else value

    return {
        "min_density": densities(constraints.min_density),
        "max_density": densities(constraints.max_density),
        "pinned": dict(constraints.pinned),
        "min_kept": constraints.min_kept,
        "min_kept_per_output_unit": constraints.min_kept_per_output_unit,
        "tied": [list(group) for group in constraints.tied],
        "flops_budget": constraints.flops_budget,
    }


_STEPS = {"Relu": Relu, "ReluMaxPool": ReluMaxPool, "Cap": Cap, "Residual": Residual}


def _program_document(network: Network) -> dict[str, Any]:
    """A program network's steps, matrix shapes, conv geometries and parameter count (absent for a chain)."""
    return {
        "program": [{"step": type(step).__name__, **dataclasses.asdict(step)} for step in network.program],
        "layer_shapes": [list(shape) for shape in network.layer_shapes],
        "convs": [None if g is None else dataclasses.asdict(g) for g in network.convs],
        "parameters": network.parameters,
    }


def _program_fields(net: Mapping[str, Any]) -> dict[str, Any]:
    if "program" not in net:
        return {}
    steps = []
    for entry in net["program"]:
        fields = dict(entry)
        kind = fields.pop("step", None)
        if kind not in _STEPS:
            raise InvalidInputError(f"allocation file: program step {kind!r} is unknown; accepted: {', '.join(_STEPS)}")
        steps.append(_STEPS[kind](**fields))
    convs = tuple(None if g is None else ConvGeometry(**{k: tuple(v) if isinstance(v, list) else v for k, v in g.items()})
                  for g in net["convs"])
    return {"program": tuple(steps), "layer_shapes": tuple(tuple(int(v) for v in shape) for shape in net["layer_shapes"]),
            "convs": convs, "parameters": net.get("parameters")}


def to_document(allocation: Allocation) -> dict[str, Any]:
    """The allocation as the JSON-ready document of the module docstring."""
    network = allocation.network
    names = network.names
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_by": f"allocator {__version__}",
        "network": {
            "input_width": network.input_width,
            "widths": list(network.widths),
            "include_output_layer": network.include_output_layer,
            "flops_per_weight": list(network.flops_per_weight),
            "layer_order": list(names),
            **({"kernels": [list(k) for k in network.kernels]} if any(network.kernels) else {}),
            **({} if network.is_chain else _program_document(network)),
        },
        "layers": {
            layer.name: {
                "shape": [layer.rows, layer.cols], "weights": layer.weights, "kept": layer.kept,
                "density": layer.density, "sparsity": layer.sparsity, "prunable": layer.prunable,
                "pinned": layer.pinned, "tied_group": layer.tied_group,
            }
            for layer in allocation.layers
        },
        "budget": {
            "kept": allocation.budget.kept,
            "density": allocation.budget.density,
            "prunable_weights": allocation.budget.prunable_weights,
            "given_as": allocation.budget.given_as,
            "given_value": allocation.budget.given_value,
            "kept_total": allocation.kept_total,
            "counts": "weights of the prunable layers; biases and non-prunable layers are outside the budget",
            "compression_ratio": network.compression_ratio(allocation.kept_total),
            "compression_counts": "all parameters (weights and biases) / non-zero parameters",
        },
        "objective": {
            "rank_model": allocation.rank_model.name,
            "rank_model_options": allocation.rank_model.options(),
            "include_output_layer": network.include_output_layer,
            "ln_bound": _number(allocation.ln_bound),  # null: E[B] = 0 (possible with paper_p0 only)
            "log2_bound": _number(allocation.ln_bound / math.log(2.0)),
            "surrogate": SURROGATE_NAME,
            "surrogate_value": _number(allocation.surrogate_value),
            **({} if allocation.saturation_density is None else {"saturation_density": allocation.saturation_density}),
            **({} if allocation.bound_drop_nats is None else {
                "bound_drop_nats": [None if d is None else _number(d) for d in allocation.bound_drop_nats],
                "bound_drop_meaning": "ln E[B] lost when the layer's kept count is halved (nats); 0: the bound is "
                                      "blind to the layer at this budget"}),
            **({} if not allocation.floors else {"conv_floors": allocation.floors}),
            **({} if allocation.objective is None else {"data_objective": allocation.objective}),
            **({} if network.is_chain else {"conv_samples": allocation.rank_model.conv_samples,
                                            "bound_convention": bound_convention(network)}),
            **({} if allocation.ln_bound_standard_error is None else {
                "ln_bound_standard_error": allocation.ln_bound_standard_error,
                "standard_error": "Monte-Carlo, bootstrap over the sampled masks (allocator.bound.uncertainty)"}),
        },
        "constraints": _constraints_document(allocation.constraints),
        "solver": {
            "status": allocation.status,
            "certificate": allocation.certificate,
            "mip": _mip_document(allocation.mip),
            "polish": dict(allocation.polish),
            "solve_seconds": allocation.solve_seconds,
            **({} if allocation.stability is None else {"stability": allocation.stability}),
            **({} if allocation.upper_bound is None else {"upper_bound": allocation.upper_bound}),
            "versions": _versions(),
        },
        "baselines": {
            name: {
                "description": result.description,
                "kept": None if result.kept is None else dict(zip(names, result.kept)),
                "ln_bound": None if result.ln_bound is None else _number(result.ln_bound),
                "unavailable": result.unavailable,
                "repaired": result.repaired,
                **({} if result.raw_kept is None else {"raw_kept": dict(zip(names, result.raw_kept)),
                                                       "raw_ln_bound": _number(result.raw_ln_bound)}),
            }
            for name, result in allocation.baselines.items()
        },
    }
    document["content_hash"] = content_hash(document)
    return document


def dumps(allocation: Allocation) -> str:
    """The document as indented JSON text."""
    return json.dumps(to_document(allocation), indent=2, allow_nan=False) + "\n"


def save(allocation: Allocation, path: str | os.PathLike[str]) -> Path:
    """Write the allocation file atomically (a reader sees the old file or the new one)."""
    return atomic_write_text(path, dumps(allocation))


def _require(document: Mapping[str, Any], key: str, where: str = "document") -> Any:
    if key not in document:
        raise InvalidInputError(f"allocation file: {where} has no {key!r}")
    return document[key]


def from_document(document: Mapping[str, Any]) -> Allocation:
    """Rebuild the ``Allocation`` from a document, checking format, version, hash and derived numbers.

    Raises:
        InvalidInputError: naming what does not match or is missing.
    """
    if not isinstance(document, Mapping):
        raise InvalidInputError(f"allocation file: expected a JSON object, got {type(document).__name__}")
    for section in ("format", "version", "content_hash") + HASHED_SECTIONS + ("constraints", "solver", "baselines"):
        _require(document, section)
    try:
        return _from_checked_document(document)
    except InvalidInputError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidInputError(f"allocation file: a field is missing or malformed ({type(error).__name__}: {error})") from None


def _from_checked_document(document: Mapping[str, Any]) -> Allocation:
    if document.get("format") != FORMAT:
        raise InvalidInputError(f"allocation file: format is {document.get('format')!r}; expected {FORMAT!r}")
    if document.get("version") not in READABLE_VERSIONS:
        raise InvalidInputError(
            f"allocation file: version {document.get('version')!r} is not supported; this allocator reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    recorded = _require(document, "content_hash")
    actual = content_hash(document)
    if recorded != actual:
        raise InvalidInputError(
            f"allocation file: content hash {recorded} does not match its content ({actual}); it was edited after "
            f"writing"
        )
    net = _require(document, "network")
    order = list(_require(net, "layer_order", "network"))
    layers_doc = _require(document, "layers")
    prunable = tuple(bool(_require(layers_doc[name], "prunable", name)) for name in order)
    network = Network(
        int(net["input_width"]), tuple(int(w) for w in net["widths"]), tuple(order), prunable,
        bool(net["include_output_layer"]), tuple(float(f) for f in net["flops_per_weight"]),
        tuple(tuple(int(k) for k in kernel) for kernel in net.get("kernels", ())),
        **_program_fields(net),
    )
    layers = []
    for name, (rows, cols) in zip(order, network.shapes):
        entry = layers_doc[name]
        if list(entry["shape"]) != [rows, cols]:
            raise InvalidInputError(f"allocation file: layer {name} has shape {entry['shape']}, expected {[rows, cols]}")
        kept = int(entry["kept"])
        if not 0 <= kept <= rows * cols or entry["density"] != kept / (rows * cols) or entry["sparsity"] != 1.0 - kept / (rows * cols):
            raise InvalidInputError(
                f"allocation file: layer {name}: kept {kept}, density {entry['density']} and sparsity "
                f"{entry['sparsity']} disagree"
            )
        layers.append(LayerAllocation(name, rows, cols, rows * cols, kept, bool(entry["prunable"]),
                                      bool(entry["pinned"]), entry["tied_group"]))
    budget_doc = document["budget"]
    budget = Budget(int(budget_doc["kept"]), str(budget_doc["given_as"]), float(budget_doc["given_value"]),
                    int(budget_doc["prunable_weights"]))
    kept_total = sum(layer.kept for layer in layers if layer.prunable)
    if budget_doc["kept_total"] != kept_total or kept_total > budget.kept:
        raise InvalidInputError(
            f"allocation file: the layers keep {kept_total} prunable weights; the budget section says kept_total "
            f"{budget_doc['kept_total']} and budget {budget.kept}"
        )
    if budget.prunable_weights != network.prunable_weights:
        raise InvalidInputError(
            f"allocation file: budget counts {budget.prunable_weights} prunable weights, the layers hold "
            f"{network.prunable_weights}"
        )
    objective = document["objective"]
    options = dict(objective["rank_model_options"])
    if "conv_samples" in objective:
        options["conv_samples"] = int(objective["conv_samples"])
    rank_model = RankModel(objective["rank_model"], **options)
    constraints_doc = document["constraints"]
    constraints = Constraints(
        min_density=constraints_doc["min_density"], max_density=constraints_doc["max_density"],
        pinned=dict(constraints_doc["pinned"]), min_kept=int(constraints_doc["min_kept"]),
        min_kept_per_output_unit=bool(constraints_doc["min_kept_per_output_unit"]),
        tied=tuple(tuple(group) for group in constraints_doc["tied"]),
        flops_budget=constraints_doc["flops_budget"],
    )
    solver = document["solver"]
    mip_doc = solver["mip"]
    mip = None
    if mip_doc is not None:
        mip = MipReport(
            status=Termination(mip_doc["status"]), objective=_from_number(mip_doc["objective"]),
            bound=_from_number(mip_doc["bound"]), gap=_from_number(mip_doc["gap"]), seconds=mip_doc["seconds"],
            solutions=mip_doc["solutions"], solver=mip_doc["solver"], solver_version=mip_doc["solver_version"],
            options=dict(mip_doc["options"]), build_seconds=mip_doc["build_seconds"],
            first_solve_seconds=mip_doc["first_solve_seconds"], binaries=mip_doc["binaries"],
        )
    baselines = {
        name: BaselineResult(
            name, entry["description"],
            None if entry["kept"] is None else tuple(int(entry["kept"][n]) for n in order),
            None if entry["kept"] is None else _from_number(entry["ln_bound"], -math.inf), entry["unavailable"],
            repaired=bool(entry.get("repaired", False)),
            raw_kept=None if "raw_kept" not in entry else tuple(int(entry["raw_kept"][n]) for n in order),
            raw_ln_bound=None if "raw_kept" not in entry else _from_number(entry["raw_ln_bound"], -math.inf),
        )
        for name, entry in document["baselines"].items()
    }
    return Allocation(
        network=network, budget=budget, rank_model=rank_model, constraints=constraints, layers=tuple(layers),
        ln_bound=_from_number(objective["ln_bound"], -math.inf),
        surrogate_value=_from_number(objective["surrogate_value"], -math.inf),
        status=AllocationStatus(solver["status"]), certificate=solver["certificate"], mip=mip, polish=dict(solver["polish"]),
        solve_seconds=float(solver["solve_seconds"]), baselines=baselines,
        ln_bound_standard_error=objective.get("ln_bound_standard_error"),
        stability=solver.get("stability"),
        upper_bound=solver.get("upper_bound"),
        saturation_density=objective.get("saturation_density"),
        bound_drop_nats=(None if "bound_drop_nats" not in objective else
                         tuple(None if d is None else _from_number(d, -math.inf) for d in objective["bound_drop_nats"])),
        floors=objective.get("conv_floors"),
        objective=objective.get("data_objective"),
    )


def load(path: str | os.PathLike[str]) -> Allocation:
    """Read and check an allocation file.

    Raises:
        InvalidInputError: the file is missing, not JSON, or fails a check (named in the message).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInputError(f"allocation file {str(file)!r} cannot be read: {error.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"allocation file {str(file)!r} is not JSON: {error}") from None
    return from_document(document)
