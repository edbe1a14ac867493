"""The env-stepping core shared by every backend.

An :class:`EnvStepper` owns the :class:`~metarl.envs.env_batch.EnvBatch` of a contiguous range
of slots (from :meth:`TaskFamily.make_batch <metarl.envs.base.TaskFamily.make_batch>`: a loop
over gymnasium envs, or a family's own batch such as the MuJoCo locomotion one) and steps the
active slots with the actions in a :class:`~metarl.sampling.buffers.StepBuffers`, writing
observations, rewards and flags back into the same buffers. The serial backend runs it in the
driver, the process backend in each worker process, the Ray backend in each actor: one
implementation of episode handling, auto-reset, horizon truncation and fault reporting, over
whatever batch the family provides.

Why auto-reset here: when an episode of a trial ends, the next one starts on
the same env at once (with the seed the driver put in ``next_seed``), so a
step costs one round trip even when envs finish at different times.

Why success is read in the batch: only it sees an env's ``info``. A step succeeds when
``info["success"]`` is truthy (:func:`success_flags`, Meta-World's rule), and whether the key
was there at all is written beside it, so "does this family report success?" is answered by the
envs, not by a flag a plug-in author has to know about.

Why the finiteness check here: a NaN observation or reward must stop
collection, naming the env, task and step, before any update sees it; the
check is one vectorized pass over the whole buffer per step.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from metarl.envs import Task, TaskFamily
from metarl.envs.env_batch import SUCCESS_KEY, EnvBatch, SlotError, success_flags
from metarl.sampling.buffers import StepBuffers
from metarl.sampling.errors import EnvFailure

__all__ = ["SUCCESS_KEY", "EnvStepper", "success_flags"]


class EnvStepper:
    """Steps the envs of a contiguous range of slots in place.

    ``labels[i]`` says where slot ``i`` belongs in the batch (task row and
    trial); it only serves error messages. ``threads``: the cores this stepper may use
    (a family's batch may step its physics on that many threads).
    """

    def __init__(self, family: TaskFamily, name: str, horizon: int | None = None, threads: int = 1) -> None:
        self.family, self.name = family, name
        self.horizon = int(horizon or family.horizon)
        self.batch: EnvBatch = family.make_batch(threads)
        self.tasks: list[Task] = []
        self.labels: list[str] = []
        self.buf: StepBuffers | None = None
        self.offset = 0
        self._t = np.zeros(0, np.int64)
        self._episode = np.zeros(0, np.int64)
        self._active = np.zeros(0, np.int64)

    # -- configuration -------------------------------------------------------------
    def configure(self, tasks: Sequence[Task], labels: Sequence[str], buf: StepBuffers, offset: int = 0) -> None:
        """Point slot ``i`` at ``tasks[i]``; envs are re-targeted in place and kept across calls."""
        self.tasks, self.labels, self.offset = list(tasks), list(labels), offset
        try:
            self.batch.configure(self.tasks)
        except SlotError as exc:
            i, task = exc.slot, self.tasks[exc.slot]
            raise EnvFailure(f"{self.name}: building the env of slot {offset + i} for task {task.short()} "
                             f"raised {type(exc.error).__name__}: {exc.error}", slot=offset + i, task=task.short(),
                             cause=_cause(exc)) from exc.error
        self.buf = buf
        self._t = np.zeros(len(tasks), np.int64)
        self._episode = np.zeros(len(tasks), np.int64)

    def buffers(self) -> StepBuffers:
        """The buffers of the last :meth:`configure`; stepping before it is a caller's bug."""
        if self.buf is None:
            raise RuntimeError(f"{self.name}: configure() the stepper before resetting or stepping it")
        return self.buf

    # -- stepping ------------------------------------------------------------------
    def reset(self) -> None:
        """Reset every slot with the seed in ``next_seed``; writes ``obs``."""
        b, n = self.buffers(), len(self.tasks)
        self._call(self.batch.reset, np.arange(n), [int(s) for s in b.next_seed[:n]], b.obs)
        self._t[:] = 0
        self._episode[:] = 0
        self._check(np.ones(n, bool), "reset")

    def step(self) -> None:
        """Step active slots; an env whose episode ends is reset at once when ``next_seed >= 0``.

        After the call ``obs`` holds the observation the policy sees next (the
        first one of the new episode after a reset), ``final_obs`` the
        observation after the last step of an episode that just ended.
        """
        self.step_start()
        self.step_wait()

    def step_start(self) -> None:
        """The first half of :meth:`step`: hand the actions to the batch (which may start stepping)."""
        b = self.buffers()
        self._active = np.flatnonzero(b.active)
        # one copy of the actions per step: envs may keep the array they are given
        self._call(self.batch.step_start, self._active, b.actions[self._active])

    def step_wait(self) -> None:
        """The second half of :meth:`step`: results into the buffers, ended episodes reset."""
        b, active = self.buffers(), self._active
        res = self._call(self.batch.step_wait, b.obs)
        self._t[active] += 1
        truncated = res.truncated | (self._t[active] >= self.horizon)
        b.terminated[active] = res.terminated
        b.truncated[active] = truncated
        b.reward[active] = res.reward
        b.success[active] = res.success
        b.success_reported[active] = res.reported
        done = active[res.terminated | truncated]
        if len(done):
            b.final_obs[done] = b.obs[done]
            for i in done.tolist():  # before the reset overwrites obs
                self._check_slot(i)
            seeds = b.next_seed[done]
            again = done[seeds >= 0]
            if len(again):
                self._call(self.batch.reset, again, [int(s) for s in seeds[seeds >= 0]], b.obs)
                self._episode[again] += 1
                self._t[again] = 0
        self._check(b.active, "step")

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except SlotError as exc:
            raise self._failure(exc.slot, exc.what, exc.error, _cause(exc)) from exc.error

    # -- faults ---------------------------------------------------------------------
    def _where(self, i: int, step: int) -> str:
        """Where slot ``i`` is; ``step`` is the 0-based index of the step within its episode."""
        return (f"env slot {self.offset + i} ({self.labels[i]}), task {self.tasks[i].short()}, "
                f"episode {int(self._episode[i])} of the trial, step {step}")

    def _failure(self, i: int, what: str, exc: BaseException, cause: str | None = None) -> EnvFailure:
        where = self._where(i, int(self._t[i]))
        return EnvFailure(f"{self.name}: {what} of {where} raised {type(exc).__name__}: {exc}",
                          slot=self.offset + i, task=self.tasks[i].short(), cause=cause or traceback.format_exc())

    def _check_slot(self, i: int) -> None:
        b = self.buffers()
        if not (np.isfinite(b.final_obs[i]).all() and np.isfinite(b.reward[i])):
            self._nonfinite(i, "step", int(self._t[i]) - 1)

    def _check(self, active: np.ndarray, what: str) -> None:
        """One vectorized pass; only on failure do we look for the culprit."""
        b = self.buffers()
        if np.isfinite(b.obs).all() and np.isfinite(b.reward).all():
            return
        obs_bad = ~np.isfinite(b.obs.reshape(len(b.obs), -1)).all(axis=1)
        bad = np.flatnonzero((obs_bad | ~np.isfinite(b.reward)) & active)
        i = int(bad[0]) if len(bad) else int(np.flatnonzero(obs_bad | ~np.isfinite(b.reward))[0])
        t = int(self._t[i])
        self._nonfinite(i, "reset" if what == "reset" or t == 0 else "step", t - 1)

    def _nonfinite(self, i: int, what: str, step: int) -> None:
        b = self.buffers()
        obs = b.final_obs[i] if what == "step" and not np.isfinite(b.final_obs[i]).all() else b.obs[i]
        where = self._where(i, step) if what == "step" else self._where(i, 0).rsplit(",", 1)[0]
        raise EnvFailure(f"{self.name}: non-finite value after {what} of {where}: "
                         f"reward={float(b.reward[i])!r}, observation={np.array2string(obs, threshold=12)}; "
                         "collection stopped before any update sees it",
                         slot=self.offset + i, task=self.tasks[i].short())

    def close(self) -> None:
        try:
            self.batch.close()
        except Exception:  # closing is best effort: we are shutting down anyway
            pass


def _cause(exc: SlotError) -> str:
    """The traceback of the env's own error (where the user's code failed), not of the batch."""
    return "".join(traceback.format_exception(exc.error))
