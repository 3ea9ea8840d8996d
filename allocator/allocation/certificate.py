"""What an allocation's solve proved, in words: one sentence per step, joined into its certificate."""

from __future__ import annotations

from allocator.bound.rank import RankModel
from allocator.solver.highs import MipReport, SolverOptions, Termination


def mip_sentence(mip: MipReport, levels: int, options: SolverOptions) -> str | None:
    """What the MIP established about the surrogate over the menu (``None`` for an ending that says nothing)."""
    if mip.status == Termination.OPTIMAL:
        if mip.gap > options.mip_rel_gap:  # HiGHS also stops within its own feasibility and optimality tolerances
            return (f"MIP: the surrogate's optimum over the {levels}-level menu is proven to within relative gap "
                    f"{mip.gap:.2g} (HiGHS's numerical tolerance; {options.mip_rel_gap:g} was asked)")
        return (f"MIP: the surrogate's optimum over the {levels}-level menu is proven (relative gap "
                f"{mip.gap:.2g}, tolerance {options.mip_rel_gap:g})")
    if mip.status in (Termination.TIME_LIMIT, Termination.NO_SOLUTION):
        return (f"MIP stopped at the time limit ({options.time_limit_s:g} s) with "
                + ("no solution" if mip.status == Termination.NO_SOLUTION else f"relative gap {mip.gap:.3g}")
                + ": NOT proven optimal; this is the best allocation found")
    if mip.status == Termination.INFEASIBLE:
        return ("MIP: no combination of menu levels meets the budget and constraints; the answer starts from the "
                "constrained-uniform allocation")
    return None  # pragma: no cover - every termination is covered above


def exhaustive_sentence(points: int) -> str:
    """The exact objective was maximised over every feasible point of the menu."""
    return f"exact ln E[B] optimal over the menu by exhaustive search ({points} feasible points)"


def integer_exhaustive_sentence(points: int) -> str:
    """The exact objective was maximised over every integer allocation within the budget and constraints."""
    return f"exact ln E[B] optimal over every integer allocation by exhaustive search ({points} feasible points)"


def integer_pairing_sentence(allocations: int) -> str:
    """The exact objective was maximised over every whole-budget integer allocation by meet in the middle."""
    return (f"exact ln E[B] optimal over every integer allocation: all {allocations} that spend the whole budget "
            f"valued by meet in the middle (allocator.allocation.pairing; ln E[B] never falls with a kept count)")


def integer_optimum_sentence(ln_optimum: float, ln_ours: float) -> str:
    """The proven distance to the best allocation, from the exhaustive search over every integer allocation."""
    return (f"no allocation within the budget and constraints exceeds ln E[B] {ln_optimum:.4f} nats (exhaustive "
            f"search over every integer allocation): ours is proven within {max(0.0, ln_optimum - ln_ours):.4f} nats "
            "of the optimum")


POLISH_SENTENCE = ("exact polish: local search with the true ln E[B] (a local optimum under pairwise moves, not proven "
                   "global)")
POLISH_FROM_OPTIMUM = "exact polish and tie-break from that optimum (the tie-break stays within 1e-9 nats of it)"
FIXED_SENTENCE = "every prunable layer is pinned: nothing to decide"


def monte_carlo_sentence(model: RankModel) -> str | None:
    """The caveat of a Monte-Carlo rank model (``None`` for an exact one)."""
    if model.name != "structural":
        return None
    return (f"ln E[B] under the structural rank model is a Monte-Carlo estimate from {model.samples} masks per "
            f"layer and density (common random numbers, seed {model.seed}); the value of the chosen allocation "
            f"is biased upward by the selection, so re-evaluate it with another seed before quoting it")


def exhaustive_skipped_sentence(points: int, seconds: float) -> str:
    """The menu was small enough to search, but not in the time left."""
    return (f"exhaustive search over the menu skipped: its {points} points would take about {seconds:.0f} s, more "
            f"than the time limit leaves")


def polish_timed_out_sentence(time_limit_s: float, moves: int) -> str:
    """The time limit ended the exact polish before a local optimum."""
    return (f"the time limit ({time_limit_s:g} s) ended the exact polish after {moves} move(s): the best allocation "
            f"found so far, NOT a local optimum")


def stability_sentence(stability: dict) -> str:
    """Ours against the baselines on fresh masks, and whether the noise resolves each difference (2 SE)."""
    parts = [f"{name} {entry['advantage_nats']:+.3f} +- {entry['standard_error_nats']:.3f}"
             + ("" if entry["resolved"] else " (not resolved by the noise)")
             for name, entry in stability["against"].items()]
    return (f"on fresh masks (seed {stability['fresh_seed']}) ours - baseline, nats: " + (", ".join(parts) or "none"))


def upper_bound_sentence(ln_upper: float, ln_ours: float, multiplier: float, relaxation: str = "state-adaptive") -> str:
    """The proven distance to the best allocation over every integer allocation (ties and FLOPs relaxed);
    ``relaxation``: ``allocator.formulation.upper_bound``'s name of the relaxation that gave the bound."""
    return (f"no allocation within the budget and bounds exceeds ln E[B] {ln_upper:.4f} nats (Lagrangian bound, "
            f"{relaxation} relaxation, multiplier {multiplier:.3g}): ours is proven within "
            f"{max(0.0, ln_upper - ln_ours):.4f} nats of the optimum")


def program_sentence(without_upper_bound: bool, monotone_model: bool = True) -> str:
    """What a program's (a CNN with convs inside the bound) answer does and does not come with; ``monotone_model``:
    the rank model's laws grow with the density (else a missing certificate is the model's doing, not time's)."""
    reason = ("its time share (half the solve's time, 1 s at least, or SolverOptions.certificate_s) ended before one multiplier was evaluated; "
              "allocator.formulation.upper_bound computes it without a deadline" if monotone_model else
              "this rank model's laws are not known to grow with the density (the stratified structural estimate), "
              "or lose mass (paper_p0)")
    return ("conv rank laws are Monte-Carlo estimates (generic rank mod 2^61-1, common random numbers; a density "
            "between menu levels takes the next level up)"
            + (f"; no upper-bound certificate: {reason}" if without_upper_bound else ""))


def data_objective_sentence(details: dict, ln_bound: float) -> str:
    """What a data objective's answer is and what was checked."""
    text = (f"objective {details['name']}: measured output distortion on {details['calibration_size']} calibration "
            f"inputs (exact at the measured levels, interpolated in ln kept between them; the MIP's gap is over its "
            f"menu)")
    if "ln_floor" in details:
        met = ln_bound >= float(details["ln_floor"]) - 1e-9
        text += (f"; guard: the exact ln E[B] {ln_bound:.4f} nats {'meets' if met else 'does NOT meet'} the floor "
                 f"{float(details['ln_floor']):.4f} (the bound objective's {float(details['bound_optimum']):.4f} "
                 f"less {float(details['guard_nats']):g} nats)")
    return text
