"""Figures: adaptation curves from ``curves.csv`` alone, and training curves from ``progress.csv``.

Plots are drawn only from files on disk (never from live agent objects) so a
user can re-plot, restyle or combine runs long after training, on a machine
without the checkpoints. Matplotlib runs headless (Agg). Each function returns
the ``Figure`` so tests and notebooks can inspect or restyle it.
"""

from __future__ import annotations

import fnmatch
import math
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from metarl.evaluation.curves import CurveRow, read_many  # noqa: E402
from metarl.evaluation.metrics import (  # noqa: E402
    ENV_STEPS_KEY,
    ITERATION_KEY,
    RETURN_KEY,
    SHARED_KEYS,
    SUCCESS_KEY,
    Progress,
    ProgressError,
    read_progress,
)
from metarl.evaluation.stats import Summary, aggregate  # noqa: E402

__all__ = ["DEFAULT_TRAINING_KEYS", "plot_adaptation", "plot_training", "save_figure"]

X_LABELS = {
    "round": "adaptation rounds (0 = before adaptation)",
    "env_steps": "environment steps of adaptation on the test task",
}
Y_LABELS = {"return": "average return per episode", "success": "success rate (fraction of episodes)"}

#: The shared vocabulary (:mod:`metarl.evaluation.metrics`): the same quantities for every agent.
DEFAULT_TRAINING_KEYS: tuple[str, ...] = SHARED_KEYS
TRAINING_X_KEYS: tuple[str, ...] = (ENV_STEPS_KEY, ITERATION_KEY)
TRAINING_X_LABELS = {ENV_STEPS_KEY: "environment steps (all tasks)", ITERATION_KEY: "iteration"}
TRAINING_Y_LABELS = {RETURN_KEY: "return per episode (RL²: per trial)",
                     SUCCESS_KEY: "success rate (fraction of episodes)"}


def save_figure(fig: Figure, out_png: str | Path, out_svg: str | Path | None = None) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120, bbox_inches="tight")
    if out_svg is not None:
        Path(out_svg).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_svg, bbox_inches="tight")
    return out_png


def _figure_legend(fig: Figure, axes: np.ndarray) -> None:
    """One legend below all panels: lines are the same in every panel, and it never hides data."""
    by_label: dict[str, object] = {}
    for ax in axes.flat:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            by_label.setdefault(name, handle)
    if by_label:
        fig.legend(list(by_label.values()), list(by_label), loc="upper center", ncol=min(len(by_label), 3),
                   frameon=False, bbox_to_anchor=(0.5, 0.0))


def _line_label(line: list[Summary], rows: Sequence[CurveRow], per_run: bool, several_families: bool) -> str:
    """``method [family] (n seeds)``: enough to tell lines apart, no more."""
    s = line[0]
    label = s.method
    if several_families:
        label += f" [{s.family}]"
    if per_run:
        seeds = sorted({r.seed for r in rows if r.method == s.method and r.run == s.run and r.family == s.family})
        return f"{label} ({s.run}, seed {', '.join(map(str, seeds))})"
    n = max(x.n_seeds for x in line)
    if n == 1:
        seed = next(r.seed for r in rows if r.method == s.method and r.family == s.family)
        return f"{label} (seed {seed})"
    return f"{label} ({n} seeds)"


