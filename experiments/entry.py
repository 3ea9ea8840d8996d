"""How the experiment scripts end: an error raised on purpose (``AllocatorError``: bad input, failed tasks) is
printed as its message on stderr with exit status 2, never as a traceback; anything else is a bug and keeps its
traceback."""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from allocator.errors import AllocatorError


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """``main(argv)``'s exit status, or 2 after printing the message of an ``AllocatorError`` it raised."""
    try:
        return main(argv)
    except AllocatorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1, else argparse's one-line usage error naming the value."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected an integer >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1; expected an integer >= 1")
    return value
