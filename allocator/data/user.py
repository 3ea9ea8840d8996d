"""The user's own data: ``npz:PATH`` (numpy arrays) and ``idx:DIR`` (IDX files), read offline like the others.

``npz:PATH`` holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``x_val``, ``y_val``. Images are
``(N, H, W)``, ``(N, C, H, W)`` or flat ``(N, D)``; labels integers ``0 .. K-1``. ``idx:DIR`` holds
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``
(gzip or plain), as MNIST does. Normalisation: ``uint8`` pixels are scaled to ``[0, 1]``; then every channel is
standardised by the training split's mean and standard deviation (recorded in ``Dataset.mean`` / ``std``), so
``x = (value - mean) / std``. Without a validation split, one is held out of the training split as for the other
sets (``validation`` images, default min(5,000, 10 %)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from allocator.data.sources import Dataset, DataMissingError, _hold_out, _idx_pair
from allocator.errors import InvalidInputError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def _images(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim not in (2, 3, 4):
        raise InvalidInputError(f"{what} has shape {array.shape}; expected (N, D), (N, H, W) or (N, C, H, W)")
    values = array.astype(np.float32) / np.float32(255.0) if array.dtype == np.uint8 else array.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise InvalidInputError(f"{what} holds values that are not finite numbers")
    return values[:, None] if values.ndim == 3 else values


def _labels(array: np.ndarray, what: str, count: int) -> np.ndarray:
    if array.ndim != 1 or len(array) != count:
        raise InvalidInputError(f"{what} has shape {array.shape}; expected ({count},), one label per example")
    if not np.issubdtype(array.dtype, np.integer) or (len(array) and array.min() < 0):
        raise InvalidInputError(f"{what} must hold integer class labels >= 0 (got dtype {array.dtype})")
    return array.astype(np.int64)


def _standardised(name: str, source: str, parts: dict[str, np.ndarray], validation: int | None) -> Dataset:
    """Standardise by the training split: per channel for images ``(N, C, H, W)``, over every value for flat
    examples ``(N, D)``; hold out a validation split when there is none."""
    images = parts["x_train"].ndim == 4
    axes = (0, 2, 3) if images else None
    mean = np.atleast_1d(parts["x_train"].mean(axis=axes, dtype=np.float64))
    std = np.atleast_1d(parts["x_train"].std(axis=axes, dtype=np.float64))
    std = np.where(std > 0, std, 1.0)
    shape = (1, -1, 1, 1) if images else (1, 1)

    def normalise(x: np.ndarray) -> np.ndarray:
        return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)

    if "x_val" in parts:
        train_x, train_y, val_x, val_y = normalise(parts["x_train"]), parts["y_train"], normalise(parts["x_val"]), parts["y_val"]
    else:
        train_x, train_y, val_x, val_y = _hold_out(normalise(parts["x_train"]), parts["y_train"], validation)
    classes = max(int(parts[k].max()) for k in ("y_train", "y_test", "y_val") if k in parts and len(parts[k])) + 1
    return Dataset(name, source, train_x, train_y, val_x, val_y, normalise(parts["x_test"]), parts["y_test"], classes,
                   tuple(float(m) for m in mean), tuple(float(s) for s in std))


def load_npz(path: str, validation: int | None = None) -> Dataset:
    """``npz:PATH`` (module docstring).

    Raises:
        DataMissingError: no such file. InvalidInputError: a missing array, or arrays of the wrong shape or type.
    """
    file = Path(path)
    if not file.is_file():
        raise DataMissingError(f"data set npz:{path}: no such file")
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"data set npz:{path} is not a readable .npz archive: {error}") from None
    missing = [key for key in REQUIRED if key not in arrays]
    if ("x_val" in arrays) != ("y_val" in arrays):
        missing.append("y_val" if "x_val" in arrays else "x_val")
    if missing:
        raise InvalidInputError(f"data set npz:{path} lacks {', '.join(missing)}; it needs x_train, y_train, x_test, "
                                f"y_test (and optionally x_val with y_val)")
    parts: dict[str, np.ndarray] = {}
    for split in ("train", "test", "val"):
        if f"x_{split}" not in arrays:
            continue
        images = _images(arrays[f"x_{split}"], f"x_{split}")
        parts[f"x_{split}"] = images
        parts[f"y_{split}"] = _labels(arrays[f"y_{split}"], f"y_{split}", len(images))
    shapes = {parts[k].shape[1:] for k in parts if k.startswith("x_")}
    if len(shapes) != 1:
        raise InvalidInputError(f"data set npz:{path}: the splits' examples have different shapes {sorted(shapes)}")
    return _standardised(f"npz:{file.name}", f"numpy arrays from {file.resolve()}", parts, validation)


def load_idx_folder(directory: str, validation: int | None = None) -> Dataset:
    """``idx:DIR`` (module docstring)."""
    folder = Path(directory)
    how = f"put train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and " \
          f"t10k-labels-idx1-ubyte(.gz) into {folder}"
    train_x, train_y = _idx_pair(folder, "train", how)
    test_x, test_y = _idx_pair(folder, "t10k", how)
    parts = {"x_train": _images(train_x, "train images"), "y_train": _labels(train_y, "train labels", len(train_x)),
             "x_test": _images(test_x, "test images"), "y_test": _labels(test_y, "test labels", len(test_x))}
    return _standardised(f"idx:{folder.name}", f"IDX files from {folder.resolve()}", parts, validation)
