"""Data-driven objectives (rivals.md): ``distortion`` and ``guarded``, over measured per-layer distortion curves.

``D_l(k)``: the output distortion ``mean_x ||f(x) - f_{l,k}(x)||^2`` on a calibration batch when layer ``l`` alone
keeps its ``k`` largest weights (``allocator.pruning.rd.distortion_curves`` measures it; here it is only numbers, so
this module needs no torch). Between measured levels ``D_l`` is read piecewise-linearly in ``ln k`` (clamped at the
ends), so the objectives are exact at the measured levels and interpolated between them.

- ``distortion``: minimise ``sum_l D_l(k_l)`` (separable: one term per (block, level) binary in the MIP).
- ``guarded``: minimise ``sum_l D_l(k_l)`` subject to ``ln E[B](k) >= ln E[B]* - tau``, ``ln E[B]*`` the best bound
  the ``bound`` objective found at this budget and ``tau`` (nats) the guard. The MIP holds the bound's surrogate at
  its value at that answer minus ``tau`` (a guide: the surrogate is not the bound); the exact polish checks the exact
  ``ln E[B]``, every allocation below the floor losing ``GUARD_PENALTY`` per nat short, and the record says whether
  the answer meets the floor. The bound thus keeps the answer away from collapse where it bites, and the data
  decide where it is flat (above the saturation density every allocation meets the floor).

Both evaluators have the interface of ``ExactObjective`` (``of_kept``, ``of_units``, ``expected_rank``; higher is
better: the negated distortion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from allocator.errors import InvalidInputError
from allocator.formulation.objective import ExactObjective
from allocator.formulation.problem import AllocationProblem

#: The guard's default width in nats, the smallest of the study's (experiments/results/guard-tau-mlp-2x100:
#: 784-100-100-10 on Fashion-MNIST, 10 paired seeds, guards 0.1, 1, 3, 10 and 30 nats at densities 0.01, 0.0025 and
#: 0.001): test accuracy fell as the guard widened from 1 nat on, and no guard was better than the bound objective
#: (at 0.01 and 0.0025 every guard lost to it, 0.1 nats by 5.35 and 1.99 pp; at 0.001 all within noise). The narrowest guard loses least; the bound
#: objective itself remains the recommendation there.
DEFAULT_GUARD_NATS = 0.1
#: Objective units lost per nat an allocation falls below the guard's floor (the exact polish's penalty).
GUARD_PENALTY = 1e6


@dataclass(frozen=True)
class DistortionCurves:
    """``layers[name] = (kept levels, distortions)``: ascending kept counts of that layer and ``D`` at each.

    ``calibration_size`` / ``seed``: the batch the curves were measured on (recorded with every answer)."""

    layers: Mapping[str, tuple[tuple[int, ...], tuple[float, ...]]]
    calibration_size: int
    seed: int = 0
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name, (levels, values) in self.layers.items():
            if len(levels) != len(values) or not levels or list(levels) != sorted(set(levels)) or levels[0] < 1:
                raise InvalidInputError(f"distortion curve of {name}: {len(levels)} levels for {len(values)} values; "
                                        f"expected ascending distinct kept counts >= 1, one value each")
            if any(not math.isfinite(v) or v < 0 for v in values):
                raise InvalidInputError(f"distortion curve of {name} has a value outside [0, inf): {values}")

    def at(self, name: str, kept: int) -> float:
        """``D_name(kept)``, piecewise-linear in ``ln kept`` between measured levels (``kept = 0`` reads level 1)."""
        levels, values = self.layers[name]
        return float(np.interp(math.log(max(1, kept)), np.log(levels), values))

    def to_json(self) -> dict[str, object]:
        return {"calibration_size": self.calibration_size, "seed": self.seed, "source": self.source,
                "layers": {n: {"kept": list(k), "distortion": list(v)} for n, (k, v) in self.layers.items()}}

    @classmethod
    def from_json(cls, document: Mapping[str, object]) -> "DistortionCurves":
        layers = {n: (tuple(int(k) for k in c["kept"]), tuple(float(v) for v in c["distortion"]))  # type: ignore[index]
                  for n, c in document["layers"].items()}  # type: ignore[union-attr]
        return cls(layers, int(document["calibration_size"]), int(document.get("seed", 0)),  # type: ignore[arg-type]
                   str(document.get("source", "")))


class DistortionObjective:
    """``-sum_l D_l(k_l)`` over the prunable layers (module docstring), less ``GUARD_PENALTY`` per nat the exact
    ``ln E[B]`` falls below ``ln_floor`` when guarded."""

    def __init__(self, problem: AllocationProblem, curves: DistortionCurves, bound: ExactObjective,
                 ln_floor: float | None = None, surrogate_floor: float | None = None) -> None:
        network = problem.network
        missing = [name for name, p in zip(network.names, network.prunable) if p and name not in curves.layers]
        if missing:
            raise InvalidInputError(f"distortion curves cover {', '.join(curves.layers) or 'no layer'}; missing the "
                                    f"prunable layer(s) {', '.join(missing)}")
        self.problem, self.curves, self.bound = problem, curves, bound
        self.ln_floor, self.surrogate_floor = ln_floor, surrogate_floor
        self._names = [(i, name) for i, (name, p) in enumerate(zip(network.names, network.prunable)) if p]
        self.evaluations = 0
        self.cache = bound.cache

    def distortion(self, kept: Sequence[int]) -> float:
        """``sum_l D_l(kept_l)`` over the prunable layers."""
        return sum(self.curves.at(name, kept[i]) for i, name in self._names)

    def of_kept(self, kept: Sequence[int]) -> float:
        self.evaluations += 1
        value = -self.distortion(kept)
        if self.ln_floor is not None:
            short = self.ln_floor - self.bound.of_kept(kept)
            if short > 0:
                value -= GUARD_PENALTY * short
        return value

    def of_units(self, units: Sequence[int]) -> float:
        return self.of_kept(self.problem.kept_per_layer(units))

    def expected_rank(self, layer: int, kept: int) -> float:
        return self.bound.expected_rank(layer, kept)

    def law(self, layer: int, kept: int):
        return self.bound.law(layer, kept)

    def mip_terms(self, menus: Sequence[Sequence[int]], level_kept: Mapping[tuple[int, int], Sequence[int]]
                  ) -> dict[tuple[int, int], float]:
        """The MIP's objective coefficient of every (block, level): ``-sum`` of its members' distortions."""
        names = self.problem.network.names
        return {(b, v): -sum(self.curves.at(names[m], k) for m, k in zip(self.problem.blocks[b].members, kept))
                for (b, v), kept in level_kept.items()}
