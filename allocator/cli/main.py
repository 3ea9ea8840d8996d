"""``allocator``: the command line. Every user error is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from dataclasses import replace
from typing import Sequence

from allocator.bound import RankModel, expected_bound
from allocator.bound.rank import DEFAULT_STRUCTURAL_SAMPLES
from allocator.cli.arguments import UsageError, build_parser, densities_option
from allocator.cli.interop import cmd_export, cmd_verify
from allocator.cli.format import format_allocation, format_bound, format_regions
from allocator.io_utils import write_all
from allocator.errors import AllocatorError
from allocator.network import Network

EXIT_USAGE = 2


def _network_from_args(args: argparse.Namespace) -> Network:
    include_output = not args.exclude_output_layer
    if args.arch is not None:
        return Network.from_arch(args.arch, include_output_layer=include_output)
    from allocator.models import get_model, model_names

    frozen = getattr(args, "frozen_convs", False)
    if args.model in model_names():  # without importing torch
        return get_model(args.model).bound_network(frozen, include_output)  # keeps FLOPs and kernels
    from allocator.pruning.model_source import parse_input_shape, resolve_model

    resolved = resolve_model(args.model, input_shape=parse_input_shape(args.input_shape),
                             trust_model_file=args.trust_model_file, include_output_layer=include_output)
    return resolved.bound_network(frozen, include_output)


def _rank_model_from_args(args: argparse.Namespace) -> RankModel:
    if args.paper_p0 and args.rank_model != "binomial":
        raise UsageError(f"allocator: error: --paper-p0 applies to --rank-model binomial only, not {args.rank_model!r}")
    for flag, value in (("--samples", args.samples), ("--seed", args.seed)):
        if value is not None and args.rank_model != "structural":
            raise UsageError(f"allocator: error: {flag} applies to --rank-model structural only, not {args.rank_model!r}")
    if args.plain_monte_carlo and args.rank_model != "structural":
        raise UsageError(f"allocator: error: --plain-monte-carlo applies to --rank-model structural only, "
                         f"not {args.rank_model!r}")
    if args.cache_dir is not None and not os.path.isdir(args.cache_dir):
        raise UsageError(f"allocator: error: --cache-dir {args.cache_dir!r} is not a folder; create it first")
    cache_dir = args.cache_dir
    if cache_dir is None and args.rank_model != "structural":  # conv rank tables: minutes once, kept for later runs
        cache_dir = default_cache_dir()
    return RankModel(args.rank_model, paper_p0=args.paper_p0,
                     samples=args.samples if args.samples is not None else DEFAULT_STRUCTURAL_SAMPLES,
                     seed=args.seed if args.seed is not None else 0, cache_dir=cache_dir,
                     reduce_variance=not args.plain_monte_carlo, conv_samples=args.conv_samples)


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/layerwise-allocator``, else ``~/.cache/layerwise-allocator``: where conv rank tables are
    kept when ``--cache-dir`` is not given (created on first write)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "layerwise-allocator")


def _cmd_bound(args: argparse.Namespace) -> int:
    model = _rank_model_from_args(args)
    if args.allocation is not None:
        from allocator.allocation.file import load

        if args.density is not None:
            raise UsageError("allocator bound: error: give --density or --allocation FILE (its kept counts), not both")
        allocation = load(args.allocation)
        network = replace(allocation.network, include_output_layer=not args.exclude_output_layer)
        densities = [layer.density for layer in allocation.layers]
        _check_exact_cost(args, network, densities)
        result = expected_bound(network, densities, model, exact=args.exact)
        return _print_bound(args, result, network)
    network = _network_from_args(args)
    if args.density is None:
        raise UsageError("allocator bound: error: the following arguments are required: --density (or --allocation FILE)")
    if len(args.density) == 1 and args.density[0] == 0:
        raise UsageError("allocator bound: error: --density 0 keeps no weight of any prunable layer; a global density "
                         "lies in (0, 1] (give one density per layer to study an empty layer)")
    densities = network.expand_densities(args.density)
    _check_exact_cost(args, network, densities)
    if args.precision is not None:
        model = _samples_for_precision(args, network, densities, model)
    return _print_bound(args, expected_bound(network, densities, model, exact=args.exact), network)


def _samples_for_precision(args: argparse.Namespace, network: Network, densities, model: RankModel) -> RankModel:
    """Double the structural masks until the standard error of ln E[B] is at most ``--precision`` nats or the
    time budget ends; say which happened (stderr) and return the model with that many masks."""
    import time

    from allocator.bound.uncertainty import ln_bound_standard_error

    if model.name != "structural":
        raise UsageError("allocator: error: --precision applies to --rank-model structural only")
    if not (math.isfinite(args.precision) and args.precision > 0):
        raise UsageError(f"allocator: error: --precision {args.precision:g} is not a positive number of nats")
    if not args.precision_seconds > 0:
        raise UsageError(f"allocator: error: --precision-seconds {args.precision_seconds:g} is not positive")
    started = time.perf_counter()
    while True:
        error = ln_bound_standard_error(network, densities, model)
        elapsed = time.perf_counter() - started
        if error is not None and error <= args.precision:
            print(f"[allocator] precision reached: standard error {error:.4f} nats with {model.samples} masks per "
                  f"layer ({elapsed:.1f} s)", file=sys.stderr)
            return model
        if elapsed * 3 > args.precision_seconds:  # the next doubling costs about twice what was spent
            print(f"[allocator] precision NOT reached: the {args.precision_seconds:g} s budget ends with standard error "
                  f"{error:.4f} nats at {model.samples} masks per layer (target {args.precision:g})", file=sys.stderr)
            return model
        model = replace(model, samples=model.samples * 2)


EXACT_REFUSE_SECONDS = 60.0


def _check_exact_cost(args: argparse.Namespace, network: Network, densities) -> None:
    """``--exact`` on a network that would take minutes is refused (with the estimate) unless asked for anyway."""
    if not args.exact:
        return
    if not network.is_chain:  # a program's exact form writes every term out: refused by size, whatever the flag
        from allocator.bound.engine import check_exact_program

        try:
            check_exact_program(network)
        except AllocatorError as error:
            raise UsageError(f"allocator bound: error: {error}") from None
        return
    if args.exact_anyway:
        return
    from allocator.bound.engine import estimate_exact_seconds

    seconds = estimate_exact_seconds(network, densities)
    if seconds > EXACT_REFUSE_SECONDS:
        raise UsageError(f"allocator bound: error: --exact would take about {seconds / 60:.0f} min here (an estimate "
                         f"from the network's size and the densities' digits); use the float path (no --exact), a "
                         f"smaller network, or add --exact-anyway")


def _print_bound(args: argparse.Namespace, result, network: Network) -> int:
    if args.json:
        document = result.to_json()
        for key in ("ln_bound", "log2_bound"):  # E[B] = 0 (paper-p0 only): ln is -inf, written as null
            document[key] = document[key] if math.isfinite(document[key]) else None
        print(json.dumps(document, indent=2, allow_nan=False))
    else:
        print(format_bound(result, network))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from allocator.models import get_model, model_names

    rows = []
    for name in model_names():
        entry = get_model(name)
        shape = "x".join(map(str, entry.input_shape)) + f", {entry.bound_network().n_weight_layers} weight layers"
        rows.append((name, entry.network.arch_string() if entry.conv_builder is None else shape, entry.summary))
    name_width, arch_width = (max(len(row[i]) for row in rows) for i in (0, 1))
    for name, arch, summary in rows:
        print(f"{name:<{name_width}} {arch:<{arch_width}} {summary}")
    return 0



BUDGET_FLAGS = (("density", "d"), ("sparsity", "s"), ("kept", "k"), ("compression", "c"))


def _budgets(args: argparse.Namespace) -> list[tuple[str, float | int, str]]:
    """Every budget asked for: ``(kind, value, file-name suffix)``; several values solve several budgets."""
    for kind, letter in BUDGET_FLAGS:
        values = getattr(args, kind)
        if values is not None:
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise UsageError(f"allocator solve: error: --{kind} repeats {', '.join(map(str, repeated))}; give each once")
            return [(kind, value, f"-{letter}{value:g}" if len(values) > 1 else "") for value in values]
    raise UsageError("allocator solve: error: give a budget")  # pragma: no cover - argparse requires one


def _suffixed(path: str, suffix: str) -> str:
    """``alloc.json`` with suffix ``-d0.01`` -> ``alloc-d0.01.json``."""
    if not suffix:
        return path
    target = Path(path)
    return str(target.with_name(target.stem + suffix + target.suffix))


def _cache_bytes(megabytes: float) -> int:
    if not (math.isfinite(megabytes) and megabytes >= 1):
        raise UsageError(f"allocator solve: error: --cache-mb {megabytes:g} is not a number of MiB >= 1")
    return int(megabytes * 2**20)


def _distortion_curves(args: argparse.Namespace, network: Network, budgets):
    """The model's distortion curves on ``--calibration-size`` training images of ``--dataset`` (the model trained
    densely first for ``--train-epochs``), with the budgets' uniform shares among the measured levels."""
    if args.model is None or args.dataset is None:
        raise UsageError(f"allocator solve: error: --objective {args.objective} needs --model and --dataset (the "
                         f"distortion is measured on the model's outputs)")
    if not (math.isfinite(args.guard_nats) and args.guard_nats >= 0):
        raise UsageError(f"allocator solve: error: --guard-nats {args.guard_nats:g} is not a number of nats >= 0")
    import torch

    from allocator.data import load_dataset
    from allocator.models import model_names
    from allocator.pruning.finetune.training import Tensors, TrainConfig, set_threads, train
    from allocator.pruning.model_source import parse_input_shape, resolve_model
    from allocator.pruning.rd import measure_distortion

    entry = resolve_model(args.model, input_shape=parse_input_shape(args.input_shape),
                          trust_model_file=args.trust_model_file)
    dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    if args.calibration_size > len(dataset.train_y):
        raise UsageError(f"allocator solve: error: --calibration-size {args.calibration_size} is larger than the "
                         f"{len(dataset.train_y)} training images of {args.dataset}")
    set_threads(1)
    data = Tensors.from_dataset(dataset)
    if tuple(dataset.input_shape) != tuple(entry.input_shape):
        data = data.reshaped(entry.input_shape)
    torch.manual_seed(args.calibration_seed)
    model = entry.build()
    epochs = args.train_epochs if args.train_epochs is not None else (3 if args.model in model_names() else 0)
    say = None if (args.quiet or args.json) else (lambda message: print(f"[allocator] {message}", file=sys.stderr))
    if epochs:
        if say:
            say(f"training {args.model} densely for {epochs} epoch(s) on {args.dataset} (the distortion needs trained "
                f"weights)")
        train(model, data, TrainConfig(epochs=epochs), seed=args.calibration_seed)
    draw = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(args.calibration_seed))
    inputs = data.train_x[draw[:args.calibration_size]]
    names = [n for n, p in zip(network.names, network.prunable) if p]
    from allocator.formulation.problem import make_budget

    shares = [make_budget(network, **{kind: value}).density for kind, value, _ in budgets]
    if say:
        say(f"measuring distortion curves of {len(names)} layers on {args.calibration_size} calibration images")
    return measure_distortion(model, names, inputs, extra=shares, seed=args.calibration_seed,
                              source=f"{args.dataset}, {epochs} dense epochs")


