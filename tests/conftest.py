"""Shared test settings: one thread for numeric libraries, deterministic hypothesis runs."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from hypothesis import settings  # noqa: E402

settings.register_profile("repo", derandomize=True, deadline=None, max_examples=60, print_blob=True)
settings.load_profile("repo")


def write_fake_idx(directory, seed, counts=(("train", 700), ("t10k", 200))):
    """A learnable fake MNIST in IDX format (gzip): the label is written as a bright stripe in the image."""
    import gzip

    import numpy as np

    rng = np.random.default_rng(seed)
    for prefix, count in counts:
        labels = rng.integers(0, 10, count)
        images = rng.integers(0, 60, (count, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label: 2 * label + 2, :] = 255
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            with gzip.open(directory / f"{prefix}-{kind}-ubyte.gz", "wb") as stream:
                stream.write(header + array.astype(np.uint8).tobytes())
    return directory
