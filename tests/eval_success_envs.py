"""Test-only plug-in families for the success tests, importable by spawned workers and Ray actors.

``coins``: three-step episodes, reward = action (0 or 1). With ``report=true`` every step's info
says ``success`` = (action == 1), so uniform random play succeeds with probability
1 - 0.5**3 = 0.875; with ``report=false`` the info is empty. Neither sets ``has_success``: whether a
family reports success must be learned from its envs. ``declared=true`` sets ``has_success`` on a
family whose envs only add the key on a successful step (never, here, as no step succeeds: actions
are ignored), to show the declaration turning "no key seen" into a rate of 0 rather than NaN.

Used through the plug-in spec form ``tests.eval_success_envs:coins?report=false``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from metarl.envs import Task, TaskEnv, TaskFamily

PATH = "tests.eval_success_envs:coins"


class CoinEnv(TaskEnv):
    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, task: Task, report: bool, declared: bool) -> None:
        self.report, self.declared = report, declared
        self.set_task(task)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        if self.declared:  # the key only on success, and nothing ever succeeds
            return np.zeros(1, np.float32), 0.0, False, False, {}
        info = {"success": float(action == 1)} if self.report else {}
        return np.zeros(1, np.float32), float(action), False, False, info


class Coins(TaskFamily):
    horizon = 3  # the env never ends an episode itself: the horizon does
    observation_space = CoinEnv.observation_space
    action_space = CoinEnv.action_space

    def __init__(self, report: bool = True, declared: bool = False) -> None:
        self.report, self.declared = report, declared
        self.has_success = declared
        params = [f"{k}={str(v).lower()}" for k, v, default in (("report", report, True), ("declared", declared, False))
                  if v != default]
        self.name = PATH + ("?" + "&".join(params) if params else "")  # = its spec, so workers rebuild it

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        return self._tasks(split, [{} for _ in range(n)])

    def make_env(self, task: Task) -> gym.Env:
        return CoinEnv(task, self.report, self.declared)


def coins(report: bool = True, declared: bool = False) -> Coins:
    return Coins(report=report, declared=declared)


def spec(**kw: Any) -> str:
    return coins(**kw).name
