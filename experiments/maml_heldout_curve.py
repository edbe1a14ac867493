"""Held-out return after one adaptation step against training iterations, for MAML-TRPO runs.

The learning check of the MAML-TRPO reference-quality issue: a run must not get worse with more
training. For each run and each checkpoint iteration asked for, ``metarl evaluate --checkpoint``
meta-tests on the same held-out goals (same seed, so the comparison between iterations is paired
over tasks), and this script tabulates before/after-adaptation means with 95% confidence intervals
(normal approximation over tasks), the share of tasks that one step improved, and the paired
difference of the after-step return between consecutive iterations, and for every run after the
first the paired difference from the first run at the same iteration (on the same goals, so a
variant such as Meta-SGD is compared with MAML-TRPO task by task). It writes a CSV, a Markdown
table and a PNG of the curve.

    python experiments/maml_heldout_curve.py RUN [RUN ...] --iterations 50 150 300 --tasks 400 \
        --out experiments/results/maml-trpo-point-nav-reference
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def evaluate(run: Path, iteration: int, tasks: int, episodes: int, seed: int, out: Path) -> Path:
    """``metarl evaluate`` of one checkpoint; returns its curves.csv (reused when already there, also
    gzipped as committed: ``curves.csv.gz``)."""
    folder = out / f"{run.name}-iter{iteration:04d}"
    curves = folder / "curves.csv"
    if not curves.is_file() and (folder / "curves.csv.gz").is_file():
        return folder / "curves.csv.gz"
    if not curves.is_file():
        ckpt = run / "checkpoints" / f"iter_{iteration:06d}"
        cmd = [str(Path(sys.executable).with_name("metarl")), "evaluate", str(run), "--checkpoint", str(ckpt),
               "--tasks", str(tasks), "--rounds", "1", "--episodes", str(episodes), "--seed", str(seed),
               "--out", str(folder), "--no-progress"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return curves


def per_task(curves: Path) -> dict[int, np.ndarray]:
    """Round -> returns per task (ordered by task index)."""
    rows: dict[int, dict[int, float]] = defaultdict(dict)
    opener = gzip.open if curves.suffix == ".gz" else open
    with opener(curves, "rt", newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row["round"])][int(row["task"])] = float(row["return_mean"])
    return {k: np.array([v[t] for t in sorted(v)]) for k, v in rows.items()}


def ci95(x: np.ndarray) -> float:
    return 1.96 * float(x.std(ddof=1)) / math.sqrt(len(x))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--iterations", nargs="+", type=int, required=True)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    table = []
    first: dict[int, np.ndarray] = {}
    fig, ax = plt.subplots(figsize=(6, 4))
    for n, run in enumerate(args.runs):
        post_by_it: dict[int, np.ndarray] = {}
        for it in args.iterations:
            rounds = per_task(evaluate(run, it, args.tasks, args.episodes, args.seed, args.out))
            pre, post = rounds[0], rounds[1]
            post_by_it[it] = post
            table.append({"run": run.name, "iteration": it, "tasks": len(post), "pre": pre.mean(), "pre_ci": ci95(pre),
                          "post": post.mean(), "post_ci": ci95(post), "improved": float((post > pre).mean())})
        its = sorted(post_by_it)
        for a, b in zip(its[:-1], its[1:]):
            diff = post_by_it[b] - post_by_it[a]
            row = next(r for r in table if r["run"] == run.name and r["iteration"] == b)
            row["vs_previous"], row["vs_previous_ci"] = float(diff.mean()), ci95(diff)
        if n == 0:
            first = post_by_it
        else:
            for it in its:
                diff = post_by_it[it] - first[it]
                row = next(r for r in table if r["run"] == run.name and r["iteration"] == it)
                row["vs_first"], row["vs_first_ci"] = float(diff.mean()), ci95(diff)
        ax.errorbar(its, [post_by_it[i].mean() for i in its], yerr=[ci95(post_by_it[i]) for i in its], marker="o",
                    capsize=3, label=run.name)
    ax.set_xlabel("training iteration")
    ax.set_ylabel(f"held-out return after one step ({args.tasks} goals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "heldout_after_one_step.png", dpi=120)
    keys = ["run", "iteration", "tasks", "pre", "pre_ci", "post", "post_ci", "improved", "vs_previous", "vs_previous_ci",
            "vs_first", "vs_first_ci"]
    with (args.out / "heldout_after_one_step.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(table)
    lines = ["| run | iteration | before | after one step | tasks improved | after vs previous iteration (paired) "
             f"| after vs {args.runs[0].name} (paired) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        prev = f"{r['vs_previous']:+.2f} ± {r['vs_previous_ci']:.2f}" if "vs_previous" in r else ""
        other = f"{r['vs_first']:+.2f} ± {r['vs_first_ci']:.2f}" if "vs_first" in r else ""
        lines.append(f"| {r['run']} | {r['iteration']} | {r['pre']:.2f} ± {r['pre_ci']:.2f} | "
                     f"{r['post']:.2f} ± {r['post_ci']:.2f} | {100 * r['improved']:.1f}% | {prev} | {other} |")
    text = "\n".join(lines) + "\n"
    (args.out / "heldout_after_one_step.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
