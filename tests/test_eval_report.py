"""The evaluate report: per-round paired differences and the rounds it shows."""

from __future__ import annotations

import numpy as np
import pytest

from metarl.evaluation.curves import CurveRow
from metarl.evaluation.report import format_report, paired, paired_by_round, shown_rounds


def row(method: str, seed: int, task: int, rnd: int, ret: float) -> CurveRow:
    return CurveRow(method=method, run="r", family="point-nav", split="test", seed=seed, task=task, round=rnd,
                    env_steps=100 * rnd, episodes=1, return_mean=ret, success_rate=float("nan"))


def test_paired_by_round_matches_per_task_differences() -> None:
    agent = [row("a", s, t, k, 10.0 * k + t + s) for s in (0, 1) for t in range(3) for k in range(2)]
    base = [row("b", s, t, k, 5.0 * k + 2 * t) for s in (0, 1) for t in range(3) for k in range(2)]
    out = paired_by_round(agent + base, "a", "b")
    for k in (0, 1):
        diffs = np.array([(10.0 * k + t + s) - (5.0 * k + 2 * t) for s in (0, 1) for t in range(3)])
        assert out[k].mean == pytest.approx(diffs.mean()) and out[k].tasks == 6
        assert out[k].stderr == pytest.approx(diffs.std(ddof=1) / np.sqrt(6))


def test_paired_needs_two_tasks_and_report_shows_every_method() -> None:
    with pytest.raises(ValueError, match="2 or more"):
        paired(np.array([1.0]))
    rows = [row("agent", 0, t, k, float(t + k)) for t in range(4) for k in range(3)]
    rows += [row("random", 0, t, k, 0.0) for t in range(4) for k in range(3)]
    text = format_report(rows, "agent")
    assert "over 4 test tasks" in text and "random" in text
    assert "+1.50 ± 0.65" in text  # round 0: diffs 0, 1, 2, 3 -> mean 1.5, s.e. 1.29 / 2


def test_shown_rounds_keep_first_and_last() -> None:
    assert shown_rounds(range(4)) == [0, 1, 2, 3]
    picked = shown_rounds(range(100), most=8)
    assert picked[0] == 0 and picked[-1] == 99 and len(picked) == 8 and picked == sorted(picked)
