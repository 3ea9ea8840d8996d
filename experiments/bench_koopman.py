"""Benchmark: KMP scores of MnistNet from one epoch of snapshots, chunked Gram vs holding S and a dense SVD.

Run: ``.venv/bin/python -m experiments.bench_koopman [--steps 469]``. Records a real window (MnistNet, paper 1
recipe, Fashion-MNIST, all weights but the classifier: about 426k parameters x 470 snapshots) to a file once,
then runs each method in a fresh subprocess and reports its wall time and peak resident memory
(``VmHWM``; it includes the interpreter, numpy and torch, about 220 MB, since the package imports torch):

- ``gram`` (ours): float64 Gram in parameter chunks from the file, exact DMD from Gram blocks, one pass for
  the lambda ~ 1 mode;
- ``dense``: load the snapshot matrix into memory, float64 economy SVD of X, exact DMD, the mode as Y V S^-1 w.
Both must give the same KMP scores (the largest relative difference is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def peak_resident_mb() -> float:
    """This process's peak resident memory: ``VmHWM`` of /proc/self/status. (``ru_maxrss`` is kept across
    fork and exec on Linux, so a child would report its parent's footprint.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(method: str, meta_path: str) -> None:
    from allocator.koopman import SnapshotStore, koopman_scores

    meta = json.loads(Path(meta_path).read_text())
    start = time.perf_counter()
    if method == "gram":
        store = SnapshotStore.from_file(meta["file"], meta["names"], [tuple(s) for s in meta["shapes"]])
        scores = np.concatenate([v.ravel() for v in koopman_scores(store).kmp.values()])
    else:
        size = sum(int(np.prod(s)) for s in meta["shapes"])
        matrix = np.fromfile(meta["file"], dtype=np.float32).reshape(-1, size).T  # N x T, held in memory
        x, y = matrix[:, :-1].astype(np.float64), matrix[:, 1:].astype(np.float64)
        u, sigma, vt = np.linalg.svd(x, full_matrices=False)
        keep = sigma >= 1e-7 * sigma[0]
        u, sigma, v = u[:, keep], sigma[keep], vt[keep].T
        a_tilde = u.T @ y @ v / sigma
        eigenvalues, w = np.linalg.eig(a_tilde)
        k = int(np.argmin(np.abs(eigenvalues - 1)))
        scores = np.abs(y @ (v / sigma) @ w[:, k] / eigenvalues[k])
    seconds = time.perf_counter() - start
    np.save(meta[f"out_{method}"], scores)
    peak_mb = peak_resident_mb()
    print(json.dumps({"method": method, "seconds": seconds, "peak_mb": peak_mb}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=469)
    parser.add_argument("--child", choices=("gram", "dense"))
    parser.add_argument("--meta")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.meta)
        return 0
    import torch

    from allocator.data import load_dataset
    from allocator.koopman import record_window
    from allocator.models import get_model
    from allocator.pruning import Tensors, set_threads

    set_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="bench-koopman-"))
    data = Tensors.from_dataset(load_dataset("fashion-mnist"))
    torch.manual_seed(0)
    model = get_model("mnistnet").build()
    names = ["conv1.weight", "conv2.weight", "fc1.weight"]
    start = time.perf_counter()
    store = record_window(model, data, names, steps=args.steps, directory=str(folder))
    store._file.close()  # keep the file for the children
    record_seconds = time.perf_counter() - start
    meta = {"file": str(store.path), "names": names, "shapes": [list(s) for s in store.shapes],
            "out_gram": str(folder / "gram.npy"), "out_dense": str(folder / "dense.npy")}
    (folder / "meta.json").write_text(json.dumps(meta))
    matrix_mb = store.count * store.size * 4 / 2**20
    print(f"MnistNet window: {store.size} parameters x {store.count} snapshots recorded in {record_seconds:.1f} s; "
          f"the float32 snapshot matrix is {matrix_mb:.0f} MiB")
    results = {}
    for method in ("gram", "dense"):
        output = subprocess.run([sys.executable, "-m", "experiments.bench_koopman", "--child", method, "--meta",
                                 str(folder / "meta.json")], capture_output=True, text=True, check=True)
        results[method] = json.loads(output.stdout.strip().splitlines()[-1])
        print(f"  {method:<6} {results[method]['seconds']:8.2f} s   peak resident memory {results[method]['peak_mb']:8.0f} MiB")
    gram, dense = np.load(meta["out_gram"]), np.load(meta["out_dense"])
    scale = dense.max()
    print(f"  ratio dense / gram: time {results['dense']['seconds'] / results['gram']['seconds']:.2f}x, "
          f"peak memory {results['dense']['peak_mb'] / results['gram']['peak_mb']:.2f}x")
    print(f"  largest difference of the KMP scores: {np.max(np.abs(gram - dense)) / scale:.2e} of the largest score")
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
