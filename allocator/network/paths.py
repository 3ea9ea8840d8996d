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
    if any(not 0 <= int(count) <= rows * cols for (rows, cols), count in zip(shapes, kept)):
        raise ValueError(f"kept counts {list(kept)} do not fit the shapes {list(shapes)}")
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


def _unit_graph(masks: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer, the adjacency between its input and output *units* and the kept weights behind each edge: a conv
    kernel ``(O, I, kh, kw)`` joins channels (an edge where any tap is kept), a linear layer right after a conv joins
    the conv's channels to its outputs (its inputs are the channel-major flattening, ``in / O_prev`` per channel)."""
    adjacency, counts = [], []
    previous_channels = None
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim == 4:
            weight_counts = mask.reshape(mask.shape[0], mask.shape[1], -1).sum(axis=2)
            previous_channels = mask.shape[0]
        elif mask.ndim == 2 and previous_channels is not None and mask.shape[1] != previous_channels:
            if mask.shape[1] % previous_channels:
                raise ValueError(f"a linear layer of {mask.shape[1]} inputs after {previous_channels} channels")
            weight_counts = mask.reshape(mask.shape[0], previous_channels, -1).sum(axis=2)
            previous_channels = None
        else:
            weight_counts = mask.astype(np.int64)
            previous_channels = None
        adjacency.append(weight_counts > 0)
        counts.append(weight_counts)
    return adjacency, counts


def effective_counts_sequential(masks: Sequence[np.ndarray]) -> list[int]:
    """Effective kept weights of a sequential CNN (convs, pools, flatten, linear layers; no skips) at channel level:
    a kept conv tap counts when its input channel is reached and its output channel reaches the output, through the
    channel graph of the kernels (pooling keeps channels; the flatten maps each linear input to its channel). An
    upper estimate of the exact count: it ignores that a tap may join positions no path uses. On a linear chain it
    equals ``effective_counts``.

    Example (a conv whose second output channel feeds nothing, then a linear layer on 2 channels x 2 positions):
        >>> conv = np.ones((2, 1, 3, 3), bool)
        >>> fc = np.array([[1, 1, 0, 0]], bool)                 # only channel 0's positions are read
        >>> effective_counts_sequential([conv, fc])
        [9, 2]
    """
    adjacency, counts = _unit_graph(masks)
    reached, reaching = reachability(adjacency)
    return [int((count * (reaching[l + 1][:, None] & reached[l][None, :])).sum()) for l, count in enumerate(counts)]
