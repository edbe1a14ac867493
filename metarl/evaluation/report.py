"""The table ``metarl evaluate`` prints: each method's curve, and the agent minus each baseline, paired.

Why paired differences: every method is scored on the very same test tasks (and, for
references, the same sampler seeds), so the per-task difference cancels the spread between
tasks (a fast and a slow target velocity, a generous and a stingy bandit). Unpaired error
bars over tasks overlap long after a difference is clear, and can also hide a real deficit:
on point-nav a 3.4-point gap "within one standard error" unpaired was 4.4 standard errors
paired.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from metarl.evaluation.curves import CurveRow

__all__ = ["Paired", "paired", "paired_by_round", "format_report", "shown_rounds"]


class Paired(NamedTuple):
    """Mean and standard error over tasks of a per-task difference."""

    mean: float
    stderr: float
    tasks: int


def paired(diffs: np.ndarray) -> Paired:
    """Mean and standard error of per-task differences (needs two or more tasks for an error)."""
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size < 2:
        raise ValueError(f"a paired comparison needs 2 or more shared tasks, got {diffs.size}")
    return Paired(float(diffs.mean()), float(diffs.std(ddof=1) / np.sqrt(diffs.size)), int(diffs.size))


def _cells(rows: Sequence[CurveRow], method: str) -> dict[tuple[int, int, int], float]:
    """(seed, task, round) -> mean return of ``method``."""
    return {(r.seed, r.task, r.round): r.return_mean for r in rows if r.method == method}


def paired_by_round(rows: Sequence[CurveRow], a: str, b: str) -> dict[int, Paired]:
    """``a - b`` per round, over the (seed, task) cells both methods were scored on."""
    ca, cb = _cells(rows, a), _cells(rows, b)
    by_round: dict[int, list[float]] = {}
    for key, value in ca.items():
        if key in cb:
            by_round.setdefault(key[2], []).append(value - cb[key])
    return {k: paired(np.array(v)) for k, v in sorted(by_round.items()) if len(v) >= 2}


def shown_rounds(rounds: Sequence[int], most: int = 8) -> list[int]:
    """At most ``most`` rounds, always the first and the last, the rest evenly spread."""
    rounds = sorted(set(rounds))
    if len(rounds) <= most:
        return rounds
    picks = np.linspace(0, len(rounds) - 1, most).round().astype(int)
    return [rounds[i] for i in sorted(set(picks.tolist()))]


def format_report(rows: Sequence[CurveRow], agent: str) -> str:
    """Mean return per round for each method (env steps in brackets), then ``agent - other`` paired."""
    methods = [agent] + sorted({r.method for r in rows} - {agent})
    rounds = shown_rounds([r.round for r in rows])
    width = max(len(m) for m in methods) + 2
    n_tasks = len({(r.seed, r.task) for r in rows if r.method == agent})
    groups: dict[tuple[str, int], list[CurveRow]] = {}
    for r in rows:
        groups.setdefault((r.method, r.round), []).append(r)
    lines = [f"mean return per episode over {n_tasks} test tasks [env steps of adaptation]",
             " " * width + "".join(f"{'round ' + str(k):>20}" for k in rounds)]
    for m in methods:
        cells = [f"{np.mean([r.return_mean for r in got]):>10.2f} [{int(np.mean([r.env_steps for r in got])):>6}]"
                 if (got := groups.get((m, k))) else "-" for k in rounds]
        lines.append(f"{m:<{width}}" + "".join(f"{c:>20}" for c in cells))
    others = [m for m in methods if m != agent]
    if others:
        lines.append(f"{agent} minus each baseline, paired over the same tasks (mean ± standard error)")
        for m in others:
            diff = paired_by_round(rows, agent, m)
            cells = [f"{diff[k].mean:+.2f} ± {diff[k].stderr:.2f}" if k in diff else "-" for k in rounds]
            lines.append(f"{m:<{width}}" + "".join(f"{c:>20}" for c in cells))
    return "\n".join(lines)
