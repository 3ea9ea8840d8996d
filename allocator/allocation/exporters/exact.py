"""The sparsity to write for a layer so that every consumer realises exactly the allocated kept count.

A tool that is told "prune the fraction ``s`` of a tensor of ``n`` weights" computes the number to prune as one of

- ``round(n * s)`` (torch.nn.utils.prune with a float amount, SparseML, torch.ao.pruning's WeightNormSparsifier),
- ``int(n * s)`` = ``floor(n * s)`` (NNI, llm-compressor, RigL),
- ``max(1, round(n * (1 - s)))`` weights kept, in float32 (JaxPruner's top-k mask),

in IEEE double arithmetic. With the plain double ``s = 1 - k / n`` the product ``n * s`` may land just below the
integer ``n - k`` (for n = 1000, k = 66: 933.9999999999999), so truncating tools keep one weight too many. The rule
here (``../shared/spec/interop.md``): start from the double nearest to ``(n - k) / n`` and step up with
``math.nextafter(s, 1.0)`` until ``int(n * s) == n - k``. The computed ``n * s`` is
``(n - k)(1 + d)`` with ``|d| <= 2^-52``, so below 2^52 weights it is ``n - k`` or the double just under it, and one
step up fixes the latter: one step sufficed in every case measured (all ``k`` for ``n <= 2000``, and 20,000 random
``(n, k)`` per octave up to 2^39), and the result still rounds to ``n - k``. ``exact_sparsity`` checks both and
raises rather than return a sparsity that some tool would read differently.
"""

from __future__ import annotations

import math

import numpy as np

#: The most nextafter steps tried before giving up (a tensor of more than 2^52 weights would need more).
MAX_STEPS = 64


def exact_sparsity(weights: int, kept: int) -> float:
    """The double ``s`` (fraction pruned) with ``int(weights * s) == round(weights * s) == weights - kept``.

    ``kept == weights`` gives 0.0 and ``kept == 0`` gives 1.0 exactly.
    """
    if not (isinstance(weights, int) and isinstance(kept, int)) or weights < 1 or not 0 <= kept <= weights:
        raise ValueError(f"kept {kept!r} of {weights!r} weights: accepted 0 <= kept <= weights, weights >= 1")
    pruned = weights - kept
    sparsity = pruned / weights
    for _ in range(MAX_STEPS):
        if int(weights * sparsity) == pruned:
            break
        sparsity = math.nextafter(sparsity, 1.0)
    else:  # pragma: no cover - only for tensors beyond 2^52 weights
        raise ValueError(f"no double sparsity realises kept {kept} of {weights} weights in truncating tools")
    if round(weights * sparsity) != pruned:  # pragma: no cover - proven above; kept as a guard
        raise ValueError(f"sparsity {sparsity!r} for kept {kept} of {weights} weights does not round back")
    return sparsity


def below_one_sparsity(weights: int, kept: int) -> float:
    """``exact_sparsity``, except that a fully pruned layer gets the double just below 1 (SparseML refuses a
    sparsity of 1.0); ``round(weights * s) == weights`` still holds below 2^52 weights."""
    sparsity = exact_sparsity(weights, kept)
    if kept == 0:
        sparsity = math.nextafter(1.0, 0.0)
        if round(weights * sparsity) != weights:  # pragma: no cover - only beyond 2^52 weights
            raise ValueError(f"no sparsity below 1 prunes all {weights} weights when rounded")
    return sparsity


def float32_kept(weights: int, sparsity: float) -> int:
    """JaxPruner's kept count (``mask_calculator``, jitted, so in float32): ``max(1, round(n * (1 - s)))``, with
    ``round`` half to even as ``jnp.round``; ``s == 0`` keeps everything."""
    s32 = np.float32(sparsity)
    if s32 == 0:
        return weights
    product = np.float32(weights) * (np.float32(1.0) - s32)
    return max(1, int(np.round(product)))


def float32_sparsity(weights: int, kept: int, max_steps: int = 256) -> float | None:
    """A float32 sparsity (returned as the double equal to it) with ``float32_kept(weights, s) == kept``, searched
    outward from the float32 nearest ``(weights - kept) / weights``; ``None`` when none within ``max_steps``
    float32 steps does (JaxPruner cannot realise ``kept``: ``kept == 0``, or a tensor too large for float32)."""
    if kept == weights:
        return 0.0
    start = np.float32(exact_sparsity(weights, kept))
    up, down = start, start
    for _ in range(max_steps):
        for candidate in (up, down):
            if 0 < candidate <= 1 and float32_kept(weights, float(candidate)) == kept:
                return float(candidate)
        up = np.nextafter(up, np.float32(2.0), dtype=np.float32)
        down = np.nextafter(down, np.float32(0.0), dtype=np.float32)
    return None
