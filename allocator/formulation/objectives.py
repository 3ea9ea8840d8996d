"""The solver's objectives as a registry: a name, what it maximises, and its exact evaluator over kept counts.

An objective gives, for a validated ``AllocationProblem`` and a cache limit in bytes, an exact evaluator with ``of_kept(kept)``,
``of_units(units)`` and ``expected_rank(layer, kept)`` (the MIP's surrogate reads the last). Today one is
registered: ``bound``, the exact ``ln E[B]`` (nats) under the problem's rank model, whose MIP surrogate is the
rank-capped product form of ``allocator.formulation.objective``. Data-driven objectives register here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from allocator.registry import Registry
from allocator.formulation.objective import ExactObjective
from allocator.formulation.problem import AllocationProblem


@dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: ``exact(problem, cache_bytes)`` builds its evaluator (higher is better)."""

    name: str
    description: str
    exact: Callable[[AllocationProblem, int], ExactObjective]


_REGISTRY: Registry[ObjectiveSpec] = Registry("objective")


def register_objective(name: str, description: str, exact: Callable[[AllocationProblem, int], ExactObjective]) -> None:
    """Add an objective under ``name`` (a later registration of the same name replaces it)."""
    _REGISTRY.add(name, ObjectiveSpec(name, description, exact))


def objective_names() -> tuple[str, ...]:
    """Registered objectives, in registration order."""
    return _REGISTRY.names()


def get_objective(name: str) -> ObjectiveSpec:
    """The objective ``name``.

    Raises:
        InvalidInputError: an unknown name (the message lists the registered ones).
    """
    return _REGISTRY.get(name)


register_objective("bound", "maximise the exact ln E[B] (nats) of the pruned network under the rank model",
                   ExactObjective)


def _needs_curves(name: str) -> Callable[[AllocationProblem, int], ExactObjective]:
    def refuse(problem: AllocationProblem, cache_bytes: int) -> ExactObjective:
        from allocator.errors import InvalidInputError

        raise InvalidInputError(f"objective {name!r} needs distortion curves: allocate(..., distortion=curves), or "
                                f"allocator solve --objective {name} --model M --dataset D")

    return refuse


register_objective("distortion", "minimise the measured output distortion sum_l D_l(k_l) (allocator.formulation."
                   "distortion)", _needs_curves("distortion"))
register_objective("guarded", "minimise the measured distortion subject to ln E[B] >= the bound's best - tau "
                   "(allocator.formulation.distortion)", _needs_curves("guarded"))
