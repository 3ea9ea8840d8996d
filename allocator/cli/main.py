"""``allocator``: the command line. Every user error is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from typing import Sequence

from allocator.bound import RankModel, expected_bound
from allocator.cli.arguments import UsageError, build_parser, densities_option, name_value
from allocator.cli.format import format_allocation, format_bound, format_regions
from allocator.errors import AllocatorError
from allocator.network import Network

EXIT_USAGE = 2


def _network_from_args(args: argparse.Namespace) -> Network:
    include_output = not args.exclude_output_layer
    if args.arch is not None:
        return Network.from_arch(args.arch, include_output_layer=include_output)
    from allocator.models import get_model

    return replace(get_model(args.model).network, include_output_layer=include_output)  # keeps FLOPs and kernels


def _rank_model_from_args(args: argparse.Namespace) -> RankModel:
    if args.paper_p0 and args.rank_model != "binomial":
        raise UsageError(f"--paper-p0 applies to --rank-model binomial only, not {args.rank_model!r}")
    return RankModel(args.rank_model, paper_p0=args.paper_p0, samples=args.samples, seed=args.seed)


def _cmd_bound(args: argparse.Namespace) -> int:
    network = _network_from_args(args)
    model = _rank_model_from_args(args)
    densities = network.expand_densities(args.density)
    result = expected_bound(network, densities, model, exact=args.exact)
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

    for name in model_names():
        entry = get_model(name)
        print(f"{name:<18} {entry.network.arch_string():<22} {entry.summary}")
    return 0



def _cmd_solve(args: argparse.Namespace) -> int:
    from allocator.allocation import Constraints, SolverOptions, allocate
    from allocator.allocation.file import dumps, save
    from allocator.allocation.exporters import export_text

    for path in [args.out] + [p for _, p in args.export or []]:
        if path:
            _check_writable(path)
    network = _network_from_args(args)
    model = _rank_model_from_args(args)
    constraints = Constraints(
        min_density=densities_option(args.min_density, "--min-density"),
        max_density=densities_option(args.max_density, "--max-density"),
        pinned=dict(_pin(text) for text in args.pin or []),
        min_kept=args.min_kept,
        min_kept_per_output_unit=args.min_kept_per_unit,
        tied=[[name.strip() for name in group.split(",")] for group in args.tie or []],
        flops_budget=args.flops_budget,
    )
    baselines = [name.strip() for name in args.baselines.split(",") if name.strip()] if args.baselines else []
    say = None if (args.quiet or args.json) else (lambda message: print(f"[allocator] {message}", file=sys.stderr))
    allocation = allocate(
        network, density=args.density, sparsity=args.sparsity, kept=args.kept, compression=args.compression,
        rank_model=model, constraints=constraints, levels=args.levels, solutions=args.solutions,
        solver_options=SolverOptions(time_limit_s=args.time_limit), baselines=baselines, progress=say,
    )
    if args.json:
        print(dumps(allocation), end="")
    else:
        print(format_allocation(allocation, ("uniform", "erk")))
    if args.out:
        path = save(allocation, args.out)
        if not args.json:
            print(f"  wrote {path}")
    for kind, path in args.export or []:
        from allocator.io_utils import atomic_write_text

        atomic_write_text(path, export_text(allocation, kind))
        if not args.json:
            print(f"  wrote {path} ({kind})")
    return 0


def _check_writable(path: str) -> None:
    """Refuse an output path before any work: a directory, or a parent that is missing or not writable."""
    import os
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        raise UsageError(f"allocator: error: output {path!r} is a directory; give a file name")
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)  # the folder the file will go to; fails here, not after a solve
    except OSError as error:
        raise UsageError(f"allocator: error: cannot write {path!r}: {error.strerror} ({parent})") from None
    if not os.access(parent, os.W_OK):
        raise UsageError(f"allocator: error: cannot write {path!r}: {parent} is not writable")


def _pin(text: str) -> tuple[str, float]:
    name, value = name_value(text)
    if name is None:
        raise UsageError(f"allocator solve: error: argument --pin: {text!r} is not NAME=DENSITY such as fc1.weight=0.01")
    return name, value


def _cmd_validate(args: argparse.Namespace) -> int:
    from allocator.pruning.finetune.training import TrainConfig
    from allocator.study.config import ValidateConfig
    from allocator.study.tables import format_summary
    from allocator.study.validate import run_validation

    seeds = tuple(range(args.seeds)) if args.seed_list is None else tuple(args.seed_list)
    config = ValidateConfig(
        model=args.model, dataset=args.dataset, data_dir=args.data_dir, densities=tuple(args.density),
        allocations=tuple(a.strip() for a in args.allocations.split(",") if a.strip()), criterion=args.criterion,
        seeds=seeds,
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, select_on=args.select_on),
        finetune=TrainConfig(epochs=args.finetune_epochs, batch_size=args.batch_size, lr=args.lr,
                             select_on=args.select_on),
        rank_model=args.rank_model, threads=args.threads, label=args.label,
        koopman_steps=args.koopman_steps, koopman_stride=args.koopman_stride,
        sparse_finetune=not args.dense_finetune, freeze_features=args.freeze_features,
    )
    config.check()
    out = args.out or f"runs/validate/{args.model}-{args.dataset}-{args.criterion}"
    say = None if args.quiet else (lambda message: print(f"[validate] {message}", file=sys.stderr, flush=True))
    summary = run_validation(config, out, say)
    if args.label:
        print(args.label)
    print(format_summary(summary))
    print(f"\nresults: {out}/results.csv, {out}/summary.json, {out}/accuracy_vs_density.png")
    return 0


def _cmd_regions(args: argparse.Namespace) -> int:
    from allocator.study.regions import RegionsRequest, run_regions

    try:
        points = tuple(int(v) for v in args.points.split(","))
    except ValueError:
        raise UsageError(f"allocator regions: error: --points {args.points!r} is not three comma-separated "
                         f"test-set indices such as 0,1,2") from None
    request = RegionsRequest(model=args.model, dataset=args.dataset, data_dir=args.data_dir, checkpoint=args.checkpoint,
                             train_epochs=args.train_epochs, seed=args.seed, allocation_file=args.allocation,
                             density=args.density, rule=args.rule, finetune_epochs=args.finetune_epochs, points=points,
                             resolution=args.resolution, threads=args.threads)
    request.check()
    if args.out:
        _check_writable(args.out)
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
            "models": _cmd_models}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``allocator`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status = int(HANDLERS[args.command_name](args))
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return status
    except BrokenPipeError:  # stdout closed early (e.g. piped into head): not an error of ours (before OSError,
        # its base class)
        import os

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
