"""The CLI's text output: tables for ``bound``, ``solve`` and ``regions``."""

from __future__ import annotations

import math
from typing import Sequence

from allocator.bound import BoundResult
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
    lines += [
        "",
        f"  ln E[B]   = {result.ln_bound:.4f} nats",
        f"  log2 E[B] = {result.log2_bound:.4f}",
        f"  E[B]      = {result.scientific(4)}",
    ]
    return "\n".join(lines)


def format_allocation(allocation, compare: Sequence[str]) -> str:
    network = allocation.network
    budget = allocation.budget
    baselines = allocation.baselines
    shown = [name for name in compare if name in baselines and baselines[name].kept is not None]
    arch = "-".join(map(str, (network.input_width,) + network.widths))
    lines = [
        f"Allocation for {arch}: budget {budget.kept} kept of {budget.prunable_weights} prunable weights "
        f"(global density {budget.density:.6g}, sparsity {1 - budget.density:.6g}; compression "
        f"{network.compression_ratio(allocation.kept_total):.4g}x of all parameters)",
        f"objective: ln E[B] with the {allocation.rank_model.name} rank model; output layer "
        + ("included (papers' convention)" if network.include_output_layer else "excluded (theory-clean)"),
        "",
    ]
    header = f"  {'layer':<16}{'shape':>10}{'weights':>9} | {'ours kept':>9}{'density':>10}{'sparsity':>10}"
    for name in shown:
        header += f" | {name + ' kept':>{max(9, len(name) + 5)}}{'density':>10}"
    lines.append(header)
    for index, layer in enumerate(allocation.layers):
        flag = "" if layer.prunable else " (not pruned)"
        flag = " (pinned)" if layer.pinned else flag
        row = (f"  {layer.name:<16}{f'{layer.rows}x{layer.cols}':>10}{layer.weights:>9} | {layer.kept:>9}"
               f"{layer.density:>10.4g}{layer.sparsity:>10.6g}")
        for name in shown:
            kept = baselines[name].kept[index]
            row += f" | {kept:>{max(9, len(name) + 5)}}{kept / layer.weights:>10.4g}"
        lines.append(row + flag)
    total_row = (f"  {'prunable total':<16}{'':>10}{budget.prunable_weights:>9} | {allocation.kept_total:>9}"
                 f"{allocation.kept_total / budget.prunable_weights:>10.4g}{1 - allocation.kept_total / budget.prunable_weights:>10.6g}")
    for name in shown:
        kept = sum(k for k, layer in zip(baselines[name].kept, allocation.layers) if layer.prunable)
        total_row += f" | {kept:>{max(9, len(name) + 5)}}{kept / budget.prunable_weights:>10.4g}"
    lines += [total_row, "", "  ln E[B] (nats; higher is better)"]
    lines.append(f"    {'ours':<14}{allocation.ln_bound:>12.4f}")
    for name, result in baselines.items():
        if result.ln_bound is None:
            lines.append(f"    {name:<14}{'n/a':>12}  ({result.unavailable})")
        else:
            lines.append(f"    {name:<14}{result.ln_bound:>12.4f}  (ours {allocation.ln_bound - result.ln_bound:+.4f})")
    mip = allocation.mip
    lines.append("")
    if mip is not None:
        gap = "n/a" if math.isnan(mip.gap) else f"{mip.gap:.3g}"
        lines.append(
            f"  MIP: {mip.status}, relative gap {gap}, surrogate {mip.objective:.4f} nats (bound {mip.bound:.4f}); "
            f"{mip.binaries} binaries; {mip.solutions} solution(s); build {mip.build_seconds:.2f} s, "
            f"HiGHS {mip.seconds:.2f} s"
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
             f"{'bound n0=2':>14}{'(with output)':>15}"]
    for label, row in run.rows.items():
        lines.append(f"  {label:<8}{100 * row['test_accuracy']:>11.2f}{row['regions']:>9}"
                     f"{row['sampled_lower_bound']:>12} ({row['grid_resolution']}^2){row['seconds']:>8.2f}"
                     f"{row['bound_n0_2']:>14.4g}{math.exp(row['ln_bound_n0_2_with_output']):>15.4g}")
    lines.append("  the bound is E[B] for the same widths and densities with n0 = 2 (binomial rank model); 'with output' "
                 "follows the papers' convention")
    return "\n".join(lines)