def _synflow_baseline(args: argparse.Namespace, network: Network) -> dict:
    """SynFlow's allocation as a baseline line: it needs the torch model (``--model``), drawn with
    ``torch.manual_seed(0)`` (the init SynFlow scores; the seed is in the baseline's description)."""
    if args.model is None:
        raise UsageError("allocator solve: error: --baselines synflow needs --model (SynFlow reads the model's "
                         "initial weights), not --arch")
    import torch

    from allocator.pruning.baselines import weight_baselines
    from allocator.pruning.model_source import parse_input_shape, resolve_model

    entry = resolve_model(args.model, input_shape=parse_input_shape(args.input_shape),
                          trust_model_file=args.trust_model_file)
    torch.manual_seed(0)
    rules = weight_baselines(entry.build(), tuple(entry.input_shape))
    synflow = rules["synflow"]
    from dataclasses import replace as replace_rule

    return {"synflow": replace_rule(synflow, description=synflow.description + ", init torch.manual_seed(0)")}


def _cmd_solve(args: argparse.Namespace) -> int:
    from allocator.allocation import Constraints, SolverOptions, allocate
    from allocator.allocation.exporters import export_text
    from allocator.allocation.file import dumps

    budgets = _budgets(args)
    outputs = [(label, path) for label, path in [("--out", args.out)] + [
        (f"--export {kind}", path) for kind, path in args.export or []] if path]
    missing = check_outputs([(label, _suffixed(path, suffix)) for _, _, suffix in budgets for label, path in outputs])
    network = _network_from_args(args)
    model = _rank_model_from_args(args)
    constraints = Constraints(
        min_density=densities_option(args.min_density, "--min-density"),
        max_density=densities_option(args.max_density, "--max-density"),
        pinned=dict(args.pin or []),
        min_kept=args.min_kept,
        min_kept_per_output_unit=args.min_kept_per_unit,
        tied=[[name.strip() for name in group.split(",")] for group in args.tie or []],
        flops_budget=args.flops_budget,
    )
    baselines = [name.strip() for name in args.baselines.split(",") if name.strip()] if args.baselines else []
    extra = _synflow_baseline(args, network) if "synflow" in baselines else None
    curves = _distortion_curves(args, network, budgets) if args.objective != "bound" else None
    baselines = [name for name in baselines if name != "synflow"]
    say = None if (args.quiet or args.json) else (lambda message: print(f"[allocator] {message}", file=sys.stderr))
    options = SolverOptions(time_limit_s=args.time_limit, certificate_s=args.certificate_seconds)
    if args.precision is not None:  # masks enough for the target on the uniform allocation of the first budget
        from allocator.formulation.problem import make_budget

        kind, value, _ = budgets[0]
        budget = make_budget(network, **{kind: value})
        uniform = [budget.density if p else 1.0 for p in network.prunable]
        model = _samples_for_precision(args, network, uniform, model)
    documents = []
    files: dict[str, str] = {}
    for kind, value, suffix in budgets:
        allocation = allocate(
            network, **{kind: value}, rank_model=model, constraints=constraints, levels=args.levels,
            solutions=args.solutions, solver_options=options, baselines=baselines, progress=say,
            raw_baselines=args.raw_baselines, cache_bytes=_cache_bytes(args.cache_mb), conv_floor=args.conv_floor,
            extra_baselines=extra, objective=args.objective, distortion=curves, guard_nats=args.guard_nats,
        )
        documents.append(dumps(allocation))
        if not args.json:
            print(format_allocation(allocation, ("uniform", "erk")))
        if args.out:
            files[_suffixed(args.out, suffix)] = documents[-1]
        for export_kind, path in args.export or []:
            files[_suffixed(path, suffix)] = export_text(allocation, export_kind)
    if args.json:
        print(documents[0] if len(documents) == 1 else "[\n" + ",\n".join(d.rstrip() for d in documents) + "\n]\n",
              end="")
    write_all(files)  # every file or none
    if not args.json:
        for folder in missing:
            print(f"  made folder {folder}")
        for path in files:
            print(f"  wrote {path}")
    return 0


