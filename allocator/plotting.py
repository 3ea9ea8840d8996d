"""Saving matplotlib figures as PNG files, atomically, with a non-interactive backend."""

from __future__ import annotations

import io
import os


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed); imported only when plotting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | os.PathLike[str], dpi: int = 110) -> None:
    """Write ``figure`` as PNG to ``path`` atomically, then close it."""
    from allocator.io_utils import atomic_write_bytes

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(figure)
    atomic_write_bytes(path, buffer.getvalue())
