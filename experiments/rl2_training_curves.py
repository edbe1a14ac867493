"""Overlay the training logs of RL² runs: success, entropy, in-trial adaptation and periodic evaluation.

Why a script and not ``metarl plot``: ``metarl plot`` draws adaptation curves of evaluations; comparing two
RL² recipes needs the training signals that tell *why* one learns, above all whether a trial adapts
(its last episode returns more than its first) and whether the action noise shrinks (entropy).

    .venv/bin/python experiments/rl2_training_curves.py OUT.png RUN_DIR[=LABEL] [RUN_DIR[=LABEL] ...]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_progress(run: Path) -> dict[str, list[float]]:
    """progress.csv as columns of floats (empty cells: NaN)."""
    with (run / "progress.csv").open() as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            cols.setdefault(key, []).append(float(value) if value not in ("", None) else float("nan"))
    return cols


def plot(out: Path, runs: list[tuple[Path, str]]) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = [("train/success", "training success (all trial episodes)"), ("train/entropy", "policy entropy"),
              (None, "last minus first episode return of a trial"),
              ("eval/metaworld/success", "Meta-World evaluator success (held-out goals)")]
    for run, label in runs:
        cols = read_progress(run)
        steps = [s / 1e6 for s in cols["time/total_env_steps"]]
        for ax, (key, title) in zip(axes.flat, panels, strict=True):
            if key is None:
                ys = [b - a for a, b in zip(cols["train/first_episode_return"], cols["train/last_episode_return"],
                                            strict=True)]
                ax.plot(steps, ys, label=label)
                ax.axhline(0.0, color="grey", lw=0.8)
            elif key.startswith("eval/"):
                pts = [(x, y) for x, y in zip(steps, cols.get(key, []), strict=False) if y == y]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=label)
                ax.set_ylim(0, 1)
            else:
                ax.plot(steps, cols[key], label=label)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("env steps (M)")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    runs = []
    for arg in argv[1:]:
        path, _, label = arg.partition("=")
        if not (Path(path) / "progress.csv").is_file():
            print(f"error: {path!r} has no progress.csv; give RL² run directories", file=sys.stderr)
            return 2
        runs.append((Path(path), label or Path(path).name))
    plot(Path(argv[0]), runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
