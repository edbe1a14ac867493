"""The env-stepping core shared by every backend.

An :class:`EnvStepper` owns a list of gymnasium envs (one per slot) and steps
the active ones with the actions in a :class:`~metarl.sampling.buffers.StepBuffers`,
writing observations, rewards and flags back into the same buffers. The serial
backend runs it in the driver, the process backend in each worker process, the
Ray backend in each actor: one implementation of episode handling, auto-reset,
horizon truncation and fault reporting.

Why auto-reset here: when an episode of a trial ends, the next one starts on
the same env at once (with the seed the driver put in ``next_seed``), so a
step costs one round trip even when envs finish at different times.

Why success is read here: this is the only code that sees an env's ``info``. A step
succeeds when ``info["success"]`` is truthy (:func:`success_flags`, Meta-World's rule), and
whether the key was there at all is written beside it, so "does this family report
success?" is answered by the envs, not by a flag a plug-in author has to know about.

Why the finiteness check here: a NaN observation or reward must stop
collection, naming the env, task and step, before any update sees it; the
check is one vectorized pass over the whole buffer per step.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from metarl.envs import Task, TaskFamily
from metarl.sampling.buffers import StepBuffers
from metarl.sampling.errors import EnvFailure

#: The info key envs report success under (Meta-World's).
SUCCESS_KEY = "success"


def success_flags(values: Sequence[object]) -> np.ndarray:
    """The per-step success rule: ``info["success"]`` truthy, i.e. a non-zero number.

    One vectorized conversion for a whole step; every path that scores episodes (the sampler's
    stepping core and :func:`metarl.evaluation.rollout.run_episodes`) uses it, so success means
    the same for agents and baselines. A value that is not a number raises ``TypeError`` or
    ``ValueError`` (the caller names the env).
    """
    return np.asarray(values, dtype=float) != 0


class EnvStepper:
    """Steps the envs of a contiguous range of slots in place.

    ``labels[i]`` says where slot ``i`` belongs in the batch (task row and
    trial); it only serves error messages.
    """

    def __init__(self, family: TaskFamily, name: str, horizon: int | None = None) -> None:
        self.family, self.name = family, name
        self.horizon = int(horizon or family.horizon)
        self.envs: list[gym.Env] = []
        self.tasks: list[Task] = []
        self.labels: list[str] = []
        self.buf: StepBuffers | None = None
        self.offset = 0
        self._t: list[int] = []  # plain lists: per-env scalar updates are cheaper than on numpy arrays
        self._episode: list[int] = []

    # -- configuration -------------------------------------------------------------
    def configure(self, tasks: Sequence[Task], labels: Sequence[str], buf: StepBuffers, offset: int = 0) -> None:
        """Point slot ``i`` at ``tasks[i]``; envs are re-targeted in place and kept across calls."""
        for i, task in enumerate(tasks):
            if i < len(self.envs):
                self.envs[i] = self._guard(i, lambda i=i, task=task: self.family.set_task(self.envs[i], task), task)
            else:
                self.envs.append(self._guard(i, lambda task=task: self.family.make_env(task), task))
        self.tasks, self.labels, self.buf, self.offset = list(tasks), list(labels), buf, offset
        self._t = [0] * len(tasks)
        self._episode = [0] * len(tasks)

    def _guard(self, i: int, fn, task: Task):
        try:
            return fn()
        except Exception as exc:
            raise EnvFailure(f"{self.name}: building the env of slot {self.offset + i} for task {task.short()} "
                             f"raised {type(exc).__name__}: {exc}", slot=self.offset + i, task=task.short(),
                             cause=traceback.format_exc()) from exc

    # -- stepping ------------------------------------------------------------------
    def reset(self) -> None:
        """Reset every slot with the seed in ``next_seed``; writes ``obs``."""
        b = self.buf
        for i, env in enumerate(self.envs[: len(self.tasks)]):
            try:
                b.obs[i] = env.reset(seed=int(b.next_seed[i]))[0]
            except Exception as exc:
                raise self._failure(i, "reset", exc) from exc
        self._t = [0] * len(self.tasks)
        self._episode = [0] * len(self.tasks)
        self._check(np.ones(len(self.tasks), bool), "reset")

    def step(self) -> None:
        """Step active slots; an env whose episode ends is reset at once when ``next_seed >= 0``.

        After the call ``obs`` holds the observation the policy sees next (the
        first one of the new episode after a reset), ``final_obs`` the
        observation after the last step of an episode that just ended.
        """
        b, envs, horizon, t = self.buf, self.envs, self.horizon, self._t
        obs_buf, term_buf, trunc_buf = b.obs, b.terminated, b.truncated
        active = np.flatnonzero(b.active).tolist()
        actions = b.actions[active]  # one copy per step: envs may keep the array they are given
        rewards, successes, reported = [], [], []
        for k, i in enumerate(active):
            env = envs[i]
            try:  # covers the buffer write too: a wrong obs shape names the env
                obs, r, term, trunc, info = env.step(actions[k])
                obs_buf[i] = obs
                has = SUCCESS_KEY in info
                success = info[SUCCESS_KEY] if has else False
            except Exception as exc:
                raise self._failure(i, "step", exc) from exc
            rewards.append(r)
            successes.append(success)
            reported.append(has)
            t[i] += 1
            trunc = trunc or t[i] >= horizon
            term_buf[i] = term
            trunc_buf[i] = trunc
            if term or trunc:
                b.final_obs[i] = obs
                b.reward[i] = r
                self._check_slot(i)  # before the reset overwrites obs
                seed = int(b.next_seed[i])
                if seed >= 0:
                    try:
                        obs_buf[i] = env.reset(seed=seed)[0]
                    except Exception as exc:
                        raise self._failure(i, "reset", exc) from exc
                    self._episode[i] += 1
                    t[i] = 0
        try:  # one vectorized write each instead of one numpy scalar write per env
            b.reward[active] = rewards
            b.success[active] = success_flags(successes)
            b.success_reported[active] = reported
        except (TypeError, ValueError) as exc:  # a reward or success that is not a number: find whose
            self._bad_values(active, rewards, successes, exc)
        self._check(b.active, "step")

    # -- faults ---------------------------------------------------------------------
    def _where(self, i: int, step: int) -> str:
        """Where slot ``i`` is; ``step`` is the 0-based index of the step within its episode."""
        return (f"env slot {self.offset + i} ({self.labels[i]}), task {self.tasks[i].short()}, "
                f"episode {int(self._episode[i])} of the trial, step {step}")

    def _failure(self, i: int, what: str, exc: Exception) -> EnvFailure:
        where = self._where(i, int(self._t[i]))
        return EnvFailure(f"{self.name}: {what} of {where} raised {type(exc).__name__}: {exc}",
                          slot=self.offset + i, task=self.tasks[i].short(), cause=traceback.format_exc())

    def _bad_values(self, active: list[int], rewards: list, successes: list, exc: Exception) -> None:
        for i, r, ok in zip(active, rewards, successes, strict=True):
            try:
                float(r), float(ok)
            except (TypeError, ValueError) as bad:
                raise self._failure(i, "step", bad) from bad
        raise exc

    def _check_slot(self, i: int) -> None:
        b = self.buf
        if not (np.isfinite(b.final_obs[i]).all() and np.isfinite(b.reward[i])):
            self._nonfinite(i, "step", int(self._t[i]) - 1)

    def _check(self, active: np.ndarray, what: str) -> None:
        """One vectorized pass; only on failure do we look for the culprit."""
        b = self.buf
        if np.isfinite(b.obs).all() and np.isfinite(b.reward).all():
            return
        obs_bad = ~np.isfinite(b.obs.reshape(len(b.obs), -1)).all(axis=1)
        bad = np.flatnonzero((obs_bad | ~np.isfinite(b.reward)) & active)
        i = int(bad[0]) if len(bad) else int(np.flatnonzero(obs_bad | ~np.isfinite(b.reward))[0])
        t = int(self._t[i])
        self._nonfinite(i, "reset" if what == "reset" or t == 0 else "step", t - 1)

    def _nonfinite(self, i: int, what: str, step: int) -> None:
        b = self.buf
        obs = b.final_obs[i] if what == "step" and not np.isfinite(b.final_obs[i]).all() else b.obs[i]
        where = self._where(i, step) if what == "step" else self._where(i, 0).rsplit(",", 1)[0]
        raise EnvFailure(f"{self.name}: non-finite value after {what} of {where}: "
                         f"reward={float(b.reward[i])!r}, observation={np.array2string(obs, threshold=12)}; "
                         "collection stopped before any update sees it",
                         slot=self.offset + i, task=self.tasks[i].short())

    def close(self) -> None:
        for env in self.envs:
            try:
                env.close()
            except Exception:  # closing is best effort: we are shutting down anyway
                pass
        self.envs = []
