"""The ``allocator`` command line's parser: sub-commands, their options and the argument types."""

from __future__ import annotations

import argparse
from typing import NoReturn

from allocator import __version__
from allocator.bound import RANK_MODELS


class UsageError(Exception):
    """A command-line error: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own errors, made one line
        raise UsageError(f"{self.prog}: error: {message}")


def float_list(text: str) -> list[float]:
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r} is not a number; expected comma-separated densities in [0, 1] such as 0.001,0.001,1"
            ) from None
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return value


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated integer seeds such as 0,1,2") from None
    if any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: seeds must be integers >= 0")
    return seeds


def pin_option(text: str) -> tuple[str, float]:
    """``fc1.weight=0.01``: a layer name and its density."""
    name, value = name_value(text)
    if name is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=DENSITY such as fc1.weight=0.01")
    return name, value


def int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated integers such as 88 or 88,176") from None


def add_network_arguments(parser: argparse.ArgumentParser, *, allocation_file: bool = False) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", help="widths n0,n1,...,nL, e.g. 784,100,100,10 (the last is the classifier)")
    source.add_argument("--model", help=MODEL_HELP)
    if allocation_file:
        source.add_argument("--allocation", metavar="FILE",
                            help="an allocation file: its network and kept counts (instead of --arch/--model and --density)")
    add_own_model_arguments(parser)
    parser.add_argument(
        "--exclude-output-layer",
        action="store_true",
        help="drop the classifier from the bound (theory-clean); default includes it (papers' convention)",
    )
    parser.add_argument(
        "--frozen-convs",
        action="store_true",
        help="paper 1's convention for a CNN: its convolutions stay out of the bound and unpruned, n0 = their "
             "flattened output; default puts every conv inside the bound (n0 = the input's C*H*W)",
    )


MODEL_HELP = ("a registered model name (see `allocator models`), a model file saved with torch.save(model) (needs "
              "--trust-model-file), or an import path MODULE:FACTORY or FILE.py:FACTORY that builds the torch module")


def add_own_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--input-shape`` and ``--trust-model-file``, for a model that is not registered."""
    parser.add_argument("--input-shape", metavar="C,H,W",
                        help="one example's shape, for a model that is not registered and does not start with a "
                             "Linear layer (e.g. 1,28,28)")
    parser.add_argument("--trust-model-file", action="store_true",
                        help="allow reading a whole model pickled by torch.save(model): unpickling runs code from "
                             "the file, so only for files you trust")


def add_rank_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rank-model", choices=RANK_MODELS, default="binomial", help="rank law (default binomial)")
    parser.add_argument(
        "--paper-p0",
        action="store_true",
        help="binomial only: set P(rank=0)=0 without renormalising, as the paper-1 authors' code did",
    )
    parser.add_argument("--samples", type=positive_int, help="structural: masks sampled per layer (default 256)")
    parser.add_argument("--seed", type=non_negative_int, help="structural: seed of the sampled masks (default 0)")
    parser.add_argument("--cache-dir", help="keep sampled rank laws in this folder (structural: one JSON file per "
                                            "layer shape, density, samples and seed; convs: one rank table per conv "
                                            "shape); default for convs ~/.cache/layerwise-allocator (or "
                                            "$XDG_CACHE_HOME/layerwise-allocator)")
    parser.add_argument("--conv-samples", type=positive_int, default=64,
                        help="convs inside the bound: masks sampled per conv shape for its rank law (default 64)")
    parser.add_argument("--plain-monte-carlo", action="store_true",
                        help="structural: the plain frequencies of the sampled ranks instead of the stratified "
                             "estimate (exact law of the non-empty lines, only the deficiency sampled)")


def conv_floor(text: str) -> float | str | None:
    """``uniform``, ``none`` or a density in [0, 1]."""
    if text in ("uniform", "none"):
        return None if text == "none" else text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a conv floor; expected uniform, none or a density in "
                                         f"[0, 1]") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"conv floor {text!r} is not a density in [0, 1]")
    return value


def name_value(text: str) -> tuple[str | None, float]:
    """``0.01`` (every prunable layer) or ``fc1.weight=0.01``."""
    name, _, value = text.rpartition("=")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a density; expected a number in (0, 1] or NAME=DENSITY such as fc1.weight=0.01"
        ) from None
    return (name or None), number


