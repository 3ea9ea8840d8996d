"""``allocator``: the command line. Every user error is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from typing import NoReturn, Sequence

from allocator import __version__
from allocator.bound import RANK_MODELS, RankModel, expected_bound
from allocator.cli.format import format_allocation, format_bound, format_regions
from allocator.errors import AllocatorError
from allocator.network import Network

EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own errors, made one line
        raise UsageError(f"{self.prog}: error: {message}")


def _float_list(text: str) -> list[float]:
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r} is not a number; expected comma-separated densities in [0, 1] such as 0.001,0.001,1"
            ) from None
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def _add_network_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", help="widths n0,n1,...,nL, e.g. 784,100,100,10 (the last is the classifier)")
    source.add_argument("--model", help="a registered model name, e.g. mlp-2x100 (see `allocator models`)")
    parser.add_argument(
        "--exclude-output-layer",
        action="store_true",
        help="drop the classifier from the bound (theory-clean); default includes it (papers' convention)",
    )


def _add_rank_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rank-model", choices=RANK_MODELS, default="binomial", help="rank law (default binomial)")
    parser.add_argument(
        "--paper-p0",
        action="store_true",
        help="binomial only: set P(rank=0)=0 without renormalising, as the paper-1 authors' code did",
    )
    parser.add_argument("--samples", type=_positive_int, default=256, help="structural: masks sampled per layer")
    parser.add_argument("--seed", type=int, default=0, help="structural: seed of the sampled masks")


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



def _name_value(text: str) -> tuple[str | None, float]:
    """``0.01`` (every prunable layer) or ``fc1.weight=0.01``."""
    name, _, value = text.rpartition("=")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a density; expected a number in (0, 1] or NAME=DENSITY such as fc1.weight=0.01"
        ) from None
    return (name or None), number


def _densities_option(values: list[tuple[str | None, float]] | None, flag: str) -> float | dict[str, float] | None:
    if not values:
        return None
    if len(values) == 1 and values[0][0] is None:
        return values[0][1]
    if any(name is None for name, _ in values):
        raise UsageError(f"allocator solve: error: {flag} takes one plain density, or NAME=DENSITY entries, not both")
    return {name: value for name, value in values}  # type: ignore[misc]


def _export_option(text: str) -> tuple[str, str]:
    from allocator.allocation.exporters import EXPORTERS

    kind, sep, path = text.partition("=")
    if not sep or kind not in EXPORTERS or not path:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not FORMAT=FILE with FORMAT one of {', '.join(EXPORTERS)} (e.g. nni=config_list.json)"
        )
    return kind, path


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
        min_density=_densities_option(args.min_density, "--min-density"),
        max_density=_densities_option(args.max_density, "--max-density"),
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
    name, value = _name_value(text)
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


def build_parser() -> argparse.ArgumentParser:
    """The ``allocator`` parser with its sub-commands."""
    parser = _Parser(prog="allocator", description="Layerwise sparsity allocation from a linear-region bound.")
    parser.add_argument("--version", action="version", version=f"allocator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    bound = commands.add_parser("bound", help="evaluate ln E[B] for given per-layer densities")
    _add_network_arguments(bound)
    bound.add_argument(
        "--density",
        type=_float_list,
        required=True,
        help="one density (fraction kept) per weight layer, the output layer included; a single value means "
        "that density for every prunable layer and 1 for the others",
    )
    _add_rank_model_arguments(bound)
    bound.add_argument("--exact", action="store_true", help="rational arithmetic (small networks only)")
    bound.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bound.set_defaults(handler=_cmd_bound)


    solve = commands.add_parser("solve", help="choose per-layer densities that maximise ln E[B] under a budget")
    _add_network_arguments(solve)
    budget = solve.add_mutually_exclusive_group(required=True)
    budget.add_argument("--density", type=float, help="global density (fraction kept) over the prunable weights")
    budget.add_argument("--sparsity", type=float, help="global sparsity (fraction pruned) over the prunable weights")
    budget.add_argument("--kept", type=int, help="kept weights over the prunable layers")
    budget.add_argument("--compression", type=float, help="all parameters / non-zero parameters (ShrinkBench)")
    _add_rank_model_arguments(solve)
    solve.add_argument("--min-density", type=_name_value, action="append", metavar="[NAME=]DENSITY",
                       help="lower bound on a layer's density (repeatable; a plain number applies to every layer)")
    solve.add_argument("--max-density", type=_name_value, action="append", metavar="[NAME=]DENSITY",
                       help="upper bound on a layer's density (repeatable)")
    solve.add_argument("--pin", action="append", metavar="NAME=DENSITY", help="fix a layer's density (repeatable)")
    solve.add_argument("--min-kept", type=int, default=1, help="fewest kept weights in any prunable layer (default 1)")
    solve.add_argument("--min-kept-per-unit", action="store_true",
                       help="keep at least one weight per output unit of every prunable layer")
    solve.add_argument("--tie", action="append", metavar="NAME,NAME[,...]", help="layers sharing one density")
    solve.add_argument("--flops-budget", type=float, help="most multiply-adds per example over the prunable layers")
    solve.add_argument("--levels", type=_positive_int, default=100, help="menu levels per layer in the MIP")
    solve.add_argument("--solutions", type=_positive_int, default=3, help="MIP solutions polished (no-good cuts)")
    solve.add_argument("--time-limit", type=float, default=60.0, help="MIP time limit in seconds (default 60)")
    solve.add_argument("--baselines", default="uniform,uniform-gale,er,erk",
                       help="comma-separated baselines to compare (default uniform,uniform-gale,er,erk)")
    solve.add_argument("--out", help="write the allocation file (JSON) here")
    solve.add_argument("--export", type=_export_option, action="append", metavar="FORMAT=FILE",
                       help="also write torch-prune, nni, sparseml or rigl format (repeatable)")
    solve.add_argument("--json", action="store_true", help="print the allocation document on stdout")
    solve.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    solve.set_defaults(handler=_cmd_solve)

    validate = commands.add_parser("validate", help="prune, fine-tune and compare allocations on real data")
    validate.add_argument("--model", default="mlp-2x100", help="a registered model name (default mlp-2x100)")
    validate.add_argument("--dataset", default="fashion-mnist",
                          help="fashion-mnist (default), mnist (with --data-dir), mnist-npm10k, mnist-mlxtend5k, cifar10")
    validate.add_argument("--data-dir", help="directory of the data set's files, where it needs one")
    validate.add_argument("--density", type=_float_list, required=True,
                          help="global densities (fraction kept of the prunable weights), comma-separated")
    validate.add_argument("--allocations", default="ours,uniform",
                          help="comma-separated: ours, uniform, uniform-gale, er, erk, global-magnitude, lamp")
    validate.add_argument("--criterion", default="magnitude",
                          help="pruning criterion: magnitude (default), random, gradient, lamp, kmp, kgp")
    validate.add_argument("--koopman-steps", type=_positive_int,
                          help="kmp/kgp: optimiser steps in the snapshot window (default one epoch)")
    validate.add_argument("--koopman-stride", type=_positive_int, default=1,
                          help="kmp/kgp: keep every k-th snapshot (default 1)")
    validate.add_argument("--seeds", type=_positive_int, default=3, help="number of paired seeds 0..N-1 (default 3)")
    validate.add_argument("--seed-list", type=lambda t: [int(v) for v in t.split(",")], help="explicit seeds")
    validate.add_argument("--epochs", type=int, default=15, help="dense training epochs (default 15)")
    validate.add_argument("--finetune-epochs", type=int, default=15, help="fine-tuning epochs (default 15)")
    validate.add_argument("--dense-finetune", action="store_true",
                          help="reference engine: fine-tune each cell alone as a masked dense model (default: "
                               "the same arithmetic, faster: layers at density <= 0.01 train through their kept "
                               "weights only, and chain models train all cells of a seed as one batched model)")
    validate.add_argument("--freeze-features", action="store_true",
                          help="fine-tune the linear layers fc1 .. fcL only; the layers before fc1 (LeNet-5's "
                               "convolutions) stay at the dense model's weights")
    validate.add_argument("--batch-size", type=_positive_int, default=128)
    validate.add_argument("--lr", type=float, default=0.01)
    validate.add_argument("--select-on", choices=("validation", "test", "last"), default="validation",
                          help="checkpoint selection split (default validation; the papers used test)")
    validate.add_argument("--rank-model", choices=RANK_MODELS, default="binomial")
    validate.add_argument("--threads", type=_positive_int, default=1, help="torch threads (default 1)")
    validate.add_argument("--out", help="run folder (resumes if it holds the same configuration)")
    validate.add_argument("--label", default="", help="a line printed above the table (e.g. 'quick run')")
    validate.add_argument("--quiet", action="store_true")
    validate.set_defaults(handler=_cmd_validate)

    regions = commands.add_parser("regions", help="count the linear regions of a trained MLP on a 2-D data slice")
    regions.add_argument("--model", default="mlp-2x100", help="a registered MLP (default mlp-2x100)")
    regions.add_argument("--dataset", default="fashion-mnist")
    regions.add_argument("--data-dir")
    regions.add_argument("--checkpoint", help="a state_dict (.pt) of the model; default: train one now")
    regions.add_argument("--train-epochs", type=int, default=3, help="epochs when no checkpoint is given (default 3)")
    regions.add_argument("--seed", type=int, default=0)
    regions.add_argument("--allocation", help="an allocation file: also count the model pruned to it")
    regions.add_argument("--density", type=float, help="or: solve an allocation at this global density")
    regions.add_argument("--rule", choices=("ours", "uniform"), default="ours", help="with --density (default ours)")
    regions.add_argument("--finetune-epochs", type=int, default=3, help="fine-tuning of the pruned model (default 3)")
    regions.add_argument("--points", default="0,1,2", help="three test-set indices spanning the plane")
    regions.add_argument("--resolution", type=_positive_int, default=300, help="grid for the lower bound and picture")
    regions.add_argument("--threads", type=_positive_int, default=1)
    regions.add_argument("--out", help="PNG of the plane coloured by region (dense and pruned side by side)")
    regions.add_argument("--json", action="store_true")
    regions.add_argument("--quiet", action="store_true")
    regions.set_defaults(handler=_cmd_regions)

    models = commands.add_parser("models", help="list the registered model names")
    models.set_defaults(handler=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``allocator`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status = int(args.handler(args))
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
