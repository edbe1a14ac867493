"""Baselines against closed forms: the evaluator's numbers must equal what the math says."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from metarl.envs import Task, TaskEnv, TaskFamily, make_family
from metarl.evaluation.actors import FunctionActor
from metarl.evaluation.baselines import policy_baseline, ppo_rollout_size, ppo_scratch_baseline, random_baseline
from metarl.evaluation.curves import validate_rows


def test_random_bandit_return_is_mean_arm_probability():
    family = make_family("bandit?k=5&n=10")
    tasks = family.sample(4, rng=0, split="test")
    rows = random_baseline(family, tasks, rounds=2, episodes_per_round=400, seed=0)
    validate_rows(rows)
    assert sorted((r.task, r.round) for r in rows) == [(t, k) for t in range(4) for k in range(3)]  # one row each
    assert all(r.method == "random" and r.split == "test" and r.family == family.name for r in rows)
    for t, task in enumerate(tasks):
        expected = float(np.mean(task.params["probs"]))  # uniform arm, then Bernoulli(p_arm)
        pooled = np.mean([r.return_mean for r in rows if r.task == t])
        sd = math.sqrt(expected * (1 - expected) / 1200)
        assert abs(pooled - expected) < 4 * sd, (t, pooled, expected)
    # one-step episodes: round k has seen k * 400 steps; no success signal on bandits
    assert [r.env_steps for r in rows if r.task == 0] == [0, 400, 800]
    assert all(math.isnan(r.success_rate) for r in rows)
    again = random_baseline(family, tasks, rounds=2, episodes_per_round=400, seed=0)
    assert [r.return_mean for r in again] == [r.return_mean for r in rows]  # seeded


def test_scripted_point_nav_policy_matches_closed_form():
    family = make_family("point-nav")
    tasks = family.sample(3, rng=1, split="test")
    stay = FunctionActor(lambda obs: np.zeros((len(obs), 2), np.float32))
    rows = policy_baseline(family, tasks, rounds=2, episodes_per_round=2, seed=0, actor=stay, method="stay")
    for r in rows:
        distance = float(np.linalg.norm(tasks[r.task].params["goal"]))
        assert r.return_mean == pytest.approx(-family.horizon * distance, rel=1e-6)  # 100 steps at -|goal|
        assert r.env_steps == r.round * 2 * family.horizon and r.episodes == 2


class _CoinEnv(TaskEnv):
    """Three steps; a step succeeds iff the action is 1, so random play succeeds with 1 - 0.5**3."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, task: Task) -> None:
        self.set_task(task)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), float(action), False, False, {"success": float(action == 1)}


class _Coins(TaskFamily):
    name, horizon = "coins", 3  # the env never ends an episode itself: the horizon must
    observation_space, action_space = _CoinEnv.observation_space, _CoinEnv.action_space

    def sample(self, n, rng=None, split="train"):
        return [Task(self.name, split, i, {}) for i in range(n)]

    def make_env(self, task):
        return _CoinEnv(task)


def test_success_is_any_step_and_horizon_caps_episodes():
    family = _Coins()
    rows = random_baseline(family, family.sample(2, split="test"), rounds=1, episodes_per_round=1000, seed=3)
    for r in rows:
        assert abs(r.success_rate - 0.875) < 4 * math.sqrt(0.875 * 0.125 / 1000)
        assert abs(r.return_mean - 1.5) < 4 * math.sqrt(0.75 / 1000)
    assert [r.env_steps for r in rows if r.task == 0] == [0, 3000]


def test_ppo_rollout_size_divides_every_increment():
    assert ppo_rollout_size([0, 2000, 4000]) == 2000
    assert ppo_rollout_size([0, 300, 500]) == 100
    assert ppo_rollout_size([0, 3000, 6000]) == 1500  # capped at 2048
    with pytest.raises(ValueError, match="no common divisor"):
        ppo_rollout_size([0, 7, 8])


def test_ppo_scratch_rows_follow_the_budgets():
    family = make_family("point-nav")
    tasks = family.sample(2, rng=0, split="test")
    budgets = [0, 200, 400]
    rows = ppo_scratch_baseline(family, tasks, budgets, episodes_per_round=2, seed=0, progress=False,
                                ppo_kwargs={"n_epochs": 2, "policy_kwargs": {"net_arch": [16]}})
    validate_rows(rows)
    assert [(r.task, r.round, r.env_steps) for r in rows] == [(t, k, b) for t in range(2) for k, b in enumerate(budgets)]
    assert all(r.method == "ppo-scratch" and r.episodes == 2 and math.isnan(r.success_rate) for r in rows)
    assert all(-family.horizon * 2 < r.return_mean < 0 for r in rows)  # point-nav rewards are -distance per step
    with pytest.raises(ValueError, match="must start at 0"):
        ppo_scratch_baseline(family, tasks, [100, 200], episodes_per_round=1, seed=0, progress=False)
