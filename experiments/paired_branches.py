"""Compare two branches of one run, iteration by iteration, over the iterations they do not share.

A branch is a copy of a run directory resumed with a changed key (``--set lr=...``). Both branches
start from the same checkpoint and draw the same training tasks each iteration (the tasks come from
the agent's seeded task RNG, not from the weights), so the iterations after the branch point are
paired: their difference is the effect of the change plus rollout noise, without task-to-task
variation. This prints, for each logged metric asked for, the two branch means and the paired mean
difference with a 95% t-interval, and the evaluations both branches logged on the same step.

    python experiments/paired_branches.py RUN_A RUN_B --after 110

Used for issue 20's step-size test on RL² ML10 (``experiments/results/ml10_notes.md``).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
from scipy import stats

from metarl.evaluation.report import paired

METRICS = ("train/success", "train/return", "train/approx_kl", "train/clip_frac", "train/entropy",
           "train/explained_variance", "eval/metaworld/success")


def read_rows(run: Path) -> dict[int, dict[str, str]]:
    with (run / "progress.csv").open(newline="") as f:
        return {int(row["time/iteration"]): row for row in csv.DictReader(f)}


def interval(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean of b - a and its 95% t-interval (nan bounds with a single pair, e.g. one shared evaluation)."""
    diffs = np.array(b) - np.array(a)
    if diffs.size < 2:
        return float(diffs.mean()), math.nan, math.nan
    d = paired(diffs)  # the mean and standard error ``metarl evaluate`` reports
    half = float(stats.t.ppf(0.975, d.tasks - 1)) * d.stderr
    return d.mean, d.mean - half, d.mean + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--after", type=int, required=True, help="the branch point: compare iterations after it")
    parser.add_argument("--metrics", nargs="*", default=list(METRICS))
    args = parser.parse_args()
    for run in (args.run_a, args.run_b):
        if not (run / "progress.csv").is_file():
            parser.error(f"{run}: no progress.csv there; give two run directories")
    rows_a, rows_b = read_rows(args.run_a), read_rows(args.run_b)
    shared = sorted(i for i in rows_a.keys() & rows_b.keys() if i > args.after)
    if not shared:
        parser.error(f"--after {args.after}: no iteration after it in both runs (A ends at {max(rows_a)}, "
                     f"B at {max(rows_b)})")
    print(f"A = {args.run_a}\nB = {args.run_b}\niterations {shared[0]}..{shared[-1]} ({len(shared)} paired)\n")
    print(f"{'metric':34s} {'A':>10s} {'B':>10s} {'B - A [95% CI]':>30s}")
    for key in args.metrics:
        pairs = [(float(rows_a[i][key]), float(rows_b[i][key])) for i in shared
                 if rows_a[i].get(key) not in (None, "") and rows_b[i].get(key) not in (None, "")]
        if not pairs:
            continue
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        mean, lo, hi = interval(a, b)
        print(f"{key:34s} {sum(a) / len(a):10.4g} {sum(b) / len(b):10.4g} "
              f"{mean:+10.4g} [{lo:+.4g}, {hi:+.4g}]  (n={len(pairs)})")


if __name__ == "__main__":
    main()
