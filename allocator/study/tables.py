"""Study results as readable text tables."""

from __future__ import annotations

import math


def format_summary(summary: dict[str, object]) -> str:
    """A validation summary (``summary.summarise``) as a table per (density, allocation) and the paired
    differences ours - uniform in percentage points."""
    lines = [f"{'density':>10}  {'allocation':<18}{'seeds':>6}{'test acc %':>12}{'± std':>8}{'ln E[B]':>10}"
             f"{'effective %':>13}"]
    for row in summary["table"]:  # type: ignore[union-attr]
        lines.append(f"{row['density']:>10g}  {row['allocation']:<18}{row['seeds']:>6}{100 * row['mean_accuracy']:>12.2f}"
                     f"{100 * row['std_accuracy']:>8.2f}{row['ln_bound']:>10.2f}"
                     + (f"{100 * row['effective_fraction']:>13.1f}" if row.get("effective_fraction") is not None
                        else f"{'-':>13}"))
    versus = summary.get("paired_ours_minus") or {"uniform": summary["paired_ours_minus_uniform"]}
    for rule, paired in versus.items():  # type: ignore[union-attr]
        if not paired:
            continue
        lines += ["", f"paired difference ours - {rule} (test accuracy, percentage points), same seeds:",
                  f"{'density':>10}{'pairs':>7}{'mean':>9}{'95 % interval':>22}{'ours wins':>11}"]
        for row in paired:
            interval = ("n/a (one pair)" if math.isnan(row["ci95_low"])
                        else f"[{100 * row['ci95_low']:+.2f}, {100 * row['ci95_high']:+.2f}]")
            lines.append(f"{row['density']:>10g}{row['pairs']:>7}{100 * row['mean_difference']:>+9.2f}{interval:>22}"
                         f"{row['ours_wins']:>7}/{row['pairs']}")
    unavailable = {(c["density"], c["allocation"]): c["unavailable"] for c in summary.get("unavailable", [])}
    if unavailable:
        lines += ["", "not in the table (the rule gives no allocation there):"]
        lines += [f"  {rule} at density {density:g}: {reason}" for (density, rule), reason in sorted(unavailable.items())]
    return "\n".join(lines)
