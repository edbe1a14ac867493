"""Aggregate statistics for adaptation curves: means, IQM and bootstrap confidence intervals.

Few test tasks and few seeds make point estimates misleading, so every curve
point comes with a 95% interval (Agarwal et al. 2021, "Deep RL at the Edge of
the Statistical Precipice", whose ``rliable`` library set the conventions kept
here, implemented in plain numpy so that metarl needs neither rliable nor scipy):

* **mean** over all (seed, task) cells, with a percentile bootstrap that
  resamples *tasks*: meta-test tasks are draws from the task distribution, so
  their spread is what a reader should see.
* **IQM** (interquartile mean: drop the lowest and highest 25% of scores, as
  ``scipy.stats.trim_mean(x, 0.25)`` does, then average) with rliable's
  *stratified* bootstrap, which resamples runs (seeds) within each task; only
  reported with at least two seeds, since with one there is nothing to resample.

Scores are arranged as a matrix ``[units, tasks]`` where a unit is one (run,
seed); NaN cells (a missing task, a family without success signal) are ignored
by every statistic rather than counted as zero.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np

from metarl.evaluation.curves import CurveRow

__all__ = [
    "Interval",
    "Summary",
    "aggregate",
    "bootstrap_ci",
    "iqm",
    "nanmean",
    "stratified_bootstrap_ci",
    "task_bootstrap_ci",
    "trimmed_mean",
    "write_summary_csv",
]

Statistic = Callable[[np.ndarray], np.ndarray]
"""Reduces the last axis, ignoring NaN: ``[..., n] -> [...]``."""

METRICS: dict[str, str] = {"return_mean": "return", "success_rate": "success"}


class Interval(NamedTuple):
    point: float
    low: float
    high: float


def nanmean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (without a warning) where nothing is left."""
    x = np.asarray(x, dtype=np.float64)
    valid = ~np.isnan(x)
    count = valid.sum(-1)
    total = np.where(valid, x, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def trimmed_mean(x: np.ndarray, proportion: float = 0.25) -> np.ndarray:
    """Mean of the last axis after cutting ``floor(proportion * n)`` values off each end.

    ``n`` counts non-NaN values only, per row, matching ``scipy.stats.trim_mean``
    on the NaN-free data. Vectorized over leading axes so a whole bootstrap is
    one sort.
    """
    if not 0.0 <= proportion < 0.5:
        raise ValueError(f"proportion must be in [0, 0.5), got {proportion}")
    s = np.sort(np.asarray(x, dtype=np.float64), axis=-1)  # NaN sorts last
    count = (~np.isnan(s)).sum(-1, keepdims=True)
    cut = np.floor(proportion * count).astype(np.int64)
    pos = np.arange(s.shape[-1])
    keep = (pos >= cut) & (pos < count - cut)
    return nanmean(np.where(keep, s, np.nan))


def iqm(x: np.ndarray) -> np.ndarray:
    """Interquartile mean over the last axis (rliable's aggregate of choice: robust, yet efficient)."""
    return trimmed_mean(x, 0.25)


def _percentile_interval(point: float, boot: np.ndarray, confidence: float) -> Interval:
    boot = boot[~np.isnan(boot)]
    if boot.size == 0 or math.isnan(point):
        return Interval(point, math.nan, math.nan)
    alpha = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [alpha, 100.0 - alpha])
    return Interval(point, float(low), float(high))


