"""Test-only task families whose envs hang, importable by spawned workers, Ray actors and ``metarl train``.

Spec form: ``tests.sampling_hanging_envs:hang?mode=busy&at=3&task=1``. The env is the toy env of
:mod:`tests.sampling_faulty_envs` (obs = [goal, t, seed], reward = action[0]) except that task
``task`` (-1: every task) hangs at step ``at`` of each episode (-1: in ``reset`` instead), in one of
the ways a real env hangs. As there, a task's params override the family's
(``tasks_with(family, n, task=1, mode="native")``), so one sampler serves several scenarios.

* ``sleep``: blocked in a system call (``time.sleep(3600)``);
* ``busy``: a pure-Python loop that never ends;
* ``native``: blocked with SIGALRM masked, as native code that never returns to the
  interpreter looks to a signal-based timeout (only killing the process ends it).

With ``METARL_TEST_HANG_MARKER=PATH`` in the environment, an env about to hang writes its pid
there, so a test driving a subprocess knows the hang has begun.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import gymnasium as gym

from metarl.envs import Task
from tests.sampling_faulty_envs import ToyEnv, ToyFamily

PATH = "tests.sampling_hanging_envs:hang"
MODES = ("sleep", "busy", "native")
MARKER_ENV = "METARL_TEST_HANG_MARKER"


def hang_forever(mode: str) -> None:
    """Never return (by ``mode``); only an exception raised in here, or killing the process, ends it."""
    marker = os.environ.get(MARKER_ENV)
    if marker:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
    if mode == "sleep":
        while True:
            time.sleep(3600)
    if mode == "busy":
        n = 0
        while True:
            n += 1
    if mode == "native":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            time.sleep(3600)
    raise ValueError(f"mode={mode!r}; allowed: {', '.join(MODES)}")


class HangEnv(ToyEnv):
    def _hangs(self) -> bool:
        task = self.cfg["task"]
        return task == -1 or self.task.index == task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self.cfg["at"] < 0 and self._hangs():
            hang_forever(self.cfg["mode"])
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self._t == self.cfg["at"] and self._hangs():
            hang_forever(self.cfg["mode"])
        return super().step(action)


class HangFamily(ToyFamily):
    description = "test-only: the toy env, hanging at a given step"

    def __init__(self, mode: str, at: int, task: int) -> None:
        super().__init__(horizon=10)
        self.cfg.update(mode=mode, at=at, task=task)
        self.name = f"{PATH}?mode={mode}&at={at}&task={task}"

    def make_env(self, task: Task) -> gym.Env:
        return HangEnv(task, self.cfg)


def hang(mode: str = "sleep", at: int = 3, task: int = -1) -> HangFamily:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; allowed: {', '.join(MODES)}")
    return HangFamily(mode, at, task)


def spec(mode: str = "sleep", at: int = 3, task: int = -1) -> str:
    return hang(mode, at, task).name
