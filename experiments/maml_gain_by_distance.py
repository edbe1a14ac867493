"""Where one adaptation step helps on point-nav: the share of tasks improved and the mean gain, by goal distance.

The share of tasks improved is the figure where metarl and the MAML reference code differ most, and
it is decided by few goals: those near the start, where one fixed-size step overshoots. This script
splits a held-out evaluation (the ``curves.csv[.gz]`` that ``maml_heldout_curve.py`` writes, one folder
per run) by the goal's distance from the start. The goals are not in the curves, so it draws them again
the way ``metarl evaluate --seed S`` does (``PointNav().sample(tasks, rng=S, split="test")``), as many as
the curves hold, so ``--seed`` must be the evaluation's own.

    python experiments/maml_gain_by_distance.py experiments/results/maml-reference/heldout400/*-iter0150 --seed 1
"""

from __future__ import annotations

import argparse
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from maml_heldout_curve import per_task  # noqa: E402

from metarl.envs.point import PointNav  # noqa: E402

EDGES = (0.0, 0.15, 0.30, 0.50, 0.80)


def curves_file(folder: Path) -> Path:
    for name in ("curves.csv.gz", "curves.csv"):
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(f"error: no curves.csv or curves.csv.gz in {folder}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="evaluation folders (one run's checkpoint each)")
    parser.add_argument("--seed", type=int, default=1, help="the --seed the evaluations were made with")
    args = parser.parse_args(argv)
    header = " | ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in pairwise(EDGES))
    print(f"| run | improved | {header} |")
    print("|---|---:|" + "---:|" * (len(EDGES) - 1))
    for folder in args.folders:
        rounds = per_task(curves_file(folder))
        gain = rounds[1] - rounds[0]
        tasks = PointNav().sample(len(gain), rng=args.seed, split="test")
        distance = np.array([np.hypot(*t.params["goal"]) for t in tasks])
        cells = []
        for lo, hi in pairwise(EDGES):
            m = (distance >= lo) & (distance < hi)
            cells.append(f"{m.sum()} goals: {100 * (gain[m] > 0).mean():.0f}%, {gain[m].mean():+.1f}" if m.any() else "")
        print(f"| {folder.name} | {100 * (gain > 0).mean():.1f}% | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