def _check(confidence: float, n_boot: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def task_bootstrap_ci(
    scores: np.ndarray,
    statistic: Statistic = nanmean,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> Interval:
    """Percentile bootstrap over the task columns of ``scores [units, tasks]``.

    Each replicate draws ``tasks`` columns with replacement and applies
    ``statistic`` to all cells of the drawn columns, so seeds that share a task
    stay together (their scores are not independent draws of the task
    distribution).
    """
    _check(confidence, n_boot)
    m = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    n_units, n_tasks = m.shape
    point = float(statistic(m.reshape(-1)))
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, n_tasks, size=(n_boot, n_tasks))
    boot = statistic(m[:, cols].transpose(1, 0, 2).reshape(n_boot, n_units * n_tasks))
    return _percentile_interval(point, boot, confidence)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Statistic = nanmean,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> Interval:
    """Percentile bootstrap CI of ``statistic`` over independent values (e.g. one score per task)."""
    return task_bootstrap_ci(np.asarray(values, dtype=np.float64)[None, :], statistic, n_boot, confidence, seed)


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Statistic = iqm,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> Interval:
    """rliable's stratified bootstrap: resample units (runs/seeds) within each task column.

    The task set is held fixed and only the run-to-run randomness is resampled,
    which is what separates "this method is better" from "this seed was lucky".
    """
    _check(confidence, n_boot)
    m = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    n_units, n_tasks = m.shape
    point = float(statistic(m.reshape(-1)))
    rng = np.random.default_rng(seed)
    units = rng.integers(0, n_units, size=(n_boot, n_units, n_tasks))
    boot = statistic(m[units, np.arange(n_tasks)].reshape(n_boot, n_units * n_tasks))
    return _percentile_interval(point, boot, confidence)


@dataclass(frozen=True)
class Summary:
    """One point of an aggregated curve: a method (or run) after ``round`` rounds, one metric.

    ``iqm*`` are NaN with fewer than two seeds; ``n_tasks`` counts tasks with at
    least one non-NaN score; ``n_seeds`` counts distinct (run, seed) units.
    """

    method: str
    run: str
    family: str
    split: str
    round: int
    metric: str
    mean: float
    ci_low: float
    ci_high: float
    iqm: float
    iqm_low: float
    iqm_high: float
    env_steps: float
    n_tasks: int
    n_seeds: int


def _score_matrix(rows: Sequence[CurveRow], column: str) -> tuple[np.ndarray, int]:
    """``[units, tasks]`` with NaN for missing cells, and the number of units."""
    units = sorted({(r.run, r.seed) for r in rows})
    tasks = sorted({r.task for r in rows})
    u_index = {u: i for i, u in enumerate(units)}
    t_index = {t: j for j, t in enumerate(tasks)}
    m = np.full((len(units), len(tasks)), np.nan)
    for r in rows:
        m[u_index[(r.run, r.seed)], t_index[r.task]] = getattr(r, column)
    return m, len(units)


def aggregate(
    rows: Iterable[CurveRow],
    metrics: Sequence[str] = ("return_mean", "success_rate"),
    per_run: bool = False,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Summary]:
    """Summarize a curve table into one :class:`Summary` per (method, family, split, round, metric).

    ``per_run=True`` keeps runs apart (one line per run in a plot). Metrics that
    are NaN throughout a group (success on a family without a success signal)
    produce no summary, so callers can test for their absence. Each group uses a
    generator seeded with ``seed`` alone, so results do not depend on which other
    methods share the table.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; allowed: {', '.join(METRICS)}")
    groups: dict[tuple, list[CurveRow]] = {}
    for r in rows:
        key = (r.method, r.run if per_run else "", r.family, r.split, r.round)
        groups.setdefault(key, []).append(r)
    out: list[Summary] = []
    for (method, run, family, split, round_k), group in sorted(groups.items(), key=lambda kv: kv[0]):
        run_label = run or ",".join(sorted({r.run for r in group}))
        env_steps = float(np.mean([r.env_steps for r in group]))
        for column in metrics:
            m, n_units = _score_matrix(group, column)
            if np.all(np.isnan(m)):
                continue
            mean = task_bootstrap_ci(m, nanmean, n_boot, confidence, seed)
            if n_units >= 2:
                robust = stratified_bootstrap_ci(m, iqm, n_boot, confidence, seed)
            else:
                robust = Interval(math.nan, math.nan, math.nan)
            out.append(Summary(method, run_label, family, split, round_k, METRICS[column], *mean, *robust, env_steps,
                               int((~np.isnan(m)).any(0).sum()), n_units))
    return out


def write_summary_csv(summaries: Iterable[Summary], path: str | Path) -> Path:
    """``eval/summary.csv``: the aggregated numbers behind a plot, for tables in papers and READMEs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(Summary)], lineterminator="\n")
        writer.writeheader()
        for s in summaries:
            writer.writerow(asdict(s))
    return path
