"""Parameter snapshots of a training run, stored so that memory does not grow as N x T.

``SnapshotStore`` appends each snapshot (the flattened prunable tensors, in a fixed order that maps back
to tensor names) as one float32 row of a file on disk. Everything the DMD needs is then computed in float64
by passes over *parameter chunks*: the Gram matrix ``G = S^T S`` (T x T) and products ``S^T C`` for a few
coefficient vectors. Peak memory is ``O(chunk x T + T^2)``, not ``O(N x T)``.

Why not a running Gram during training: ``G[t, j] = theta_t . theta_j`` needs every earlier snapshot when
``theta_t`` arrives, so an exact streaming Gram over time would have to keep them all (N x T) or reread the
file each step (O(T^2 N) reads). Chunking over parameters after the window reads the file once per pass.
``in_memory=True`` keeps the rows in a list instead (small models, tests).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from allocator.errors import InvalidInputError

DEFAULT_CHUNK = 1 << 13


class SnapshotStore:
    """Rows ``theta_0 .. theta_{T-1}`` (each N float32) with chunked float64 reductions."""

    def __init__(
        self,
        names: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        *,
        directory: str | os.PathLike[str] | None = None,
        in_memory: bool = False,
    ) -> None:
        if len(names) != len(shapes) or not names:
            raise InvalidInputError("give one shape per tensor name, and at least one tensor")
        self.names = tuple(names)
        self.shapes = tuple(tuple(int(d) for d in s) for s in shapes)
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.offsets = tuple(np.cumsum([0] + sizes).tolist())
        self.size = self.offsets[-1]
        self.count = 0
        self._rows: list[np.ndarray] | None = [] if in_memory else None
        self._path: Path | None = None
        self._file = None
        if not in_memory:
            folder = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="snapshots-"))
            folder.mkdir(parents=True, exist_ok=True)
            self._path = folder / "snapshots.f32"
            self._file = open(self._path, "wb")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> "SnapshotStore":
        """Open the rows a store left in ``path`` (read-only; the count follows from the file size)."""
        store = cls.__new__(cls)
        store.names = tuple(names)
        store.shapes = tuple(tuple(int(d) for d in s) for s in shapes)
        sizes = [int(np.prod(s)) for s in store.shapes]
        store.offsets = tuple(np.cumsum([0] + sizes).tolist())
        store.size = store.offsets[-1]
        store._rows, store._path = None, Path(path)
        bytes_ = store._path.stat().st_size
        if bytes_ % (4 * store.size):
            raise InvalidInputError(f"{path} holds {bytes_} bytes, not a whole number of {store.size}-value rows")
        store.count = bytes_ // (4 * store.size)
        store._file = None
        return store

    @property
    def path(self) -> Path | None:
        """The file holding the rows (``None`` in memory)."""
        return self._path

    def append(self, vector: np.ndarray) -> None:
        """Add one snapshot (length N)."""
        row = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        if row.size != self.size:
            raise InvalidInputError(f"snapshot has {row.size} values; the store holds {self.size} per snapshot")
        if self._rows is not None:
            self._rows.append(row.copy())
        else:
            self._file.write(row.tobytes())  # type: ignore[union-attr]
        self.count += 1

    def row(self, index: int) -> np.ndarray:
        """Snapshot ``index`` as float64."""
        if not 0 <= index < self.count:
            raise InvalidInputError(f"snapshot {index} is outside the window of {self.count}")
        if self._rows is not None:
            return self._rows[index].astype(np.float64)
        return self._read_columns(0, self.size, slice(index, index + 1))[0]

    def _read_columns(self, start: int, stop: int, rows: slice = slice(None)) -> np.ndarray:
        """Columns ``start:stop`` of the rows in ``rows`` as float64: one read per row from the file (never a
        memory map, whose pages would count as resident memory), or a slice of the in-memory rows."""
        indices = range(self.count)[rows]
        if self._rows is not None:
            return np.stack([self._rows[t][start:stop] for t in indices]).astype(np.float64)
        if self._file is not None:
            self._file.flush()
        buffer = np.empty((len(indices), stop - start), dtype=np.float32)
        with open(self._path, "rb") as stream:  # type: ignore[arg-type]
            for i, t in enumerate(indices):
                stream.seek((t * self.size + start) * 4)
                stream.readinto(memoryview(buffer[i]).cast("B"))
        return buffer.astype(np.float64)

    def gram(self, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
        """``G = S^T S`` in float64 (``G[i, j] = theta_i . theta_j``), one pass over parameter chunks."""
        gram = np.zeros((self.count, self.count))
        for start in range(0, self.size, chunk):
            block = self._read_columns(start, min(self.size, start + chunk))
            gram += block @ block.T
        return gram

    def combine(self, coefficients: np.ndarray, rows: slice = slice(None), chunk: int = DEFAULT_CHUNK) -> np.ndarray:
        """``sum_t coefficients[t, k] theta_{rows}[t]`` for every column ``k``: an N x K (complex) array."""
        selected = len(range(self.count)[rows])
        coefficients = np.asarray(coefficients)
        if coefficients.ndim == 1:
            coefficients = coefficients[:, None]
        if coefficients.shape[0] != selected:
            raise InvalidInputError(f"{coefficients.shape[0]} coefficients for {selected} snapshots")
        out = np.zeros((self.size, coefficients.shape[1]), dtype=np.result_type(coefficients.dtype, np.float64))
        for start in range(0, self.size, chunk):
            block = self._read_columns(start, min(self.size, start + chunk), rows)
            out[start:start + chunk] = block.T @ coefficients
        return out

    def split(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """A length-N vector back into tensors keyed by name."""
        return {name: np.asarray(vector[a:b]).reshape(shape)
                for name, shape, a, b in zip(self.names, self.shapes, self.offsets, self.offsets[1:])}

    def close(self, delete: bool = True) -> None:
        """Close the file; delete it (and its temporary folder) unless asked to keep it."""
        if self._file is not None:
            self._file.close()
            self._file = None
            if delete and self._path is not None and self._path.exists():
                self._path.unlink()
                try:
                    self._path.parent.rmdir()
                except OSError:
                    pass

    def __enter__(self) -> "SnapshotStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
