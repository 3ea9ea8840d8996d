"""A run folder on disk: ``config.json``, cached dense models, allocation files and one JSON file per cell.

Layout: ``dense/seed<S>-<key>.pt`` (the trained dense weights, keyed by everything that determines them) and
``dense/seed<S>.json`` (its test accuracy and training time), ``allocations/<model>-d<density>.json``,
``cells/<cell id>.json``; ``results.csv``, ``summary.json`` and ``accuracy_vs_density.png`` are written from the
cells. Every file is written atomically, so an interrupted run resumes from what is there.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from allocator.allocation.file import save as save_allocation
from allocator.allocation.file import to_document
from allocator.io_utils import atomic_write_bytes, atomic_write_text
from allocator.study.config import ValidateConfig

Say = Callable[[str], None]


def file_safe(text: str) -> str:
    """A model or data-set name as a file-name part: a path becomes its file name without the extension, and every
    run of characters other than letters, digits, ``.``, ``_`` and ``-`` one ``-`` (a registered name is unchanged).

    Example:
        >>> file_safe("experiments/examples/my_mlp.py:MyMLP"), file_safe("mlp-2x100")
        ('my_mlp-MyMLP', 'mlp-2x100')
    """
    short = re.sub(r"\.(py|pt|pth|pkl|npz)\b", "", text.rsplit("/", 1)[-1])
    return re.sub(r"[^A-Za-z0-9._-]+", "-", short).strip("-") or "x"


def allocation_path(out: Path, model: str, density: float) -> Path:
    """``out/allocations/<model>-d<density>.json``, the model's name made ``file_safe`` (a model given as a path
    ``/abs/my.py:Factory`` used to write its allocation next to the model file, outside the run folder)."""
    return out / "allocations" / f"{file_safe(model)}-d{density!r}.json"


def cell_id(seed: int, density: float, rule: str, criterion: str) -> str:
    """The file stem of one cell: ``seed<S>-d<density>-<rule>-<criterion>`` (a ``:`` in a rule, as in
    ``ours-guarded:3``, written ``@``: file names stay portable)."""
    return f"seed{seed}-d{density!r}-{rule.replace(':', '@')}-{criterion}"


def read_cell(path: Path) -> dict | None:
    """A cell file's record, or ``None`` when it is unreadable or incomplete (a run killed while the disk was full,
    a file cut short by hand): such a cell counts as not done and is computed again."""
    try:
        cell = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(cell, dict) or not ("test_accuracy" in cell or "unavailable" in cell):
        return None
    return cell


def dense_key(config: ValidateConfig, seed: int) -> str:
    """Hash of what determines a seed's dense model (model, data, split, training recipe, seed)."""
    from allocator.pruning.model_source import model_digest

    fields = {"model": config.model, "dataset": config.dataset, "data_dir": config.data_dir,
              "validation": config.validation, "train": asdict(config.train), "seed": seed}
    digest = model_digest(config.model)  # a model file: an edited file is another model
    if digest is not None:
        fields["model_digest"] = digest
    if config.input_shape is not None:
        fields["input_shape"] = list(config.input_shape)
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def save_allocation_if_changed(allocation, path: Path) -> None:
    """Write the allocation file unless one with the same decision (content hash) and the same baselines is
    there: a resumed run re-solves, and only timings would change."""
    if path.is_file():
        document = to_document(allocation)
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = None  # unreadable: overwrite it
        if (isinstance(stored, dict) and stored.get("content_hash") == document["content_hash"]
                and stored.get("baselines") == json.loads(json.dumps(document["baselines"]))):
            return
    save_allocation(allocation, path)


def has_dense_checkpoint(out: Path, seed: int) -> bool:
    """Whether run folder ``out`` holds a dense checkpoint of ``seed`` (of any key): the one way an unfinished seed
    grows, since retraining does not reproduce a dense model bit for bit on another machine."""
    return any((Path(out) / "dense").glob(f"seed{seed}-*.pt"))


def dense_model(config: ValidateConfig, entry, data, out: Path, seed: int, position: str, say: Say):
    """The seed's dense model: loaded from the run folder's cache, or built with ``torch.manual_seed(seed)``,
    trained by ``config.train`` and cached. Writes ``dense/seed<S>.json``; returns ``(model, test accuracy)``.

    ``position`` (e.g. ``"2/10"``) only labels the progress line.
    """
    import torch

    from allocator.pruning.finetune.training import evaluate, train
    from allocator.study.seeds import derive_seed

    dense_path = out / "dense" / f"seed{seed}-{dense_key(config, seed)}.pt"
    torch.manual_seed(derive_seed(seed, "dense"))
    model = entry.build()
    record = out / "dense" / f"seed{seed}.json"
    train_seconds = None
    if dense_path.is_file():
        model.load_state_dict(torch.load(dense_path))
        say(f"seed {seed}: dense model loaded from {dense_path}")
        if record.is_file():  # keep the training time measured when it was trained
            train_seconds = json.loads(record.read_text()).get("train_seconds")
    else:
        say(f"seed {seed} ({position}): training the dense model, {config.train.epochs} epochs")
        started = time.perf_counter()
        train(model, data, config.train, derive_seed(seed, "dense"),
              progress=lambda e, n, r: say(f"  dense epoch {e}/{n}: train loss {r.train_loss:.4f}, "
                                           f"{config.train.select_on} acc {100 * r.select_accuracy:.2f} % ({r.seconds:.1f} s)"))
        train_seconds = time.perf_counter() - started
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        atomic_write_bytes(dense_path, buffer.getvalue())
    dense_loss, dense_accuracy = evaluate(model, data.test_x, data.test_y)
    atomic_write_text(record, json.dumps({"seed": seed, "test_accuracy": dense_accuracy, "test_loss": dense_loss,
                                          "train_seconds": train_seconds}))
    return model, dense_accuracy
