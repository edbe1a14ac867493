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

__all__ = ["BUDGET_ROUNDS", "Paired", "format_report", "paired", "paired_by_round", "shown_rounds", "trial_totals"]


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


#: Methods whose rounds are training budgets, not episodes of a trial: no return per trial.
BUDGET_ROUNDS = frozenset({"ppo-scratch"})


def trial_totals(rows: Sequence[CurveRow], method: str) -> dict[tuple[int, int], float]:
    """Return per trial of each (seed, task) of ``method``: the sum of its per-round means over rounds 0..R.

    When rounds are the episodes of one trial (RL²), round ``k``'s mean is the mean over the
    parallel trials of their ``k``-th episode, so the sum is the mean total of a trial. Cells
    missing a round (of the method's 0..R) are left out rather than summed short.
    """
    cells: dict[tuple[int, int], dict[int, float]] = {}
    for r in rows:
        if r.method == method:
            cells.setdefault((r.seed, r.task), {})[r.round] = r.return_mean
    if not cells:
        return {}
    rounds = set(range(max(max(c) for c in cells.values()) + 1))
    return {key: float(sum(c.values())) for key, c in cells.items() if set(c) == rounds}


def _agent_rounds_are_trial_episodes(agent: str) -> bool:
    """What the agent class registered under ``agent`` declares (``False`` for other names)."""
    from metarl.agents import AGENTS, agent_class

    return bool(getattr(agent_class(agent), "rounds_are_trial_episodes", False)) if agent in AGENTS else False


def _per_trial_lines(rows: Sequence[CurveRow], agent: str, methods: Sequence[str], width: int) -> list[str]:
    """The RL² headline: each method's mean return per trial, and ``agent - other`` per trial, paired."""
    totals = {m: trial_totals(rows, m) for m in methods if m not in BUDGET_ROUNDS}
    totals = {m: t for m, t in totals.items() if t}
    if agent not in totals:
        return []
    episodes = max(r.round for r in rows if r.method == agent) + 1
    lines = [f"return per trial (sum over the trial's {episodes} episodes; mean over {len(totals[agent])} test tasks)"]
    lines += [f"{m:<{width}}{np.mean(list(t.values())):>20.2f}" for m, t in totals.items()]
    others = [m for m in totals if m != agent]
    if others:
        lines.append(f"{agent} minus each baseline, per trial, paired over the same tasks (mean ± standard error)")
        for m in others:
            shared = [key for key in totals[agent] if key in totals[m]]
            diff = paired(np.array([totals[agent][k] - totals[m][k] for k in shared])) if len(shared) >= 2 else None
            lines.append(f"{m:<{width}}" + (f"{diff.mean:+.2f} ± {diff.stderr:.2f}" if diff else "-").rjust(20))
    return lines


def format_report(rows: Sequence[CurveRow], agent: str, per_trial: bool | None = None) -> str:
    """Mean return per round for each method (env steps in brackets), then ``agent - other`` paired.

    ``per_trial``: the rounds are the episodes of one trial (RL²; ``MetaAgent.rounds_are_trial_episodes``).
    The report then opens with what every RL² table reports, the return per trial (the sum over the
    trial's episodes) of each method and the paired differences in it, and keeps the per-episode
    curve below. ``None`` (the default): as the agent class registered under ``agent`` declares.
    """
    if per_trial is None:
        per_trial = _agent_rounds_are_trial_episodes(agent)
    methods = [agent] + sorted({r.method for r in rows} - {agent})
    rounds = shown_rounds([r.round for r in rows])
    width = max(len(m) for m in methods) + 2
    n_tasks = len({(r.seed, r.task) for r in rows if r.method == agent})
    groups: dict[tuple[str, int], list[CurveRow]] = {}
    for r in rows:
        groups.setdefault((r.method, r.round), []).append(r)
    headline = _per_trial_lines(rows, agent, methods, width) if per_trial else []
    lines = headline + [""] if headline else []
    what = "episode k of the trial (round k)" if per_trial else "episode"
    lines += [f"mean return per {what} over {n_tasks} test tasks [env steps of adaptation]",
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
