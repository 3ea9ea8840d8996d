"""Paper 2's Koopman studies pooled over seeds, with intervals (issue 14, item 6), from ``experiments.koopman_study``.

Run: ``.venv/bin/python -m experiments.koopman_report [--out experiments/results/koopman-REPORT.md] [BASE ...]``
with the seed-0 folders (default: every ``experiments/results/koopman-*`` folder without ``-seed`` in its name); a
base folder's other seeds are ``BASE-seedN``. Per (model, data set), over the seeds present:

- converged: accuracy of KMP and global magnitude (GMP) right after pruning and after fine-tuning, their paired
  difference, and the kept-set overlap, each as a mean with its 95 % Student-t interval over seeds;
- pre-convergence: the same per epoch for magnitude, KMP, gradient, KGP and the window-averaged gradient rule;
- KGP against gradient pruning, against two references: the noise floor (the gradient rule's own overlap between two
  minibatches) and the window-averaged gradient rule. Per seed the difference "overlap(KGP, gradient) - overlap(gradient
  on two minibatches)"; an interval containing 0 means KGP does not agree with gradient pruning detectably more than gradient
  pruning agrees with itself.

Intervals are per cell; none is corrected for the number of cells (a description, not a test of a claim).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Sequence

from allocator.io_utils import atomic_write_text
from allocator.study.statistics import paired_interval

RESULTS = Path("experiments/results")


def seed_documents(base: Path) -> list[dict]:
    """The base folder's results and those of ``BASE-seedN``, in seed order."""
    documents = []
    seeds = [p for p in base.parent.glob(base.name + "-seed*") if re.fullmatch(re.escape(base.name) + r"-seed\d+", p.name)]
    for folder in [base] + sorted(seeds):
        path = folder / "results.json"
        if path.is_file():
            documents.append(json.loads(path.read_text()))
    return sorted(documents, key=lambda d: d["config"]["seed"])


