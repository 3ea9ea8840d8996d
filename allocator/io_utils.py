"""Atomic file writes: a reader sees the old file or the new one, never a half-written one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask), not the
    ``0o600`` of a temporary file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """``atomic_write_bytes`` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_all(files: Mapping[str | os.PathLike[str], str]) -> list[Path]:
    """Write every ``path -> text`` atomically, all or nothing: if one write fails, the files already written
    are put back as they were (restored, or removed where there was none) and the error is raised."""
    previous: dict[Path, bytes | None] = {}
    written: list[Path] = []
    try:
        for path, text in files.items():
            target = Path(path)
            previous[target] = target.read_bytes() if target.is_file() else None
            written.append(atomic_write_text(target, text))
    except BaseException:
        for target in written:
            before = previous[target]
            if before is None:
                target.unlink(missing_ok=True)
            else:
                atomic_write_bytes(target, before)
        raise
    return written
