"""Progress of long work with counts and an ETA: a tqdm bar on a terminal, plain lines otherwise.

``ETA = elapsed / done * (total - done)``, from the units done in this run (units already on disk when a run
resumes do not count as work done now).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

Say = Callable[[str], None]


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class Progress:
    """``advance(n)`` after each unit of work; ``message(text)`` for a line that does not disturb the bar.

    Args:
        total: units to do in this run. label: what a unit is, plural (``"cells"``).
        say: where plain lines go (``None``: nowhere, and no bar either).
        stream: the terminal a bar would go to; a bar is drawn only when it is a TTY.
    """

    def __init__(self, total: int, label: str, say: Say | None, *, stream: TextIO | None = None) -> None:
        self.total, self.label, self.done = total, label, 0
        self._say = say
        self._start = time.perf_counter()
        stream = stream if stream is not None else sys.stderr
        self._bar = None
        if say is not None and total > 0 and getattr(stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=label.rstrip("s") or label, file=stream, dynamic_ncols=True)

    def message(self, text: str) -> None:
        """A line of text, above the bar when there is one."""
        if self._say is None:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            self._say(text)

    def advance(self, count: int = 1) -> None:
        """``count`` more units done: move the bar, or say ``done/total (percent), elapsed, ETA``."""
        self.done += count
        if self._say is None:
            return
        if self._bar is not None:
            self._bar.update(count)
            return
        elapsed = time.perf_counter() - self._start
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        self._say(f"{self.done}/{self.total} {self.label} ({100 * self.done / max(1, self.total):.0f} %), "
                  f"{_minutes(elapsed)} elapsed, about {_minutes(left)} left")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