def _ci(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    mean, low, high = paired_interval(list(values))
    if math.isnan(low):
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"


def _rows(document: dict, study: str) -> dict[tuple, dict]:
    key = "compression" if study == "converged" else "epoch"
    return {(r[key], r["criterion"]): r for r in document["rows"] if r["study"] == study}


def section(documents: list[dict]) -> list[str]:
    first = documents[0]
    seeds = [d["config"]["seed"] for d in documents]
    lines = [f"## {first['config']['model']} on {first['dataset']['name']}", "",
             f"Seeds {seeds} ({len(seeds)}); dense test accuracy {_ci([d['dense_test_accuracy'] for d in documents])} %; "
             f"pruned tensors {', '.join(first['pruned_tensors'])}; window {first['window_steps']} steps. Mean [95 % "
             "interval over seeds]; accuracies in %, overlaps as fractions of the kept set.", "",
             "### Converged: KMP against global magnitude (GMP)", "",
             "| compression | GMP pruned | KMP pruned | KMP - GMP pruned (pp) | GMP tuned | KMP tuned | KMP - GMP tuned "
             "(pp) | kept-set overlap |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    converged = [_rows(d, "converged") for d in documents]
    for compression in sorted({c for rows in converged for c, _ in rows}):
        both = [(rows[(compression, "magnitude")], rows[(compression, "kmp")]) for rows in converged
                if (compression, "magnitude") in rows and (compression, "kmp") in rows]
        lines.append(f"| {compression:g} | {_ci([g['accuracy_pruned'] for g, _ in both])} | "
                     f"{_ci([k['accuracy_pruned'] for _, k in both])} | "
                     f"{_ci([k['accuracy_pruned'] - g['accuracy_pruned'] for g, k in both])} | "
                     f"{_ci([g['accuracy_finetuned'] for g, _ in both])} | {_ci([k['accuracy_finetuned'] for _, k in both])} | "
                     f"{_ci([k['accuracy_finetuned'] - g['accuracy_finetuned'] for g, k in both])} | "
                     f"{_ci([g['overlap_kmp_gmp'] for g, _ in both], 1.0, 4)} |")
    early = [_rows(d, "pre-convergence") for d in documents]
    epochs = sorted({e for rows in early for e, _ in rows})
    if not epochs:
        return lines
    criteria = ("magnitude", "kmp", "gradient", "kgp", "gradient-window")
    lines += ["", f"### Pre-convergence at compression {documents[0]['rows'][-1]['compression']:g}", "",
              "| epoch | criterion | seeds | pruned | tuned | overlap with the converged GMP mask |",
              "| --- | --- | --- | --- | --- | --- |"]
    for epoch in epochs:
        for criterion in criteria:
            rows = [r[(epoch, criterion)] for r in early if (epoch, criterion) in r]
            if rows:
                lines.append(f"| {epoch} | {criterion} | {len(rows)} | {_ci([r['accuracy_pruned'] for r in rows])} | "
                             f"{_ci([r['accuracy_finetuned'] for r in rows])} | "
                             f"{_ci([r['overlap_with_converged_gmp'] for r in rows], 1.0, 4)} |")
    lines += ["", "### KGP against gradient pruning, the noise floor and the window-averaged gradient", "",
              "| epoch | seeds | KGP & gradient | gradient, two minibatches (noise floor) | KGP&gradient - floor | "
              "KGP & window gradient | gradient & window gradient | KGP - gradient tuned (pp) | KGP - window gradient "
              "tuned (pp) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for epoch in epochs:
        rows = [r for r in early if (epoch, "kgp") in r and (epoch, "gradient") in r]
        kgp = [r[(epoch, "kgp")] for r in rows]
        floor = [k.get("overlap_gradient_two_batches") for k in kgp]
        with_floor = [k for k, f in zip(kgp, floor) if f is not None]
        tuned_window = [r[(epoch, "kgp")]["accuracy_finetuned"] - r[(epoch, "gradient-window")]["accuracy_finetuned"]
                        for r in rows if (epoch, "gradient-window") in r]
        lines.append(
            f"| {epoch} | {len(rows)} | {_ci([k['overlap_kgp_gradient'] for k in kgp], 1.0, 4)} | "
            f"{_ci(floor, 1.0, 4)} | {_ci([k['overlap_kgp_gradient'] - k['overlap_gradient_two_batches'] for k in with_floor], 1.0, 4)} | "
            f"{_ci([k.get('overlap_kgp_window_gradient') for k in kgp], 1.0, 4)} | "
            f"{_ci([k.get('overlap_gradient_window_gradient') for k in kgp], 1.0, 4)} | "
            f"{_ci([r[(epoch, 'kgp')]['accuracy_finetuned'] - r[(epoch, 'gradient')]['accuracy_finetuned'] for r in rows])} | "
            f"{_ci(tuned_window)} |")
    missing = [d["config"]["seed"] for d in documents if not any("overlap_gradient_two_batches" in r for r in d["rows"])]
    if missing:
        lines += ["", f"Seeds {missing} were run before the noise floor and the window-averaged rule were recorded: "
                  "their rows are left out of those columns."]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bases", nargs="*")
    parser.add_argument("--out", default=str(RESULTS / "koopman-REPORT.md"))
    args = parser.parse_args(argv)
    bases = [Path(b) for b in args.bases] or sorted(p for p in RESULTS.glob("koopman-*") if p.is_dir()
                                                    and "-seed" not in p.name and not p.name.endswith("-smoke"))
    groups = [docs for docs in (seed_documents(b) for b in bases) if docs]
    if not groups:
        raise SystemExit("no results.json under " + ", ".join(map(str, bases)) + ": run experiments.koopman_study")
    lines = ["# Koopman pruning (paper 2) over seeds", "",
             "Generated by `python -m experiments.koopman_report` from the `results.json` of `experiments.koopman_study` "
             "runs (`--seed 0`, `--seed 1`, ...). Module docstring: what each column is. A one-seed row has no interval.", ""]
    for documents in groups:
        lines += section(documents) + [""]
    atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
    print("\n".join(lines[:30]))
    return 0


if __name__ == "__main__":
    from experiments.entry import run_main

    raise SystemExit(run_main(main))
