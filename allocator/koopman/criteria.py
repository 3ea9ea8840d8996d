"""KMP and KGP: Koopman magnitude and gradient pruning scores (Redman et al. 2022), and window recording.

From the exact DMD of a window of parameter snapshots (``allocator.koopman.dmd``):
- **KMP**: the mode ``v_k`` of the eigenvalue closest to 1; score of parameter ``p`` = ``|v_k[p]|`` (the
  modulus: the mode can be complex and its scale and phase are arbitrary).
- **KGP**: the predicted per-step change at the pruning step ``t``, ``d(t) = sum_i (lambda_i - 1) lambda_i^t
  b_i v_i`` (the lambda = 1 mode drops out; for plain SGD it equals ``-lr * gradient``); score =
  ``|theta(t) * d(t)|``, the Koopman twin of the ``|w * grad|`` rule.
Both register as criteria of ``allocator.pruning`` (``kmp``, ``kgp``) and read the decomposition from
``ScoreContext.extra["koopman"]``, so they combine with any allocation (layer-wise) or a global threshold.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from allocator.errors import InvalidInputError
from allocator.koopman.dmd import DEFAULT_RTOL, DMD, exact_dmd
from allocator.koopman.snapshots import SnapshotStore
from allocator.pruning.criteria import ScoreContext, register_criterion
from allocator.pruning.tensors import tensor
from allocator.pruning.finetune.training import Tensors, TrainConfig, train


@dataclass(frozen=True)
class KoopmanScores:
    """KMP and KGP scores of one window, keyed by tensor name, and what they came from."""

    kmp: dict[str, np.ndarray]
    kgp: dict[str, np.ndarray]
    eigenvalue: complex  # the one closest to 1
    eigenvalues: np.ndarray
    rank: int
    snapshots: int
    stride: int
    step: int  # the pruning step t (0: the first snapshot of the window)

    def describe(self) -> dict[str, object]:
        return {"eigenvalue_closest_to_1": [self.eigenvalue.real, self.eigenvalue.imag], "dmd_rank": self.rank,
                "snapshots": self.snapshots, "stride": self.stride, "pruning_step": self.step,
                "largest_modulus": float(np.max(np.abs(self.eigenvalues)))}


def koopman_scores(store: SnapshotStore, dmd: DMD | None = None, *, step: int = 0, stride: int = 1,
                   rtol: float = DEFAULT_RTOL) -> KoopmanScores:
    """KMP and KGP scores of the window in ``store`` at snapshot ``step`` (default: the first)."""
    if not 0 <= step < store.count:
        raise InvalidInputError(f"pruning step {step} is outside the window of {store.count} snapshots")
    dmd = dmd or exact_dmd(store, rtol=rtol)
    index = dmd.index_closest_to_one()
    kmp = np.abs(dmd.mode(store, index))
    change = dmd.predicted_change(store, step)
    kgp = np.abs(store.row(step) * change)
    return KoopmanScores(store.split(kmp), store.split(kgp), complex(dmd.eigenvalues[index]), dmd.eigenvalues,
                         dmd.rank, store.count, stride, step)


def _flatten(model: nn.Module, names: Sequence[str]) -> np.ndarray:
    return np.concatenate([tensor(model, n).detach().double().flatten().numpy() for n in names])


def record_window(
    model: nn.Module,
    data: Tensors,
    names: Sequence[str],
    *,
    steps: int,
    config: TrainConfig | None = None,
    seed: int = 0,
    stride: int = 1,
    directory: str | None = None,
    in_memory: bool = False,
) -> SnapshotStore:
    """Snapshots of ``names`` while a copy of ``model`` trains on for ``steps`` optimiser steps.

    The first snapshot is the model as given; then one after every ``stride``-th step. ``model`` itself is
    not changed. The copy trains with ``config`` (default paper 1's recipe), seeded by ``seed``.
    """
    if steps < 2 or stride < 1:
        raise InvalidInputError(f"a window needs steps >= 2 and stride >= 1; got steps={steps}, stride={stride}")
    copy_ = copy.deepcopy(model)
    shapes = [tuple(tensor(copy_, n).shape) for n in names]
    store = SnapshotStore(names, shapes, directory=directory, in_memory=in_memory)
    store.append(_flatten(copy_, names))
    base = config or TrainConfig()
    per_epoch = -(-len(data.train_y) // base.batch_size)
    epochs = -(-steps // per_epoch)

    def after_step(step: int) -> bool:
        if step % stride == 0:
            store.append(_flatten(copy_, names))
        return step >= steps  # the window is complete: training stops here

    train(copy_, data, TrainConfig(epochs=epochs, lr=base.lr, momentum=base.momentum, nesterov=base.nesterov,
                                   weight_decay=base.weight_decay, batch_size=base.batch_size, select_on="last"),
          seed, after_step=after_step)
    return store


def _from_context(context: ScoreContext, which: str, names: Sequence[str]) -> dict[str, torch.Tensor]:
    result = context.extra.get("koopman")
    if not isinstance(result, KoopmanScores):
        raise InvalidInputError(
            f"the {which} criterion needs a Koopman decomposition: record a window of snapshots "
            f"(allocator.koopman.record_window) and pass koopman_scores(...) as ScoreContext.extra['koopman']"
        )
    table = result.kmp if which == "kmp" else result.kgp
    missing = [n for n in names if n not in table]
    if missing:
        raise InvalidInputError(f"the Koopman window holds no snapshots of {', '.join(missing)}")
    return {n: torch.from_numpy(np.ascontiguousarray(table[n], dtype=np.float64)) for n in names}


@register_criterion("kmp")
def kmp_scores(model: nn.Module, names: Sequence[str], context: ScoreContext) -> dict[str, torch.Tensor]:
    return _from_context(context, "kmp", names)


@register_criterion("kgp")
def kgp_scores(model: nn.Module, names: Sequence[str], context: ScoreContext) -> dict[str, torch.Tensor]:
    return _from_context(context, "kgp", names)
