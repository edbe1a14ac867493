"""Test-only task families for the sampler tests, importable by spawned workers and Ray actors.

Used through the plug-in spec form ``tests.sampling_faulty_envs:toy?key=value``.
The toy env makes what happened visible: the observation carries the task's
goal, the step index and the episode's reset seed; the reward is the first
action component. Parameters inject faults at a given step; a task's params
override the family's, so one sampler (one set of workers) can serve many
fault scenarios (:func:`tasks_with`).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.envs import Task, TaskEnv, TaskFamily

PATH = "tests.sampling_faulty_envs:toy"


class ToyEnv(TaskEnv):
    """obs = [goal, t, seed % 1000]; reward = action[0]; episode length 1 + seed % horizon when ``random_length``."""

    def __init__(self, task: Task, cfg: dict[str, Any]) -> None:
        self.family_cfg = cfg
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
        self.set_task(task)
        self._t, self._seed, self._len = 0, 0, cfg["horizon"]

    def _apply_task(self, task: Task) -> None:
        self.goal = float(task.params["goal"])
        self.cfg = {**self.family_cfg, **{k: v for k, v in task.params.items() if k != "goal"}}

    def _obs(self) -> np.ndarray:
        return np.array([self.goal, self._t, self._seed % 1000], np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._t, self._seed = 0, int(seed or 0)
        self._len = 1 + self._seed % self.cfg["horizon"] if self.cfg["random_length"] else self.cfg["horizon"]
        return self._obs(), {}

    def step(self, action):
        cfg = self.cfg
        mine = self.task.index == cfg["fault_task"] or cfg["fault_task"] < 0
        if cfg["sleep"]:
            time.sleep(cfg["sleep"])
        if mine and self._t == cfg["fail_at"]:
            raise RuntimeError(f"injected failure at step {self._t}")
        self._t += 1
        obs = self._obs()
        reward = float(action[0])
        if mine and self._t - 1 == cfg["nan_at"]:
            obs[1] = np.nan
        if mine and self._t - 1 == cfg["inf_reward_at"]:
            reward = float("inf")
        terminated = self._t >= self._len
        return obs, reward, terminated, False, {"success": float(self._t == cfg["success_at"])}


class ToyFamily(TaskFamily):
    description = "test-only: obs reveals goal/step/seed, reward = action[0], injectable faults"

    def __init__(self, **cfg: Any) -> None:
        self.cfg = {"horizon": 10, "random_length": False, "fail_at": -1, "nan_at": -1, "inf_reward_at": -1,
                    "success_at": -1, "fault_task": -1, "sleep": 0.0, **cfg}
        self.horizon = int(self.cfg["horizon"])
        self.name = PATH + ("?" + "&".join(f"{k}={v}" for k, v in cfg.items()) if cfg else "")

    @property
    def observation_space(self) -> gym.Space:
        return gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)

    @property
    def action_space(self) -> gym.Space:
        return gym.spaces.Box(-10.0, 10.0, (2,), np.float32)

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        return self._tasks(split, [{"goal": float(i + 1)} for i in range(n)])

    def make_env(self, task: Task) -> gym.Env:
        return ToyEnv(task, self.cfg)


def toy(horizon: int = 10, random_length: bool = False, fail_at: int = -1, nan_at: int = -1, inf_reward_at: int = -1,
        success_at: int = -1, fault_task: int = -1, sleep: float = 0.0) -> ToyFamily:
    """Factory for the spec form; only non-default values go into the family name (= its spec)."""
    given = dict(horizon=horizon, random_length=random_length, fail_at=fail_at, nan_at=nan_at,
                 inf_reward_at=inf_reward_at, success_at=success_at, fault_task=fault_task, sleep=sleep)
    defaults = toy.__defaults__
    return ToyFamily(**{k: v for (k, v), d in zip(given.items(), defaults, strict=True) if v != d})


def spec(**kw: Any) -> str:
    """The spec string for ``toy`` with these parameters (same spelling as the family's name)."""
    return toy(**kw).name


def tasks_with(family: TaskFamily, n: int, **params: Any) -> list[Task]:
    """``n`` tasks of ``family`` whose params override the family's settings (e.g. ``fail_at=3``)."""
    return [Task(t.family, t.split, t.index, {**t.params, **params}) for t in family.sample(n)]