def check_outputs(outputs: Sequence[tuple[str, str]]) -> list[Path]:
    """Refuse output files before any work: two outputs on one path, a directory, a folder that cannot be made
    (its nearest existing ancestor is not a writable folder). ``outputs``: (what the option was, path). Returns the
    folders that are missing; they are made only when the files are written, and the command says so."""
    seen: dict[str, str] = {}
    missing: list[Path] = []
    for label, path in outputs:
        key = os.path.realpath(path)
        if key in seen:
            raise UsageError(f"allocator: error: {label} and {seen[key]} both write {path!r}; give each its own file")
        seen[key] = label
        target = Path(path)
        if target.is_dir():
            raise UsageError(f"allocator: error: output {path!r} is a directory; give a file name")
        parent = target.parent if str(target.parent) else Path(".")
        existing = parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise UsageError(f"allocator: error: cannot write {path!r}: {str(existing)!r} is not a folder")
        try:  # a real probe: root passes os.access checks on folders it still cannot write (/proc, read-only mounts)
            handle, probe = tempfile.mkstemp(prefix=".allocator-probe-", dir=existing)
            os.close(handle)
            os.unlink(probe)
        except OSError as error:
            raise UsageError(f"allocator: error: cannot write {path!r}: {existing} is not writable "
                             f"({error.strerror})") from None
        if existing != parent and parent not in missing:
            missing.append(parent)
    return missing


