"""Shared test settings: one thread for numeric libraries, deterministic hypothesis runs."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
# The CLI keeps conv rank tables under $XDG_CACHE_HOME: tests keep theirs in a folder of their own.
import tempfile  # noqa: E402

os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="allocator-test-cache-")

from hypothesis import settings  # noqa: E402

settings.register_profile("repo", derandomize=True, deadline=None, max_examples=60, print_blob=True)
settings.load_profile("repo")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory):
    """A learnable fake MNIST in IDX format (700 training and 200 test images), shared by the whole run."""
    return write_fake_idx(tmp_path_factory.mktemp("idx"), seed=0)


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


GROUPS = ("pure", "solver", "torch", "study")


def pytest_collection_modifyitems(config, items):
    """Every test says what it needs: at least one of the group markers, and ``pure`` alone."""
    problems = []
    for item in items:
        if isinstance(item, pytest.DoctestItem) and not any(item.get_closest_marker(g) for g in GROUPS):
            item.add_marker(pytest.mark.pure)  # the docstring examples are of pure functions
        groups = {name for name in GROUPS if item.get_closest_marker(name) is not None}
        if not groups:
            problems.append(f"{item.nodeid}: no group marker (one of {', '.join(GROUPS)})")
        elif "pure" in groups and len(groups) > 1:
            problems.append(f"{item.nodeid}: 'pure' together with {sorted(groups - {'pure'})}")
    if problems:
        raise pytest.UsageError("test markers:\n" + "\n".join(problems))


def pytest_addoption(parser):
    parser.addoption("--tool", default="torch",
                     help="interop tests: the tool whose environment this is (torch, nni, llmcompressor, "
                          "sparseml-legacy)")
