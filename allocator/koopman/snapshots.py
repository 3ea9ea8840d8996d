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

DEFAULT_CHUNK = 1 << 15


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

    def _matrix(self) -> np.ndarray:
        if self._rows is not None:
            return np.stack(self._rows) if self._rows else np.zeros((0, self.size), np.float32)
        self._file.flush()  # type: ignore[union-attr]
        return np.memmap(self._path, dtype=np.float32, mode="r", shape=(self.count, self.size))

    def row(self, index: int) -> np.ndarray:
        """Snapshot ``index`` as float64."""
        return np.asarray(self._matrix()[index], dtype=np.float64)

    def gram(self, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
        """``G = S^T S`` in float64 (``G[i, j] = theta_i . theta_j``), one pass over parameter chunks."""
        matrix = self._matrix()
        gram = np.zeros((self.count, self.count))
        for start in range(0, self.size, chunk):
            block = np.asarray(matrix[:, start:start + chunk], dtype=np.float64)
            gram += block @ block.T
        return gram

    def combine(self, coefficients: np.ndarray, rows: slice = slice(None), chunk: int = DEFAULT_CHUNK) -> np.ndarray:
        """``sum_t coefficients[t, k] theta_{rows}[t]`` for every column ``k``: an N x K (complex) array."""
        matrix = self._matrix()[rows]
        coefficients = np.asarray(coefficients)
        if coefficients.ndim == 1:
            coefficients = coefficients[:, None]
        if coefficients.shape[0] != matrix.shape[0]:
            raise InvalidInputError(f"{coefficients.shape[0]} coefficients for {matrix.shape[0]} snapshots")
        out = np.zeros((self.size, coefficients.shape[1]), dtype=np.result_type(coefficients.dtype, np.float64))
        for start in range(0, self.size, chunk):
            block = np.asarray(matrix[:, start:start + chunk], dtype=np.float64)
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