def default_validate_out(config) -> str:
    """``runs/validate/<model>-<data set>-<criterion>-d<densities>``, with characters unsafe in a folder name
    (``/``, ``:``) replaced: one folder per model, data, criterion and density list."""
    from allocator.study.run_folder import file_safe as slug

    kind, _, location = config.dataset.partition(":")
    dataset = f"{kind}-{slug(location)}" if location else config.dataset
    densities = "_".join(f"{d:g}" for d in config.densities)
    return f"runs/validate/{slug(config.model)}-{dataset}-{config.criterion}-d{densities}"


def _cmd_validate(args: argparse.Namespace) -> int:
    from allocator.pruning.finetune.training import TrainConfig
    from allocator.pruning.model_source import parse_input_shape
    from allocator.study.config import ValidateConfig
    from allocator.study.tables import format_summary
    from allocator.study.validate import run_validation

    if args.seeds is not None and args.seed_list is not None:
        raise UsageError("allocator validate: error: give --seeds N or --seed-list S1,S2,..., not both")
    seeds = tuple(range(args.seeds if args.seeds is not None else 3)) if args.seed_list is None else tuple(args.seed_list)
    if args.density is None and not args.allocation:
        raise UsageError("allocator validate: error: give --density D1,D2,... or --allocation FILE")
    files = ValidateConfig(allocation_files=tuple(args.allocation or ()))
    file_densities = files.file_densities()
    densities = list(args.density or [])
    densities += [d for d in file_densities.values() if d not in densities]
    allocations = [a.strip() for a in args.allocations.split(",") if a.strip()] + list(file_densities)
    config = ValidateConfig(
        model=args.model, dataset=args.dataset, data_dir=args.data_dir, densities=tuple(densities),
        input_shape=parse_input_shape(args.input_shape), trust_model_file=args.trust_model_file,
        allocation_files=files.allocation_files, save_models=args.save_models,
        allocations=tuple(allocations), criterion=args.criterion,
        seeds=seeds,
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, select_on=args.select_on),
        finetune=TrainConfig(epochs=args.finetune_epochs, batch_size=args.batch_size, lr=args.lr,
                             select_on=args.select_on),
        rank_model=args.rank_model, threads=args.threads, label=args.label,
        koopman_steps=args.koopman_steps, koopman_stride=args.koopman_stride,
        sparse_finetune=not args.dense_finetune, freeze_features=args.freeze_features,
        respend_dead=args.respend_dead,
        convs_inside=args.convs_inside,
    )
    config.check()
    out = args.out or default_validate_out(config)
    say = None if args.quiet else (lambda message: print(f"[validate] {message}", file=sys.stderr, flush=True))
    summary = run_validation(config, out, say)
    if args.label:
        print(args.label)
    print(format_summary(summary))
    print(f"\nresults: {out}/results.csv, {out}/summary.json, {out}/accuracy_vs_density.png")
    return 0


