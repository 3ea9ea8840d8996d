"""Write a data set of one's own as ``npz``: a fixed random subset of Fashion-MNIST as ``uint8`` arrays.

Run: ``.venv/bin/python -m experiments.examples.fashion_npz --out runs/my-data.npz [--train 10000 --test 2000]``;
then ``allocator validate --dataset npz:runs/my-data.npz ...`` reads it like any user's arrays (``x_train``,
``y_train``, ``x_test``, ``y_test``).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from allocator.data.sources import FASHION_MNIST_DIR, read_idx
from allocator.io_utils import atomic_write_bytes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/my-data.npz")
    parser.add_argument("--train", type=int, default=10_000, help="training images (of 60,000)")
    parser.add_argument("--test", type=int, default=2_000, help="test images (of 10,000)")
    parser.add_argument("--data-dir", default=str(FASHION_MNIST_DIR))
    args = parser.parse_args(argv)
    folder = Path(args.data_dir)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, prefix, count in (("train", "train", args.train), ("test", "t10k", args.test)):
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
        if not 0 < count <= len(labels):
            parser.error(f"--{split} {count} must lie in [1, {len(labels)}]")
        chosen = np.sort(rng.choice(len(labels), count, replace=False))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images[chosen], labels[chosen].astype(np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"wrote {args.out}: {args.train} training and {args.test} test images (uint8, 28x28), labels 0..9")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