def densities_option(values: list[tuple[str | None, float]] | None, flag: str) -> float | dict[str, float] | None:
    if not values:
        return None
    if len(values) == 1 and values[0][0] is None:
        return values[0][1]
    if any(name is None for name, _ in values):
        raise UsageError(f"allocator solve: error: {flag} takes one plain density, or NAME=DENSITY entries, not both")
    return {name: value for name, value in values}  # type: ignore[misc]


def export_option(text: str) -> tuple[str, str]:
    from allocator.allocation.exporters import EXPORTERS, RENAMED, check_export_path
    from allocator.errors import InvalidInputError

    kind, sep, path = text.partition("=")
    if not sep or kind not in EXPORTERS or not path:
        hint = f" ({kind} was renamed: {RENAMED[kind]})" if kind in RENAMED else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is not FORMAT=FILE with FORMAT one of {', '.join(EXPORTERS)} (e.g. nni=config_list.json){hint}"
        )
    try:
        check_export_path(kind, path)
    except InvalidInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return kind, path


def build_parser() -> argparse.ArgumentParser:
    """The ``allocator`` parser with its sub-commands."""
    from allocator.allocation.exporters import EXPORTERS

    parser = Parser(prog="allocator", description="Layerwise sparsity allocation from a linear-region bound.")
    parser.add_argument("--version", action="version", version=f"allocator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    bound = commands.add_parser("bound", help="evaluate ln E[B] for given per-layer densities")
    add_network_arguments(bound, allocation_file=True)
    bound.add_argument(
        "--density",
        type=float_list,
        help="one density (fraction kept) per weight layer, the output layer included; a single value means "
        "that density for every prunable layer and 1 for the others",
    )
    add_rank_model_arguments(bound)
    bound.add_argument("--exact", action="store_true",
                       help="rational arithmetic (small networks only: refused when it would take over a minute)")
    bound.add_argument("--exact-anyway", action="store_true", help="with --exact: run it however long it takes")
    bound.add_argument("--precision", type=float, metavar="NATS",
                       help="structural: double the masks from --samples until the standard error of ln E[B] is at "
                            "most NATS, or --precision-seconds end")
    bound.add_argument("--precision-seconds", type=float, default=60.0, help="time budget of --precision (default 60)")
    bound.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bound.set_defaults(command_name="bound")


    solve = commands.add_parser("solve", help="choose per-layer densities that maximise ln E[B] under a budget")
    add_network_arguments(solve)
    budget = solve.add_mutually_exclusive_group(required=True)
    budget.add_argument("--density", type=float_list,
                        help="global density (fraction kept) over the prunable weights; several, comma-separated, "
                             "solve one allocation each (files get a -d<density> suffix)")
    budget.add_argument("--sparsity", type=float_list, help="global sparsity (fraction pruned) over the prunable weights")
    budget.add_argument("--kept", type=int_list, help="kept weights over the prunable layers")
    budget.add_argument("--compression", type=float_list, help="all parameters / non-zero parameters (ShrinkBench)")
    add_rank_model_arguments(solve)
    solve.add_argument("--conv-floor", default="uniform", type=conv_floor,
                       help="lowest density of every prunable conv inside the bound: 'uniform' (the budget's global "
                            "density, the default: the bound is blind to conv pruning above about 0.01 and would "
                            "strip convs), a density in [0, 1], or 'none'; a layer's own --min-density wins")
    solve.add_argument("--min-density", type=name_value, action="append", metavar="[NAME=]DENSITY",
                       help="lower bound on a layer's density (repeatable; a plain number applies to every layer)")
    solve.add_argument("--max-density", type=name_value, action="append", metavar="[NAME=]DENSITY",
                       help="upper bound on a layer's density (repeatable)")
    solve.add_argument("--pin", type=pin_option, action="append", metavar="NAME=DENSITY",
                       help="fix a layer's density (repeatable)")
    solve.add_argument("--min-kept", type=int, default=1, help="fewest kept weights in any prunable layer (default 1)")
    solve.add_argument("--min-kept-per-unit", action="store_true",
                       help="keep at least one weight per output unit of every prunable layer")
    solve.add_argument("--tie", action="append", metavar="NAME,NAME[,...]", help="layers sharing one density")
    solve.add_argument("--flops-budget", type=float, help="most multiply-adds per example over the prunable layers")
    solve.add_argument("--levels", type=positive_int, default=None,
                       help="menu levels per layer in the MIP (default 100; fewer past 10 layers, about 1000 "
                            "binaries in all, at least 10 levels)")
    solve.add_argument("--solutions", type=positive_int, default=3, help="MIP solutions polished (no-good cuts)")
    solve.add_argument("--time-limit", type=float, default=60.0, help="MIP time limit in seconds (default 60)")
    solve.add_argument("--certificate-seconds", type=float, default=None,
                       help="seconds the certificate's upper bound may take after the solve (default: half the "
                            "solve's time, 1 s at least, and up to 8 s in all where its gap is then within 0.01-0.1 "
                            "nats; within --time-limit): more proves a smaller gap on deep nets")
    solve.add_argument("--objective", choices=("bound", "distortion", "guarded"), default="bound",
                       help="bound: maximise ln E[B] (default); distortion: minimise the measured output distortion "
                            "of the model on --dataset; guarded: minimise it subject to ln E[B] >= the bound's best "
                            "- --guard-nats (needs --model and --dataset)")
    solve.add_argument("--dataset", help="distortion/guarded: the data set whose training images calibrate (names as "
                                         "for validate; npz:FILE and idx:DIR too)")
    solve.add_argument("--data-dir", help="distortion/guarded: where the data set's files are, if it needs one")
    solve.add_argument("--calibration-size", type=positive_int, default=1024,
                       help="distortion/guarded: training images the distortion is measured on (default 1024)")
    solve.add_argument("--calibration-seed", type=non_negative_int, default=0,
                       help="distortion/guarded: seed of the calibration images' draw and of the dense training")
    solve.add_argument("--guard-nats", type=float, default=0.1,
                       help="guarded: how far below the bound's best ln E[B] the answer may go, nats (default 0.1: "
                            "the study's narrowest guard lost least; see README)")
    solve.add_argument("--train-epochs", type=non_negative_int,
                       help="distortion/guarded: train the model densely first for this many epochs (default 3 for "
                            "a registered model, whose weights are untrained; 0 for your own model)")
    solve.add_argument("--baselines", default="uniform,uniform-gale,er,erk",
                       help="comma-separated baselines to compare (default uniform,uniform-gale,er,erk; also igq, "
                            "balanced, and synflow with --model: SynFlow's counts on the model's initial draw)")
    solve.add_argument("--precision", type=float, metavar="NATS",
                       help="structural: double the masks from --samples until the standard error of ln E[B] of the "
                            "uniform allocation is at most NATS (or --precision-seconds end), then solve")
    solve.add_argument("--precision-seconds", type=float, default=60.0, help="time budget of --precision (default 60)")
    solve.add_argument("--cache-mb", type=float, default=256.0,
                       help="memory the bound's caches may use, MiB (default 256); the call's peak is estimated "
                            "first and refused when the machine has less")
    solve.add_argument("--raw-baselines", action="store_true",
                       help="also show (and record) each baseline's raw counts where they had to be repaired to the "
                            "constraints")
    solve.add_argument("--out", help="write the allocation file (JSON) here")
    solve.add_argument("--export", type=export_option, action="append", metavar="FORMAT=FILE",
                       help="also write another tool's format (repeatable): " + ", ".join(EXPORTERS)
                       + "; see allocator export --help")
    solve.add_argument("--json", action="store_true", help="print the allocation document on stdout")
    solve.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    solve.set_defaults(command_name="solve")

    validate = commands.add_parser("validate", help="prune, fine-tune and compare allocations on real data")
    validate.add_argument("--model", default="mlp-2x100", help=MODEL_HELP + " (default mlp-2x100)")
    add_own_model_arguments(validate)
    validate.add_argument("--dataset", default="fashion-mnist",
                          help="fashion-mnist (default), mnist (with --data-dir), mnist-npm10k, mnist-mlxtend5k, cifar10 "
                               "(with --data-dir), or your own: npz:FILE.npz (x_train, y_train, x_test, y_test) or "
                               "idx:DIRECTORY (MNIST-layout IDX files)")
    validate.add_argument("--data-dir", help="directory of the data set's files, where it needs one")
    validate.add_argument("--density", type=float_list,
                          help="global densities (fraction kept of the prunable weights), comma-separated")
    validate.add_argument("--allocation", action="append", metavar="FILE",
                          help="a solved allocation file (e.g. with constraints): validated as rule file-<name> at its "
                               "density, beside the --allocations rules (repeatable; --density may then be left out)")
    validate.add_argument("--save-models", action="store_true",
                          help="keep every fine-tuned pruned model's state_dict (pruned weights zero) under "
                               "OUT/models/<cell>.pt")
    validate.add_argument("--allocations", default="ours,uniform",
                          help="comma-separated: ours, uniform, uniform-gale, er, erk, igq, balanced, global-magnitude, lamp")
    validate.add_argument("--criterion", default="magnitude",
                          help="pruning criterion: magnitude (default), random, gradient, lamp, kmp, kgp")
    validate.add_argument("--koopman-steps", type=positive_int,
                          help="kmp/kgp: optimiser steps in the snapshot window (default one epoch)")
    validate.add_argument("--koopman-stride", type=positive_int, default=1,
                          help="kmp/kgp: keep every k-th snapshot (default 1)")
    validate.add_argument("--seeds", type=positive_int, help="number of paired seeds 0..N-1 (default 3)")
    validate.add_argument("--seed-list", type=seed_list, help="explicit seeds, comma-separated")
    validate.add_argument("--epochs", type=non_negative_int, default=15, help="dense training epochs (default 15)")
    validate.add_argument("--finetune-epochs", type=non_negative_int, default=15, help="fine-tuning epochs (default 15)")
    validate.add_argument("--dense-finetune", action="store_true",
                          help="reference engine: fine-tune each cell alone as a masked dense model (default: "
                               "the same arithmetic, faster: layers at density <= 0.01 train through their kept "
                               "weights only, and chain models train all cells of a seed as one batched model)")
    validate.add_argument("--freeze-features", action="store_true",
                          help="fine-tune the linear layers fc1 .. fcL only; the layers before fc1 (LeNet-5's "
                               "convolutions) stay at the dense model's weights")
    validate.add_argument("--convs-inside", action="store_true",
                          help="a CNN's convolutions inside the bound and pruned too (the allocation covers every "
                               "conv and linear layer, convs floored at the uniform share); default paper 1's "
                               "convention: convs frozen and unpruned, n0 = their flattened output")
    validate.add_argument("--respend-dead", action="store_true",
                          help="MLPs: after pruning, trade each kept weight on no input-to-output path for the best "
                               "pruned weight between live units (the same kept count per layer; cells record how "
                               "many as 'respent')")
    validate.add_argument("--batch-size", type=positive_int, default=128)
    validate.add_argument("--lr", type=float, default=0.01)
    validate.add_argument("--select-on", choices=("validation", "test", "last"), default="validation",
                          help="checkpoint selection split (default validation; the papers used test)")
    validate.add_argument("--rank-model", choices=RANK_MODELS, default="binomial")
    validate.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    validate.add_argument("--out", help="run folder (resumes if it holds the same configuration)")
    validate.add_argument("--label", default="", help="a line printed above the table (e.g. 'quick run')")
    validate.add_argument("--quiet", action="store_true")
    validate.set_defaults(command_name="validate")

    regions = commands.add_parser("regions", help="count the linear regions of a trained MLP on a 2-D data slice")
    regions.add_argument("--model", default="mlp-2x100", help="an MLP: " + MODEL_HELP + " (default mlp-2x100)")
    add_own_model_arguments(regions)
    regions.add_argument("--dataset", default="fashion-mnist")
    regions.add_argument("--data-dir")
    regions.add_argument("--checkpoint", help="a state_dict (.pt) of the model; default: train one now")
    regions.add_argument("--train-epochs", type=non_negative_int, default=3, help="epochs when no checkpoint is given (default 3)")
    regions.add_argument("--seed", type=int, default=0)
    regions.add_argument("--allocation", help="an allocation file: also count the model pruned to it")
    regions.add_argument("--density", type=float, help="or: solve an allocation at this global density")
    regions.add_argument("--rule", choices=("ours", "uniform"), default="ours", help="with --density (default ours)")
    regions.add_argument("--finetune-epochs", type=non_negative_int, default=3, help="fine-tuning of the pruned model (default 3)")
    regions.add_argument("--points", default="0,1,2", help="three test-set indices spanning the plane")
    regions.add_argument("--resolution", type=positive_int, default=300, help="grid for the lower bound and picture")
    regions.add_argument("--threads", type=positive_int, default=1)
    regions.add_argument("--out", help="PNG of the plane coloured by region (dense and pruned side by side)")
    regions.add_argument("--json", action="store_true")
    regions.add_argument("--quiet", action="store_true")
    regions.set_defaults(command_name="regions")

    from allocator.cli.interop import add_interop_commands

    add_interop_commands(commands)

    models = commands.add_parser("models", help="list the registered model names")
    models.set_defaults(command_name="models")
    return parser