def _cmd_regions(args: argparse.Namespace) -> int:
    from allocator.pruning.model_source import parse_input_shape
    from allocator.study.regions import RegionsRequest, run_regions

    try:
        points = tuple(int(v) for v in args.points.split(","))
    except ValueError:
        raise UsageError(f"allocator regions: error: --points {args.points!r} is not three comma-separated "
                         f"test-set indices such as 0,1,2") from None
    request = RegionsRequest(model=args.model, dataset=args.dataset, data_dir=args.data_dir, checkpoint=args.checkpoint,
                             train_epochs=args.train_epochs, seed=args.seed, allocation_file=args.allocation,
                             density=args.density, rule=args.rule, finetune_epochs=args.finetune_epochs, points=points,
                             resolution=args.resolution, threads=args.threads,
                             input_shape=parse_input_shape(args.input_shape), trust_model_file=args.trust_model_file)
    request.check()
    if args.out:
        if Path(args.out).suffix.lower() != ".png":
            raise UsageError(f"allocator regions: error: --out {args.out!r} must end in .png (the picture is a PNG)")
        check_outputs([("--out", args.out)])
    say = (lambda message: None) if (args.quiet or args.json) else (
        lambda message: print(f"[regions] {message}", file=sys.stderr, flush=True))
    run = run_regions(request, say, plot_to=args.out)
    if args.json:
        print(json.dumps(run.to_json(), indent=2, allow_nan=False))
        return 0
    print(format_regions(run))
    if args.out:
        print(f"  wrote {args.out}")
    return 0


HANDLERS = {"bound": _cmd_bound, "solve": _cmd_solve, "validate": _cmd_validate, "regions": _cmd_regions,
            "models": _cmd_models, "export": cmd_export, "verify": cmd_verify}


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (``poll`` reports an error on its write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no poll, or stdout is not a file descriptor
        return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``allocator`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status = int(HANDLERS[args.command_name](args))
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return status
    except BrokenPipeError:
        if not _stdout_closed():  # stderr (progress) went away: the run did not finish, so not a success
            return 1
        # stdout closed early (piped into head): not an error of ours. Quiet from here on, also at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:  # files: one line naming the path, never a traceback
        where = f" {error.filename!r}" if getattr(error, "filename", None) else ""
        print(f"allocator: error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, AllocatorError) as error:
        message = str(error).replace("\n", " ")
        prefix = "" if message.startswith("allocator") else "allocator: error: "
        print(f"{prefix}{message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("allocator: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
