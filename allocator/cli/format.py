"""The CLI's text output: tables for ``bound``, ``solve`` and ``regions``."""

from __future__ import annotations

import math
from typing import Sequence

from allocator.bound import BoundResult
from allocator.bound.engine import bound_convention
from allocator.network import Network


def format_bound(result: BoundResult, network: Network) -> str:
    model = result.rank_model + (f" {result.rank_model_options}" if result.rank_model_options else "")
    output_rule = (
        "included as a last factor (papers' convention; it has no ReLU)"
        if result.include_output_layer
        else "excluded (theory-clean bound)"
    )
    lines = [
        "Expected upper bound E[B] on the number of linear regions of the pruned ReLU network",
        f"  network      n0={result.input_width}, widths {'-'.join(map(str, result.widths))}",
        f"  convention   {result.bound_convention}",
        f"  rank model   {model}",
        f"  output layer {output_rule}",
        f"  arithmetic   {'exact (rational)' if result.exact_value is not None else 'float64 log space'}",
        "",
        f"  {'layer':<14}{'shape':>11}{'weights':>10}{'density':>11}{'sparsity':>11}{'E[kept]':>11}"
        f"{'E[rank]':>9}{'in bound':>10}",
    ]
    for layer in result.layers:
        shape = f"{layer.rows}x{layer.cols}"
        rank = "-" if layer.expected_rank is None else f"{layer.expected_rank:.2f}"
        lines.append(
            f"  {layer.name:<14}{shape:>11}{layer.weights:>10}{layer.density:>11.6g}{1 - layer.density:>11.6g}"
            f"{layer.expected_kept:>11.1f}{rank:>9}{'yes' if layer.in_bound else 'no':>10}"
        )
    prunable = network.prunable_weights
    kept = sum(layer.expected_kept for layer, p in zip(result.layers, network.prunable) if p)
    if prunable:
        lines.append(
            f"  prunable weights: {prunable}; expected kept {kept:.1f} "
            f"(global density {kept / prunable:.6g} of the prunable weights)"
        )
    if result.structural_samples is not None:
        lines.append(f"  structural rank laws from {result.structural_samples} sampled masks per layer")
    if result.standard_error_nats is not None:
        lines.append(f"  Monte-Carlo standard error of ln E[B]: {result.standard_error_nats:.4f} nats (bootstrap over the "
                     f"masks; allocator.bound.uncertainty says how it compares with the spread over seeds)")
    lines += [
        "",
        f"  ln E[B]   = {result.ln_bound:.4f} nats",
        f"  log2 E[B] = {result.log2_bound:.4f}",
        f"  E[B]      = {result.scientific(4)}",
    ]
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]], align: str, groups: Sequence[int]) -> list[str]:
    """Rows of cells as text lines: each column as wide as its widest cell (``align``: ``<`` or ``>`` per column),
    one space between columns, `` | `` before each column index in ``groups``."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = []
    for row in rows:
        parts = []
        for c, (cell, width) in enumerate(zip(row, widths)):
            separator = "" if c == 0 else (" | " if c in groups else " ")
            parts.append(separator + (cell.ljust(width) if align[c] == "<" else cell.rjust(width)))
        lines.append("  " + "".join(parts).rstrip())
    return lines


def _flops(allocation, kept: Sequence[int]) -> float:
    network = allocation.network
    return sum(f * k for f, k, p in zip(network.flops_per_weight, kept, network.prunable) if p)


def _data_objective_line(allocation) -> str:
    o = allocation.objective
    text = (f"objective: {o['name']}: minimise the output distortion, sum over layers of D_l (measured on "
            f"{o['calibration_size']} calibration images, {o.get('source') or 'given weights'}); ours "
            f"{float(o['distortion']):.6g}")
    if "ln_floor" in o:
        text += (f", subject to ln E[B] >= {float(o['ln_floor']):.4f} nats (the bound's best "
                 f"{float(o['bound_optimum']):.4f} less {float(o['guard_nats']):g}): "
                 + ("met" if o.get("guard_met") else "NOT met"))
    return text


def _random_effective(allocation) -> list[float] | None:
    """Chains: the mean kept weights per layer on input-to-output paths if the kept weights were chosen at random
    (``allocator.network.paths.expected_random_effective``, 16 draws); ``None`` for a CNN or a very large chain."""
    from allocator.network.paths import expected_random_effective

    network = allocation.network
    if not network.is_chain:
        return None
    return expected_random_effective(network.shapes, allocation.kept)


def format_allocation(allocation, compare: Sequence[str]) -> str:
    """The allocation as a per-layer table beside the baselines in ``compare``, then every baseline's ``ln E[B]``,
    the MIP's report, the status and the certificate."""
    network = allocation.network
    budget = allocation.budget
    baselines = allocation.baselines
    shown = [name for name in compare if name in baselines and baselines[name].kept is not None]
    arch = ("-".join(map(str, (network.input_width,) + network.widths)) if network.is_chain else
            f"a CNN with n0 = {network.input_width} ({len(network.bound_program)} program steps)")
    lines = [
        f"Allocation for {arch}: budget {budget.kept} kept of {budget.prunable_weights} prunable weights "
        f"(global density {budget.density:.6g}, sparsity {1 - budget.density:.6g}; compression "
        f"{network.compression_ratio(allocation.kept_total):.4g}x of all parameters)",
        (f"objective: ln E[B] with the {allocation.rank_model.name} rank model; output layer " if allocation.objective
         is None else _data_objective_line(allocation) + f"; ln E[B] with the {allocation.rank_model.name} rank model, "
         f"output layer ")
        + ("included (papers' convention)" if network.include_output_layer else "excluded (theory-clean)"),
        f"bound convention: {bound_convention(network)}",
    ]
    if allocation.floors:
        values = sorted(set(round(v, 6) for v in allocation.floors.values()))
        lines.append(f"conv floors: {len(allocation.floors)} convs kept at density >= "
                     f"{values[0]:.4g}{'..' + format(values[-1], '.4g') if len(values) > 1 else ''} (the budget's "
                     f"uniform share, rounded down to whole weights; --conv-floor none lifts them): the bound is blind "
                     f"to conv pruning above about 0.01 and would strip them")
    saturation = allocation.saturation_density
    if saturation is not None and allocation.objective is not None:  # a data objective: the bound only guards it
        state = "saturated here" if budget.density >= saturation else "not saturated here"
        lines.append(f"saturation density {saturation:.4g} (above it uniform reaches the dense bound): the bound is "
                     f"{state}" + (", so its guard leaves the data objective almost free" if budget.density >= saturation
                                   else ", so its guard can bind"))
    elif saturation is not None:
        if budget.density >= saturation:
            lines.append(f"the bound is saturated: at global densities >= {saturation:.4g} uniform already reaches the "
                         f"dense bound, so the bound has no opinion here and the answer is the tie-break towards uniform")
        else:
            lines.append(f"saturation density {saturation:.4g} (above it uniform reaches the dense bound and the bound "
                         f"has no opinion)")
    lines.append("")
    sees = allocation.bound_drop_nats is not None
    effective = _random_effective(allocation)
    header = (["layer", "shape", "weights", "ours kept", "density", "sparsity"] + (["bound sees"] if sees else [])
              + (["on paths if random"] if effective else []))
    for name in shown:
        header += [f"{name} kept", "density"]
    rows = [header]
    flags = [""]
    for index, layer in enumerate(allocation.layers):
        flags.append(" (pinned)" if layer.pinned else ("" if layer.prunable else " (not pruned)"))
        row = [layer.name, f"{layer.rows}x{layer.cols}", str(layer.weights), str(layer.kept), f"{layer.density:.4g}",
               f"{layer.sparsity:.6g}"]
        if sees:
            drop = allocation.bound_drop_nats[index]
            row.append("-" if drop is None else "n/a (time)" if math.isnan(drop) else
                       (f"yes ({drop:.3g})" if allocation.bound_sees(index) else "no"))
        if effective:
            row.append(f"{100 * effective[index] / layer.kept:.1f} %" if layer.kept else "-")
        for name in shown:
            kept = baselines[name].kept[index]
            row += [str(kept), f"{kept / layer.weights:.4g}"]
        rows.append(row)
    total = ["prunable total", "", str(budget.prunable_weights), str(allocation.kept_total),
             f"{allocation.kept_total / budget.prunable_weights:.4g}",
             f"{1 - allocation.kept_total / budget.prunable_weights:.6g}"] + ([""] if sees else []) + (
                 [""] if effective else [])
    for name in shown:
        kept = sum(k for k, layer in zip(baselines[name].kept, allocation.layers) if layer.prunable)
        total += [str(kept), f"{kept / budget.prunable_weights:.4g}"]
    rows.append(total)
    flags.append("")
    groups = [3] + [6 + sees + bool(effective) + 2 * i for i in range(len(shown))]
    lines += [line + flag for line, flag in zip(_table(rows, "<>>" + ">" * (len(header) - 3), groups), flags)]
    if sees:
        lines.append("  bound sees: whether halving the layer's kept count lowers ln E[B] (by how many nats); 'no': the "
                     "bound is blind to this layer at this budget")
    if effective:
        lines.append("  on paths if random: of the layer's kept weights, the share on some input-to-output path of kept "
                     "weights when they are drawn at random (mean of 16 draws); a criterion's choice differs, see "
                     "validate's 'effective %'")
    cap = allocation.constraints.flops_budget
    if cap is not None:
        used = _flops(allocation, allocation.kept)
        binds = allocation.kept_total < budget.kept
        lines += ["", f"  FLOPs: ours {used:.6g} of the {cap:.6g} multiply-adds allowed per example"
                  + (f"; the FLOPs cap binds: ours keeps {allocation.kept_total} of the {budget.kept} weights the "
                     f"budget allows" if binds else "")]
    lines += ["", "  ln E[B] (nats; higher is better; every baseline under the same budget and constraints)",
              f"    {'ours':<14}{allocation.ln_bound:>12.4f}"]
    for name, result in baselines.items():
        if result.ln_bound is None:
            lines.append(f"    {name:<14}{'n/a':>12}  ({result.unavailable})")
            continue
        note = f"ours {allocation.ln_bound - result.ln_bound:+.4f}"
        if result.repaired:
            note += "; repaired to the constraints"
            if result.raw_kept is not None:
                raw = "n/a" if result.raw_ln_bound is None else f"{result.raw_ln_bound:.4f}"
                note += f"; raw rule: ln E[B] {raw}, kept {'/'.join(map(str, result.raw_kept))}"
        if cap is not None and _flops(allocation, result.kept) > cap + 1e-9:
            note += f"; breaks the FLOPs cap: {_flops(allocation, result.kept):.6g} > {cap:.6g} multiply-adds"
        lines.append(f"    {name:<14}{result.ln_bound:>12.4f}  ({note})")
    mip = allocation.mip
    lines.append("")
    if mip is not None:
        def number(value: float, digits: str) -> str:
            return "n/a" if math.isnan(value) else format(value, digits)

        what = ("surrogate", " nats") if allocation.objective is None else ("negated distortion", "")
        lines.append(
            f"  MIP: {mip.status}, relative gap {number(mip.gap, '.3g')}, {what[0]} {number(mip.objective, '.4f')}"
            f"{what[1]} (bound {number(mip.bound, '.4f')}); {mip.binaries} binaries; {mip.solutions} solution(s); "
            f"build {mip.build_seconds:.2f} s, HiGHS {mip.seconds:.2f} s"
        )
    lines.append(f"  status: {allocation.status}; total time {allocation.solve_seconds:.2f} s")
    lines.append(f"  certificate: {allocation.certificate}")
    return "\n".join(lines)


def format_regions(run) -> str:
    """The region counts of a ``study.regions.RegionsRun`` as a table."""
    request = run.request
    lines = [f"Linear regions of {request.model} on the plane through {request.dataset} test images "
             f"{list(request.points)} (inside the box of valid pixel values; hidden layers counted exactly by "
             f"polygon splitting)",
             f"  {'model':<8}{'test acc %':>11}{'regions':>9}{'grid lower bound':>18}{'time s':>8}"
             f"{'lines':>7}{'plane bound':>13}"]
    for label, row in run.rows.items():
        lines.append(f"  {label:<8}{100 * row['test_accuracy']:>11.2f}{row['regions']:>9}"
                     f"{row['sampled_lower_bound']:>12} ({row['grid_resolution']}^2){row['seconds']:>8.2f}"
                     f"{(row['plane_widths'] or [0])[0]:>7}{row['plane_bound']:>13.6g}")
    lines.append("  lines: first-layer neurons that vary on the plane; plane bound: Serra et al.'s rank bound for these "
                 "weights restricted to the plane (never below the count; allocator/regions/model.py:plane_bound)")
    return "\n".join(lines)
