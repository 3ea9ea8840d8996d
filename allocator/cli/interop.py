"""``allocator export`` (an allocation file to another tool's format, with the snippet that applies it) and
``allocator verify`` (a pruned model against an allocation file: exit 1 on any mismatch)."""

from __future__ import annotations

import argparse
import sys

EXIT_MISMATCH = 1


def add_interop_commands(commands: argparse._SubParsersAction) -> None:
    """The ``export`` and ``verify`` sub-commands."""
    from allocator.allocation.exporters import EXPORTERS

    export = commands.add_parser("export", help="write an allocation file in another pruning tool's format")
    export.add_argument("allocation", help="an allocation file (allocator solve --out)")
    export.add_argument("--format", required=True, metavar="FORMAT",
                        help="one of: " + ", ".join(f"{kind} ({consumer})" for kind, (_, _, consumer)
                                                    in EXPORTERS.items()))
    export.add_argument("--out", help="write the export here (default: print it)")
    export.add_argument("--snippet", action="store_true",
                        help="with --out: print the Python that applies the export to a torch `model` in its tool "
                             "(stdout holds the snippet alone)")
    export.set_defaults(command_name="export")

    verify = commands.add_parser("verify", help="check a pruned model's kept weights against an allocation file")
    verify.add_argument("allocation", help="an allocation file")
    verify.add_argument("pruned", help="a torch.save file: a state dict, a saved model (--trust-pickle) or masks")
    verify.add_argument("--masks", action="store_true",
                        help="the file holds masks ({name: mask}, NNI's {module: {param: mask}}): count their ones")
    verify.add_argument("--trust-pickle", action="store_true",
                        help="allow a file that pickles objects (a whole saved nn.Module): unpickling runs its code")
    verify.add_argument("--quiet", action="store_true", help="print the mismatches and the summary only")
    verify.set_defaults(command_name="verify")


def cmd_export(args: argparse.Namespace) -> int:
    from allocator.allocation.exporters import check_export_path, check_format, export_text, snippet_for
    from allocator.allocation.file import load
    from allocator.errors import InvalidInputError
    from allocator.io_utils import write_all

    kind = check_format(args.format)
    if args.snippet and not args.out:
        raise InvalidInputError("--snippet applies the file that --out writes; accepted: --snippet with --out FILE")
    if args.out:
        check_export_path(kind, args.out)
    allocation = load(args.allocation)
    text = export_text(allocation, kind)
    if not args.out:
        print(text, end="")
        return 0
    write_all({args.out: text})
    print(f"  wrote {args.out} ({kind})", file=sys.stderr)
    if args.snippet:  # stdout holds the snippet alone: `... --snippet > apply.py` is runnable
        print(snippet_for(kind, args.out), end="")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from allocator.allocation.file import load
    from allocator.pruning.verify import load_tensors, verify_tensors, weight_names

    allocation = load(args.allocation)
    tensors = load_tensors(args.pruned, trust_pickle=args.trust_pickle)
    checks = verify_tensors(allocation, tensors, masks=args.masks)
    if not args.quiet:
        width = max(len(check.name) for check in checks)
        print(f"{'tensor':<{width}}  {'weights':>10}  {'allocated':>10}  {'realised':>10}  check")
        for check in checks:
            realised = "-" if check.realised is None else str(check.realised)
            print(f"{check.name:<{width}}  {check.weights:>10}  {check.kept:>10}  {realised:>10}  "
                  f"{'ok' if check.ok else 'MISMATCH'}")
    bad = [check for check in checks if not check.ok]
    for check in bad:
        print(f"MISMATCH {check.name}: {check.problem}")
    if any(check.realised is None and not check.source for check in bad):
        print(f"  the model's weight tensors: {', '.join(weight_names(tensors))}", file=sys.stderr)
    if bad:
        print(f"verify: {len(bad)} of {len(checks)} tensors differ from {args.allocation}")
        return EXIT_MISMATCH
    print(f"verify: all {len(checks)} tensors realise {args.allocation} exactly "
          f"({sum(check.kept for check in checks)} of {sum(check.weights for check in checks)} weights kept)")
    return 0
