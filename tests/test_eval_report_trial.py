"""`metarl evaluate` on RL²: the report's headline is the return per trial, per-episode curves kept below it."""

from __future__ import annotations

import re

import numpy as np
import pytest

from metarl.evaluation.curves import CurveRow
from metarl.evaluation.references import paired_difference, total_per_trial
from metarl.evaluation.report import format_report, trial_totals


def row(method: str, task: int, rnd: int, ret: float, seed: int = 0) -> CurveRow:
    return CurveRow(method=method, run="r", family="bandit?k=5&n=3", split="test", seed=seed, task=task, round=rnd,
                    env_steps=rnd, episodes=4, return_mean=ret, success_rate=float("nan"))


# three-episode trials on four tasks: rl2 improves within the trial, random does not
RL2 = [row("rl2", t, k, 0.2 * t + 0.1 * k) for t in range(4) for k in range(3)]
RANDOM = [row("random", t, k, 0.5) for t in range(4) for k in range(3)]
PPO = [row("ppo-scratch", t, k, 0.9) for t in range(4) for k in range(3)]


def test_trial_totals_sum_the_rounds_of_each_task_and_skip_incomplete_ones() -> None:
    totals = trial_totals(RL2, "rl2")
    assert totals == pytest.approx({(0, t): 0.6 * t + 0.3 for t in range(4)})
    assert trial_totals(RL2[:-1], "rl2").keys() == {(0, 0), (0, 1), (0, 2)}  # task 3 lacks its last episode
    assert total_per_trial(RL2, "rl2") == pytest.approx(np.mean([0.6 * t + 0.3 for t in range(4)]))
    assert paired_difference(RL2, "rl2", RANDOM, "random")["mean"] == pytest.approx(np.mean([0.6 * t - 1.2
                                                                                              for t in range(4)]))


def test_rl2_report_leads_with_the_return_per_trial() -> None:
    text = format_report(RL2 + RANDOM + PPO, "rl2")  # per_trial read from the rl2 agent class
    assert text == format_report(RL2 + RANDOM + PPO, "rl2", per_trial=True)
    head, curves = text.split("\n\n")
    assert head.startswith("return per trial (sum over the trial's 3 episodes; mean over 4 test tasks)")
    assert re.search(r"^rl2\s+1\.20$", head, re.M) and re.search(r"^random\s+1\.50$", head, re.M)
    # per task rl2 - random = 0.6 t - 1.2: mean -0.30, standard error 0.6 * sd(0..3) / 2 = 0.6 * 1.29 / 2
    assert re.search(r"^random\s+-0\.30 ± 0\.39$", head, re.M)
    assert "ppo-scratch" not in head  # its rounds are training budgets, not episodes of a trial
    assert curves.startswith("mean return per episode k of the trial (round k) over 4 test tasks")
    assert re.search(r"^rl2\s+0\.30 \[\s+0\]\s+0\.40 \[\s+1\]\s+0\.50 \[\s+2\]$", curves, re.M)  # per episode
    assert "ppo-scratch" in curves


def test_gradient_agents_keep_the_per_episode_report() -> None:
    maml = [CurveRow(**{**r.as_dict(), "method": "maml-trpo"}) for r in RL2]
    text = format_report(maml + RANDOM, "maml-trpo")
    assert text.startswith("mean return per episode over 4 test tasks") and "per trial" not in text
    assert format_report(maml + RANDOM, "maml-trpo", per_trial=False) == text
    assert format_report(RL2 + RANDOM, "not-an-agent").startswith("mean return per episode over")


def test_an_rl2_evaluation_records_and_reports_the_return_per_trial(tmp_path) -> None:
    import torch

    from metarl.agents.rl2 import RL2, RL2Config
    from metarl.evaluation.curves import read_curves
    from metarl.evaluation.protocol import evaluate_agent

    torch.set_num_threads(1)
    agent = RL2(RL2Config(hidden_size=8), "bandit?k=3&n=4", seed=0)
    _, json_path, rows = evaluate_agent(agent, run="r", out_dir=tmp_path, n_tasks=3, rounds=3, episodes_per_round=2,
                                        seeds=[0], baselines=["random"], progress=False)
    agent.close()
    assert "return per trial of 4 episodes" in read_curves(json_path).meta["return_per_trial"]
    head = format_report(rows, "rl2").split("\n\n")[0]
    for method in ("rl2", "random"):  # the printed total is the mean over tasks of the summed episodes
        total = np.mean(list(trial_totals(rows, method).values()))
        assert re.search(rf"^{method}\s+{total:.2f}$", head, re.M)
        assert 0.0 <= total <= 4.0  # four 0/1 pulls per trial