def _colors(n: int) -> list[str]:
    """One fixed color per line across all panels (each Axes would otherwise restart the cycle)."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[i % len(cycle)] for i in range(n)]


def _draw(ax: Axes, lines: dict[tuple, list[Summary]], labels: dict[tuple, str], x: str, metric: str) -> None:
    for (key, line), color in zip(lines.items(), _colors(len(lines))):
        pts = sorted((s for s in line if s.metric == metric), key=lambda s: s.round)
        if not pts:
            continue
        xs = np.array([s.round if x == "round" else s.env_steps for s in pts], dtype=float)
        mean = np.array([s.mean for s in pts])
        low, high = np.array([s.ci_low for s in pts]), np.array([s.ci_high for s in pts])
        ax.plot(xs, mean, marker="o", markersize=3, linewidth=1.6, color=color, label=labels[key])
        ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel(Y_LABELS[metric])
    ax.grid(True, alpha=0.3)
    if x == "round":
        ax.xaxis.get_major_locator().set_params(integer=True)
    if metric == "success":
        ax.set_ylim(-0.02, 1.02)


def plot_adaptation(
    curves: str | Path | Iterable[str | Path | CurveRow],
    out_png: str | Path | None = None,
    out_svg: str | Path | None = None,
    x: str = "round",
    per_run: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> Figure:
    """Return (left) and success rate (right) against adaptation budget, one line per method.

    ``curves``: ``curves.csv``/``curves.json`` path(s), ``eval/`` dirs, or rows.
    ``x``: ``"round"`` or ``"env_steps"`` (compare methods whose rounds differ in
    size, e.g. MAML vs ``ppo-scratch``). Lines show the mean over tasks and
    seeds with a 95% bootstrap band over tasks (see :mod:`metarl.evaluation.stats`);
    ``per_run=True`` draws each run separately. The success panel is left out
    when no row carries a success signal. Saves PNG (and SVG) when paths are given.
    """
    if x not in X_LABELS:
        raise ValueError(f"x={x!r} is invalid; allowed: {', '.join(X_LABELS)}")
    rows = read_many(curves)
    if not rows:
        raise ValueError("no curve rows to plot")
    summaries = aggregate(rows, per_run=per_run, n_boot=n_boot, seed=seed)
    lines: dict[tuple, list[Summary]] = {}
    for s in summaries:
        lines.setdefault((s.method, s.run if per_run else "", s.family, s.split), []).append(s)
    families = sorted({r.family for r in rows})
    splits = sorted({r.split for r in rows})
    labels = {k: _line_label(v, rows, per_run, len(families) > 1) for k, v in lines.items()}
    metrics = ["return"] + (["success"] if any(s.metric == "success" for s in summaries) else [])

    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        _draw(ax, lines, labels, x, metric)
    fig.suptitle(f"Adaptation on {', '.join(families)} ({'/'.join(splits)} tasks, mean and 95% CI over tasks)")
    _figure_legend(fig, axes)
    fig.tight_layout()
    if out_png is not None:
        save_figure(fig, out_png, out_svg)
    return fig


# ----------------------------------------------------------------------------- training curves


def _run_label(run_dir: Path) -> str:
    """``agent · env · seed N`` from ``config.yaml``, falling back to the folder name."""
    from metarl.runs.rundir import RunDirError, read_run_config

    try:
        meta, _ = read_run_config(run_dir)
        return f"{meta.get('agent', '?')} · {meta.get('env', '?')} · seed {meta.get('seed', '?')}"
    except RunDirError:
        return run_dir.name


def _run_labels(dirs: Sequence[Path]) -> dict[Path, str]:
    """One distinct label per run: runs of the same agent, env and seed (a sweep) add their folder name
    (their path, where the names are alike too).

    The legend has one entry per label, so two runs sharing one would leave a line unnamed.
    """
    labels = {d: _run_label(d) for d in dirs}
    counts = Counter(labels.values())
    names = Counter((label, d.name) for d, label in labels.items())
    return {d: label if counts[label] == 1 else f"{label} ({d.name if names[label, d.name] == 1 else d})"
            for d, label in labels.items()}


def plot_training(
    run_dirs: str | Path | Sequence[str | Path],
    out_png: str | Path | None = None,
    out_svg: str | Path | None = None,
    keys: Sequence[str] = DEFAULT_TRAINING_KEYS,
    x_keys: Sequence[str] = TRAINING_X_KEYS,
) -> Figure:
    """Training curves from each run's ``progress.csv``, one panel per metric key, one line per run.

    By default the shared vocabulary (``train/return``, ``train/success``), which means the same
    for every agent, so runs of different agents share panels; runs from before it are read
    through :data:`~metarl.evaluation.metrics.LEGACY_KEYS`, and the panel notes which old key.
    ``keys`` may contain shell patterns (``"adapt/round_*/return"``); keys no run logged are
    skipped, but a run with none of them is an error naming it (:class:`ProgressError`, a
    usage error), never a line silently missing. The x-axis is the first of ``x_keys`` every
    run has (total env steps, else iteration), else the row number. Lines are labelled by
    agent, env and seed from ``config.yaml``.
    """
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    if not dirs:
        raise ProgressError("no run directories to plot")
    data: dict[Path, Progress] = {d: read_progress(d) for d in dirs}
    available = sorted({k for p in data.values() for k in p.columns})
    chosen = [k for pattern in keys for k in available if fnmatch.fnmatchcase(k, pattern)]
    chosen = [k for k in dict.fromkeys(chosen) if any(p.has(k) for p in data.values())]
    for d, p in data.items():
        if not any(p.has(k) for k in chosen):
            raise ProgressError(f"{p.path}: none of the keys {', '.join(keys)} is logged there (nor the keys older "
                                f"runs logged them under); available: {', '.join(sorted(p.columns))}")
    x_key = next((k for k in x_keys if all(p.has(k) for p in data.values())), None)
    labels = _run_labels(list(data))

    ncols = min(3, len(chosen))
    nrows = math.ceil(len(chosen) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.6 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, chosen):
        for (d, p), color in zip(data.items(), _colors(len(data))):
            if not p.has(key):
                continue
            y = p.columns[key]
            xs = p.columns[x_key] if x_key else np.arange(len(y), dtype=float)
            ok = np.isfinite(y) & np.isfinite(xs)
            ax.plot(xs[ok], y[ok], linewidth=1.4, color=color, label=labels[d])
        ax.set_title(key, fontsize=10)
        xlabel = TRAINING_X_LABELS.get(x_key or "", x_key or "logged row")
        legacy = sorted({p.sources[key] for p in data.values() if key in p.sources})
        if legacy:  # say where an old run's line comes from (the key is not in its file), below the data
            xlabel += "\n" + textwrap.fill(f"(older runs: read from {', '.join(legacy)})", 48)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(TRAINING_Y_LABELS.get(key, key.rsplit("/", 1)[-1].replace("_", " ")))
        ax.grid(True, alpha=0.3)
        if key == SUCCESS_KEY:
            ax.set_ylim(-0.02, 1.02)
    for ax in list(axes.flat)[len(chosen):]:
        ax.set_visible(False)
    _figure_legend(fig, axes)
    fig.suptitle("Training progress")
    fig.tight_layout()
    if out_png is not None:
        save_figure(fig, out_png, out_svg)
    return fig
