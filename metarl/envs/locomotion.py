"""MuJoCo locomotion families of the MAML / ProMP papers, on gymnasium's v5 envs.

The task only changes the reward, so one MuJoCo model is re-targeted in place.
Rewards (``v`` = forward velocity from gymnasium's ``info``, ``a`` = action)::

    halfcheetah-vel : -|v_x - v_goal| - 0.05 ||a||^2,          v_goal ~ U[low, high] (default [0, 3])
    halfcheetah-dir : d * v_x - 0.05 ||a||^2,                   d in {+1, -1}
    ant-dir         : <(v_x, v_y), d> - 0.005 ||a||^2 - contact + survive,
                      d in {(+1, 0), (-1, 0)} (MAML), or a random unit vector with ``planar=true`` (ProMP)
    ant-goal        : -||(x, y) - g||_1 - 0.005 ||a||^2 - contact + survive,  g uniform in a disk of radius 3

``contact`` and ``survive`` are Ant-v5's own terms (0.0005-weighted clipped
contact forces; +1 while healthy). Ant episodes still terminate when the
torso leaves the healthy height range. Horizon is 200 for all four.
halfcheetah-dir has only two tasks, so train and test are the same two
directions, as in the papers.

Speed: samplers step these families as one batch per worker, physics in C and the rest in
numpy (:mod:`metarl.envs.mujoco_batch`), bit-identical to the gymnasium envs built by
``make_env``. ``batched=false`` (``halfcheetah-vel?batched=false``) steps the gymnasium envs
one by one instead, the reference path.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from metarl.envs.base import Task, TaskFamily, TaskWrapper, require, split_stream
from metarl.envs.env_batch import EnvBatch


class LocomotionTaskEnv(TaskWrapper, gym.utils.RecordConstructorArgs):
    """Replaces the wrapped env's reward by the task reward; keeps its info.

    Records its constructor arguments so ``env.spec`` can rebuild it (gymnasium's
    ``check_env`` and ``gym.make(env.spec)`` rely on that).
    """

    def __init__(self, env: gym.Env, task: Task, kind: str, ctrl_weight: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, task=task, kind=kind, ctrl_weight=ctrl_weight)
        TaskWrapper.__init__(self, env)
        self.kind, self.ctrl_weight = kind, ctrl_weight
        self.set_task(task)

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        a = np.asarray(action, dtype=np.float64)
        p = self.task.params
        if self.kind == "vel":
            task_reward = -abs(info["x_velocity"] - p["velocity"])
        elif self.kind == "dir":
            task_reward = p["direction"] * info["x_velocity"]
        elif self.kind == "ant-dir":
            task_reward = info["x_velocity"] * p["direction"][0] + info["y_velocity"] * p["direction"][1]
        else:  # ant-goal
            task_reward = -(abs(info["x_position"] - p["goal"][0]) + abs(info["y_position"] - p["goal"][1]))
        reward = task_reward - self.ctrl_weight * float(a @ a)
        if self.kind.startswith("ant"):
            reward += info["reward_contact"] + info["reward_survive"]  # reward_contact is already negative
        info["task_reward"] = task_reward
        return obs, reward, terminated, truncated, info


class _Locomotion(TaskFamily):
    kind = ""
    env_id = ""
    ctrl_weight = 0.05
    env_kwargs: dict = {}

    def __init__(self, horizon: int = 200, batched: bool = True) -> None:
        require(isinstance(horizon, int) and not isinstance(horizon, bool) and horizon >= 1, self.name,
                f"horizon={horizon!r} must be an integer >= 1")
        require(isinstance(batched, bool), self.name, f"batched={batched!r}; allowed: true or false")
        self.horizon, self.batched = horizon, batched
        self._spaces: tuple[gym.Space, gym.Space] | None = None

    def _base_env(self) -> gym.Env:
        return gym.make(self.env_id, max_episode_steps=self.horizon, disable_env_checker=True, **self.env_kwargs)

    def _space(self, i: int) -> gym.Space:
        if self._spaces is None:
            env = self._base_env()
            self._spaces = (env.observation_space, env.action_space)
            env.close()
        return self._spaces[i]

    @property
    def observation_space(self) -> gym.Space:
        return self._space(0)

    @property
    def action_space(self) -> gym.Space:
        return self._space(1)

    def make_env(self, task: Task) -> gym.Env:
        return LocomotionTaskEnv(self._base_env(), task, self.kind, self.ctrl_weight)

    def make_batch(self, threads: int = 1) -> EnvBatch:
        if not self.batched:
            return super().make_batch(threads)
        from metarl.envs.mujoco_batch import LocomotionBatch

        return LocomotionBatch(self, threads)


class HalfCheetahVel(_Locomotion):
    name, kind, env_id = "halfcheetah-vel", "vel", "HalfCheetah-v5"
    description = "HalfCheetah-v5 running at a target velocity ~ U[low, high] (MAML)"

    def __init__(self, low: float = 0.0, high: float = 3.0, horizon: int = 200, batched: bool = True) -> None:
        super().__init__(horizon, batched)
        require(low >= 0 and high >= 0, self.name, f"velocity range [{low}, {high}] is invalid; bounds must be >= 0")
        require(low < high, self.name, f"velocity range [{low}, {high}] is invalid; low must be < high")
        self.low, self.high = float(low), float(high)

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        v = split_stream(rng, split).uniform(self.low, self.high, size=n)
        return self._tasks(split, [{"velocity": float(x)} for x in v])


class HalfCheetahDir(_Locomotion):
    name, kind, env_id = "halfcheetah-dir", "dir", "HalfCheetah-v5"
    description = "HalfCheetah-v5 running forward or backward (MAML)"

    def split_size(self, split):
        super().split_size(split)
        return 2

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        dirs = split_stream(rng, split).choice([1.0, -1.0], size=n)
        return self._tasks(split, [{"direction": float(d)} for d in dirs])


class AntDir(_Locomotion):
    name, kind, env_id = "ant-dir", "ant-dir", "Ant-v5"
    ctrl_weight = 0.005
    env_kwargs = {"include_cfrc_ext_in_observation": False}
    description = "Ant-v5 running forward/backward (MAML), or any planar direction with planar=true"

    def __init__(self, planar: bool = False, horizon: int = 200, batched: bool = True) -> None:
        super().__init__(horizon, batched)
        self.planar = bool(planar)

    def split_size(self, split):
        super().split_size(split)
        return None if self.planar else 2

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        g = split_stream(rng, split)
        if self.planar:
            angles = g.uniform(0, 2 * math.pi, size=n)
            dirs = [(math.cos(a), math.sin(a)) for a in angles]
        else:
            dirs = [(float(d), 0.0) for d in g.choice([1.0, -1.0], size=n)]
        return self._tasks(split, [{"direction": d} for d in dirs])


class AntGoal(_Locomotion):
    name, kind, env_id = "ant-goal", "ant-goal", "Ant-v5"
    ctrl_weight = 0.005
    # The agent must know where it is to reach a position goal.
    env_kwargs = {"include_cfrc_ext_in_observation": False, "exclude_current_positions_from_observation": False}
    description = "Ant-v5 walking to a goal uniform in a disk of radius 3 (ProMP)"

    def __init__(self, radius: float = 3.0, horizon: int = 200, batched: bool = True) -> None:
        super().__init__(horizon, batched)
        require(radius > 0, self.name, f"radius={radius!r} must be > 0")
        self.radius = float(radius)

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        g = split_stream(rng, split)
        angles, r = g.uniform(0, 2 * math.pi, size=n), self.radius * np.sqrt(g.uniform(0, 1, size=n))
        goals = [(float(ri * math.cos(a)), float(ri * math.sin(a))) for a, ri in zip(angles, r)]
        return self._tasks(split, [{"goal": gl} for gl in goals])
