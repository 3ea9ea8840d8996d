"""``allocator``: the command line. Every user error is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import NoReturn, Sequence

from allocator import __version__
from allocator.bound import RANK_MODELS, BoundResult, RankModel, expected_bound
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

    network = get_model(args.model).network
    return Network(network.input_width, network.widths, network.names, network.prunable, include_output)


def _rank_model_from_args(args: argparse.Namespace) -> RankModel:
    if args.paper_p0 and args.rank_model != "binomial":
        raise UsageError(f"--paper-p0 applies to --rank-model binomial only, not {args.rank_model!r}")
    return RankModel(args.rank_model, paper_p0=args.paper_p0, samples=args.samples, seed=args.seed)


def _format_bound(result: BoundResult, network: Network) -> str:
    model = result.rank_model + (f" {result.rank_model_options}" if result.rank_model_options else "")
    output_rule = (
        "included as a last factor (papers' convention; it has no ReLU)"
        if result.include_output_layer
        else "excluded (theory-clean bound)"
    )
    lines = [
        "Expected upper bound E[B] on the number of linear regions of the pruned ReLU network",
        f"  network      n0={result.input_width}, widths {'-'.join(map(str, result.widths))}",
        f"  rank model   {model}",
        f"  output layer {output_rule}",
        f"  arithmetic   {'exact (rational)' if result.exact_value is not None else 'float64 log space'}",
        "",
        f"  {'layer':<14}{'shape':>11}{'weights':>10}{'density':>11}{'sparsity':>11}{'E[kept]':>11}"
        f"{'E[rank]':>9}{'in bound':>10}",
    ]
    for layer in result.layers:
        shape = f"{layer.rows}x{layer.cols}"
        rank = "-" if layer.expected_rank is None else f"{layer.expected_rank:.2f}"
        lines.append(
            f"  {layer.name:<14}{shape:>11}{layer.weights:>10}{layer.density:>11.6g}{1 - layer.density:>11.6g}"
            f"{layer.expected_kept:>11.1f}{rank:>9}{'yes' if layer.in_bound else 'no':>10}"
        )
    prunable = network.prunable_weights
    kept = sum(layer.expected_kept for layer, p in zip(result.layers, network.prunable) if p)
    if prunable:
        lines.append(
            f"  prunable weights: {prunable}; expected kept {kept:.1f} "
            f"(global density {kept / prunable:.6g} of the prunable weights)"
        )
    if result.structural_samples is not None:
        lines.append(f"  structural rank laws from {result.structural_samples} sampled masks per layer")
    lines += [
        "",
        f"  ln E[B]   = {result.ln_bound:.4f} nats",
        f"  log2 E[B] = {result.log2_bound:.4f}",
        f"  E[B]      = {result.scientific(4)}",
    ]
    return "\n".join(lines)


def _cmd_bound(args: argparse.Namespace) -> int:
    network = _network_from_args(args)
    model = _rank_model_from_args(args)
    densities = network.expand_densities(args.density)
    result = expected_bound(network, densities, model, exact=args.exact)
    if args.json:
        document = result.to_json()
        document["ln_bound"] = result.ln_bound if math.isfinite(result.ln_bound) else None
        print(json.dumps(document, indent=2))
    else:
        print(_format_bound(result, network))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from allocator.models import get_model, model_names

    for name in model_names():
        entry = get_model(name)
        print(f"{name:<18} {entry.network.arch_string():<22} {entry.summary}")
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

    models = commands.add_parser("models", help="list the registered model names")
    models.set_defaults(handler=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``allocator`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.handler(args))
    except (UsageError, AllocatorError) as error:
        message = str(error).replace("\n", " ")
        prefix = "" if message.startswith("allocator") else "allocator: error: "
        print(f"{prefix}{message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # stdout closed early (e.g. piped into head): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("allocator: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
