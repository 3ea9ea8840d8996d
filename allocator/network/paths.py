"""Input-to-output paths through a chain of masked matrices: which kept weights are *effective* (lie on some path of
kept weights from an input to an output; biases ignored), and the expected effective count under random masks.

For masks ``M_1 .. M_L`` (``M_l`` of shape ``n_l x n_{l-1}``, true = kept): an input unit ``i`` of layer ``l`` is
*reached* when a path of kept weights leads to it from an input (every input is reached); an output unit ``j``
*reaches* when a path leads from it to an output (every output of the last layer does). ``M_l[j, i]`` is effective
when ``i`` is reached and ``j`` reaches.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def reachability(masks: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer boundary ``0..L``: the units reached from the inputs and the units that reach the outputs."""
    reached = [np.ones(masks[0].shape[1], dtype=bool)]
    for mask in masks:
        reached.append((mask & reached[-1][None, :]).any(axis=1))
    reaching = [np.ones(masks[-1].shape[0], dtype=bool)]
    for mask in reversed(masks):
        reaching.insert(0, (mask & reaching[0][:, None]).any(axis=0))
    return reached, reaching


def effective_counts(masks: Sequence[np.ndarray]) -> list[int]:
    """Effective kept weights per matrix (module docstring).

    Example:
        >>> m1 = np.array([[1, 0], [0, 0], [0, 1]], bool)   # 2 inputs -> 3 units
        >>> m2 = np.array([[1, 1, 0]], bool)                # only units 0 and 1 feed the output
        >>> effective_counts([m1, m2])                      # unit 2's weight is dead; unit 1 is not reached
        [1, 1]
    """
    masks = [np.asarray(mask, dtype=bool) for mask in masks]
    reached, reaching = reachability(masks)
    return [int((mask & reaching[l + 1][:, None] & reached[l][None, :]).sum()) for l, mask in enumerate(masks)]


#: Beyond this many weights in all the expectation is not computed (seconds per sample).
RANDOM_EFFECTIVE_MAX_WEIGHTS = 20_000_000


def expected_random_effective(shapes: Sequence[tuple[int, int]], kept: Sequence[int], samples: int = 16,
                              seed: int = 0) -> list[float] | None:
    """The mean effective count per matrix when each keeps ``kept[l]`` weights chosen uniformly at random
    (``samples`` draws, ``seed``): what the counts alone leave on paths, before any criterion chooses the weights.
    ``None`` above ``RANDOM_EFFECTIVE_MAX_WEIGHTS`` weights in all.

    Example (one kept weight per layer in 2 x 2 matrices: it lies on a path only if the two meet):
        >>> [round(v, 1) for v in expected_random_effective([(2, 2), (2, 2)], [1, 1], samples=4000)]
        [0.5, 0.5]
    """
    if sum(rows * cols for rows, cols in shapes) > RANDOM_EFFECTIVE_MAX_WEIGHTS:
        return None
    rng = np.random.default_rng(seed)
    totals = np.zeros(len(shapes))
    for _ in range(samples):
        masks = []
        for (rows, cols), count in zip(shapes, kept):
            flat = np.zeros(rows * cols, dtype=bool)
            flat[rng.choice(rows * cols, size=int(count), replace=False)] = True
            masks.append(flat.reshape(rows, cols))
        totals += effective_counts(masks)
    return [float(v) for v in totals / samples]
