"""A batch of env slots stepped together: the only view of envs the sampler's stepping core has.

Why a batch rather than a list of ``gymnasium.Env``: a family whose physics can be stepped for
many envs at once (the MuJoCo locomotion families, :mod:`metarl.envs.mujoco_batch`) computes
observations and rewards for the whole batch in numpy, which a per-env ``env.step`` loop cannot.
Every family gets one: :meth:`TaskFamily.make_batch <metarl.envs.base.TaskFamily.make_batch>`
returns a :class:`GymEnvBatch` (a loop over plain gymnasium envs, the reference path and the one
every plug-in uses) unless the family ships a faster batch.

The contract (``slots`` are indices into the batch, ``obs_out`` the caller's buffer)::

    batch.configure(tasks)                      # slot i runs tasks[i]; envs kept across calls
    batch.reset(slots, seeds, obs_out)          # writes obs_out[slots]
    res = batch.step(slots, actions, obs_out)   # writes obs_out[slots]; res.reward[k] is slots[k]'s

Episode bookkeeping (horizons, auto-reset, non-finite checks, error messages naming the episode
and step) stays in :class:`~metarl.sampling.stepper.EnvStepper`, written once for every batch.
A batch reports a failing env by raising :class:`SlotError` with the slot; the stepper adds where
that slot is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from metarl.envs.base import Task, TaskFamily

#: The info key envs report success under (Meta-World's).
SUCCESS_KEY = "success"


def success_flags(values: Sequence[object]) -> np.ndarray:
    """The per-step success rule: ``info["success"]`` truthy, i.e. a non-zero number.

    One vectorized conversion for a whole step, used by the sampler's stepping core, which collects
    every scored episode, so success means the same for agents and baselines. A value that is not
    a number raises ``TypeError`` or ``ValueError`` (the caller names the env).
    """
    return np.asarray(values, dtype=float) != 0


class SlotError(Exception):
    """An env of a batch failed: ``slot`` (index into the batch), ``what`` (build, reset, step)
    and the original exception as ``__cause__``/``error``."""

    def __init__(self, slot: int, what: str, error: BaseException, detail: str | None = None) -> None:
        super().__init__(detail or f"{type(error).__name__}: {error}")
        self.slot, self.what, self.error = slot, what, error


@dataclass
class StepResult:
    """What one batched step returns, one entry per stepped slot (observations went to ``obs_out``)."""

    reward: np.ndarray  #: float64
    terminated: np.ndarray  #: bool
    truncated: np.ndarray  #: bool (the env's own truncation; the stepper adds the horizon)
    success: np.ndarray  #: bool, :func:`success_flags` of ``info["success"]``
    reported: np.ndarray  #: bool, whether ``info`` had the key at all


class EnvBatch(ABC):
    """Slots of one family, stepped together."""

    @abstractmethod
    def configure(self, tasks: Sequence[Task]) -> None:
        """Point slot ``i`` at ``tasks[i]``, re-targeting envs in place where it can."""

    @abstractmethod
    def reset(self, slots: np.ndarray, seeds: Sequence[int | None], obs_out: np.ndarray) -> None:
        """Reset ``slots`` (``seeds[k]`` for ``slots[k]``; ``None`` continues the env's generator)."""

    @abstractmethod
    def step(self, slots: np.ndarray, actions: np.ndarray, obs_out: np.ndarray) -> StepResult:
        """Step ``slots`` with ``actions[k]`` for ``slots[k]``."""

    def step_start(self, slots: np.ndarray, actions: np.ndarray) -> None:
        """:meth:`step` in two halves, so a caller can do its own work while the envs step.

        By default the whole step runs in :meth:`step_wait`; a batch that steps on threads starts
        them here.
        """
        self._pending = (slots, actions)

    def step_wait(self, obs_out: np.ndarray) -> StepResult:
        slots, actions = self._pending
        return self.step(slots, actions, obs_out)

    def close(self) -> None:  # noqa: B027 - optional hook: a batch holding nothing closes as is
        """Release the envs (best effort)."""


class GymEnvBatch(EnvBatch):
    """A Python loop over plain ``gymnasium.Env`` objects from :meth:`TaskFamily.make_env`.

    The reference path: what any family, built-in or plugged in, gets unless it ships a batch.
    """

    def __init__(self, family: TaskFamily) -> None:
        self.family = family
        self.envs: list[gym.Env] = []
        self.keys: list[Any] = []
        self.idle: dict[Any, list[gym.Env]] = {}  #: envs no slot uses now, by :meth:`TaskFamily.env_key`
        self.builds = 0  #: envs built so far (``make_env`` calls)

    def configure(self, tasks: Sequence[Task]) -> None:
        """Slot ``i`` keeps its env if its new task has the same key, else takes an idle env of that
        key, else builds one. Idle envs are kept for later calls, at most as many as there are
        slots (the oldest go first), so a batch holds at most twice its slots in envs."""
        keys = [self.family.env_key(t) for t in tasks]
        old, old_keys = self.envs, self.keys
        keep = {i: env for i, env in enumerate(old) if i < len(tasks) and old_keys[i] == keys[i]}
        for i, env in enumerate(old):
            if i not in keep:
                self.idle.setdefault(old_keys[i], []).append(env)
        self.envs, self.keys = [], []
        for i, (task, key) in enumerate(zip(tasks, keys, strict=True)):
            env = keep.get(i) or (self.idle[key].pop(0) if self.idle.get(key) else None)
            try:
                if env is None:
                    env = self.family.make_env(task)
                    self.builds += 1
                else:
                    env = self.family.set_task(env, task)
            except Exception as exc:
                raise SlotError(i, "build", exc) from exc
            self.envs.append(env)
            self.keys.append(key)
        self._bound_idle(len(tasks))

    def _bound_idle(self, limit: int) -> None:
        spare = [(key, env) for key, envs in self.idle.items() for env in envs]
        for key, env in spare[: max(0, len(spare) - limit)]:
            self.idle[key].remove(env)
            try:
                env.close()
            except Exception:  # closing is best effort
                pass
        self.idle = {k: v for k, v in self.idle.items() if v}

    def reset(self, slots: np.ndarray, seeds: Sequence[int | None], obs_out: np.ndarray) -> None:
        envs = self.envs
        for i, seed in zip(slots.tolist(), seeds, strict=True):
            try:
                obs_out[i] = envs[i].reset(seed=seed)[0]
            except Exception as exc:
                raise SlotError(i, "reset", exc) from exc

    def step(self, slots: np.ndarray, actions: np.ndarray, obs_out: np.ndarray) -> StepResult:
        envs, active = self.envs, slots.tolist()
        n = len(active)
        rewards, successes = [], []
        reported, terminated, truncated = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        for k, i in enumerate(active):
            try:  # covers the buffer write too: a wrong obs shape names the env
                obs, r, term, trunc, info = envs[i].step(actions[k])
                obs_out[i] = obs
                has = SUCCESS_KEY in info
                success = info[SUCCESS_KEY] if has else False
            except Exception as exc:
                raise SlotError(i, "step", exc) from exc
            rewards.append(r)
            successes.append(success)
            reported[k], terminated[k], truncated[k] = has, term, trunc
        try:  # one vectorized conversion each instead of one numpy scalar write per env
            reward = np.asarray(rewards, dtype=np.float64)
            success_arr = success_flags(successes)
        except (TypeError, ValueError):  # a reward or success that is not a number: find whose
            for k, (r, ok) in enumerate(zip(rewards, successes, strict=True)):
                try:
                    float(r), float(ok)
                except (TypeError, ValueError) as bad:
                    raise SlotError(active[k], "step", bad) from bad
            raise
        return StepResult(reward, terminated, truncated, success_arr, reported)

    def close(self) -> None:
        for env in self.envs + [e for envs in self.idle.values() for e in envs]:
            try:
                env.close()
            except Exception:  # closing is best effort: we are shutting down anyway
                pass
        self.envs, self.keys, self.idle = [], [], {}
