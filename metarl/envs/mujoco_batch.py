"""The MuJoCo locomotion families stepped as one batch: physics in C, everything else in numpy.

Why: a gymnasium ``HalfCheetah-v5`` step is about 40 µs, of which the physics (``mj_step`` x 5)
is about half; the rest is Python (wrappers, ``_get_obs``, reward terms, info dicts), paid once
per env per step. Here every slot keeps its own ``MjData`` and the Python per env per step is a
control write, one ``mj_step(nstep=frame_skip)`` call and one state read (the writes and reads on
the caller's thread, the steps on helper threads as well; see :meth:`LocomotionBatch.step_start`); observations, rewards,
terminations and infos are computed for the whole batch at once from the stacked state.

Why plain ``mj_step`` over per-env ``MjData`` and not ``mujoco.rollout``: measured here (``metarl
bench sampling`` prints both), threads calling ``mj_step`` are faster for a batch of
envs that step once per policy call: ``mj_step`` releases the GIL, so two threads use both cores,
and no state has to be copied in and out of the rollout's scratch data. It is also what makes the
batch exact: MuJoCo's constraint solver starts from the previous step's accelerations
(``qacc_warmstart``), which ``mujoco.rollout`` neither returns nor keeps per env, and a
trajectory without it drifts from gymnasium's within 20 steps.

Exactness (``tests/test_envs_mujoco_batch.py``): from the same task, reset seed and actions,
observations, rewards, terminations and every info value equal gymnasium's ``HalfCheetah-v5`` /
``Ant-v5`` under :class:`~metarl.envs.locomotion.LocomotionTaskEnv` bit for bit. The same
floating-point operations run in the same order: the same ``MjData`` calls (``mj_resetData``, the
noisy ``qpos``/``qvel`` from a generator seeded as gymnasium seeds it, ``mj_forward``; per step
``mj_step`` and, for Ant, ``mj_rnePostConstraint`` for the contact forces), Ant's torso position
read from ``xpos`` as gymnasium reads it (kinematics of the last substep, not of the new
``qpos``), row-wise numpy reductions that equal the 1-D ones, and the dot product as a stacked
``matmul``, which runs the same kernel as the 1-D ``a @ a``.

Faults: MuJoCo resets an env whose state blows up (``mjWARN_BADQACC`` and friends) and carries
on; gymnasium passes that silently. Here the reset shows as simulated time that did not advance
by ``frame_skip`` timesteps, checked for the whole batch at once, and the step fails naming the
slot and MuJoCo's warning (the stepper adds the task, episode and step).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np
from gymnasium.utils import seeding

from metarl.envs.env_batch import EnvBatch, SlotError, StepResult

if TYPE_CHECKING:
    from metarl.envs.base import Task
    from metarl.envs.locomotion import _Locomotion

_STATE = int(mujoco.mjtState.mjSTATE_TIME | mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL)


#: The task parameter each locomotion kind reads (scalars for HalfCheetah, 2-vectors for Ant).
_TASK_KEY = {"vel": "velocity", "dir": "direction", "ant-dir": "direction", "ant-goal": "goal"}


def _rowdot(a: np.ndarray) -> np.ndarray:
    """``[a[k] @ a[k] for k]`` bitwise: a stacked matmul runs the 1-D dot's kernel (einsum does not)."""
    return (a[:, None, :] @ a[:, :, None])[:, 0, 0]


class UnstableSimulation(RuntimeError):
    """MuJoCo reset an env mid-step because its state blew up."""


class _StepThreads:
    """Helper threads that stay alive between steps, each started and joined by a pair of locks.

    Why not a ``ThreadPoolExecutor``: its ``submit``/``result`` build a future, a work item and a
    condition (a fresh lock per wait) on every step, paid on the sampler's serial path; measured
    here that is about 50 µs per round trip, a tenth of a 40-env HalfCheetah step on 2 cores.
    A lock released by one thread and acquired by another is a semaphore post and wait. The
    threads hold no reference to this object, so dropping it without :meth:`close` ends them too.
    """

    def __init__(self, n: int) -> None:
        self._go = [threading.Lock() for _ in range(n)]
        self._done = [threading.Lock() for _ in range(n)]
        for lock in (*self._go, *self._done):
            lock.acquire()
        self._job: list[Any] = [None]  # (fn, args) while a step runs; None tells the threads to end
        self._errors: list[BaseException | None] = [None] * n
        self._running = 0
        self._threads = [threading.Thread(target=_serve, args=(self._go[i], self._done[i], self._job, self._errors, i),
                                          daemon=True, name=f"metarl-mujoco-{i}") for i in range(n)]
        for t in self._threads:
            t.start()

    def start(self, fn: Any, args: tuple[Any, ...], n: int) -> None:
        """Run ``fn(*args)`` on the first ``n`` threads."""
        self._job[0], self._running = (fn, args), n
        for lock in self._go[:n]:
            lock.release()

    def wait(self) -> list[BaseException]:
        """Wait for the threads :meth:`start` started; the errors they raised."""
        errors = []
        for i in range(self._running):
            self._done[i].acquire()
            error, self._errors[i] = self._errors[i], None
            if error is not None:
                errors.append(error)
        self._job[0], self._running = None, 0  # drop the step's arrays and MjData references
        return errors

    def close(self, join: bool = True) -> None:
        if not self._threads:
            return
        self._job[0] = None
        for lock in self._go:
            lock.release()
        if join:
            for t in self._threads:
                t.join()
        self._threads = []

    def __del__(self) -> None:
        self.close(join=False)


def _serve(go: threading.Lock, done: threading.Lock, job: list[Any], errors: list[BaseException | None],
           i: int) -> None:
    """A helper thread's loop: wait for ``go``, run the job (or end when there is none), post ``done``."""
    while True:
        go.acquire()
        work = job[0]
        if work is None:
            return
        try:
            work[0](*work[1])
        except BaseException as exc:  # handed to the caller's thread in wait()
            errors[i] = exc
        work = None  # hold nothing of the step while waiting for the next one
        done.release()


class LocomotionBatch(EnvBatch):
    """Slots of one locomotion family (:mod:`metarl.envs.locomotion`) on one shared ``MjModel``.

    ``threads``: how many threads step the physics (the stepper gives each worker its share of
    the cores). Results do not depend on it: every env is stepped by the same calls whatever
    thread runs them.
    """

    def __init__(self, family: _Locomotion, threads: int = 1) -> None:
        env = family._base_env().unwrapped  # the reference env: model, initial state, constants
        self.family, self.kind, self.ctrl_weight = family, family.kind, family.ctrl_weight
        self.model: mujoco.MjModel = env.model
        self.frame_skip, self.dt = int(env.frame_skip), float(env.dt)
        self._min_advance = (self.frame_skip - 0.5) * float(self.model.opt.timestep)
        self.init_qpos, self.init_qvel = env.init_qpos.copy(), env.init_qvel.copy()
        self.noise = float(env._reset_noise_scale)
        self.gym_ctrl_weight = float(env._ctrl_cost_weight)
        self.forward_weight = float(env._forward_reward_weight)
        self.ant = family.kind.startswith("ant")
        if self.ant:
            if env._include_cfrc_ext_in_observation:
                raise ValueError("the batched Ant path does not put contact forces in observations")
            self.contact_weight = float(env._contact_cost_weight)
            self.contact_range = tuple(float(x) for x in env._contact_force_range)
            self.healthy_reward, self.z_range = float(env._healthy_reward), tuple(env._healthy_z_range)
            self.terminate_unhealthy = bool(env._terminate_when_unhealthy)
            self.main_body = env._main_body
            self.skip = 2 if env._exclude_current_positions_from_observation else 0
        else:
            self.skip = 1 if env._exclude_current_positions_from_observation else 0
        env.close()
        self.threads = max(1, int(threads))
        self._pool: _StepThreads | None = None
        self._started: tuple[Any, ...] | None = None
        m = self.model
        self.nq, self.nv, self.nu = m.nq, m.nv, m.nu
        self.width = mujoco.mj_stateSize(m, _STATE)
        self.datas: list[mujoco.MjData] = []
        self._ctrl: list[np.ndarray] = []  # per-slot views into MjData, made once (a view costs ~1 µs)
        self._xy: list[np.ndarray] = []
        self._cfrc: list[np.ndarray] = []
        self._rngs: list[np.random.Generator | None] = []
        self.state = np.zeros((0, self.width))  # [slot, time | qpos | qvel] after the last reset/step
        self.xy_prev = np.zeros((0, 2))  # Ant: torso xpos as gymnasium reads it before the next step
        self.params: dict[str, np.ndarray] = {}

    # -- tasks -----------------------------------------------------------------------
    def configure(self, tasks: Sequence[Task]) -> None:
        m = self.model
        while len(self.datas) < len(tasks):
            d = mujoco.MjData(m)
            self.datas.append(d)
            self._ctrl.append(d.ctrl)
            if self.ant:
                self._xy.append(d.body(self.main_body).xpos[:2])
                self._cfrc.append(d.cfrc_ext.reshape(-1))
            self._rngs.append(None)
        n = len(tasks)
        if len(self.state) < n:
            self.state = np.vstack([self.state, np.zeros((n - len(self.state), self.width))])
            self.xy_prev = np.vstack([self.xy_prev, np.zeros((n - len(self.xy_prev), 2))])
        key = _TASK_KEY[self.kind]
        try:
            values = np.array([t.params[key] for t in tasks], float)
            self.params = {key: values.reshape(n, 2) if self.ant else values}
        except (KeyError, TypeError, ValueError) as exc:
            bad = next((i for i, t in enumerate(tasks) if key not in t.params), 0)
            raise SlotError(bad, "build", exc) from exc

    # -- reset -------------------------------------------------------------------------
    def reset(self, slots: np.ndarray, seeds: Sequence[int | None], obs_out: np.ndarray) -> None:
        m, s = self.model, self.noise
        for i, seed in zip(slots.tolist(), seeds, strict=True):
            try:
                if seed is not None or self._rngs[i] is None:
                    self._rngs[i] = seeding.np_random(seed)[0]
                g, d = self._rngs[i], self.datas[i]
                mujoco.mj_resetData(m, d)
                d.qpos[:] = self.init_qpos + g.uniform(low=-s, high=s, size=self.nq)
                d.qvel[:] = self.init_qvel + s * g.standard_normal(self.nv)
                mujoco.mj_forward(m, d)
                mujoco.mj_getState(m, d, self.state[i], _STATE)
                if self.ant:
                    self.xy_prev[i] = self._xy[i]
            except Exception as exc:
                raise SlotError(i, "reset", exc) from exc
        obs_out[slots] = self._observe(self.state[slots])

    def _observe(self, state: np.ndarray) -> np.ndarray:
        """gymnasium's ``concatenate(qpos[skip:], qvel)``: a view, since the state row is ``time | qpos | qvel``."""
        return state[:, 1 + self.skip :]

    # -- step --------------------------------------------------------------------------
    def step(self, slots: np.ndarray, actions: np.ndarray, obs_out: np.ndarray) -> StepResult:
        self.step_start(slots, actions)
        return self.step_wait(obs_out)

    def step_with_info(self, slots: np.ndarray, actions: np.ndarray,
                       obs_out: np.ndarray) -> tuple[StepResult, dict[str, np.ndarray]]:
        """:meth:`step`, plus gymnasium's info values (and ``task_reward``) as arrays over the slots."""
        self.step_start(slots, actions)
        return self._finish(obs_out, with_info=True)

    def step_start(self, slots: np.ndarray, actions: np.ndarray) -> None:
        """Write the controls, then start the physics on the helper threads; the caller's thread
        joins in :meth:`step_wait`.

        So a serial sampler records the step's inputs while the physics runs. The threads run
        nothing but ``mj_step`` (and Ant's ``mj_rnePostConstraint``) between two looks at a shared
        counter: every Python operation per env (control write, state read) happens on the
        caller's thread before and after. Why: ``mj_step`` releases the GIL, but a thread coming
        back from it must take the GIL again, and when another thread holds it that costs a
        futex wake (tens of µs on this VM, against 17 µs of HalfCheetah physics). Measured side
        by side at 40 envs on 2 cores, keeping the per-env Python out of the threads (and
        :class:`_StepThreads` for the pool) took HalfCheetah from 1.83x to about 2.0x the stock
        loop. Threads take the next unstepped env from the counter rather than a fixed share, so
        one thread's slow envs (more contacts) do not leave another idle (``next()`` on an
        ``itertools.count`` is atomic under the GIL).
        """
        n = len(slots)
        rows = slots.tolist()
        datas = [self.datas[i] for i in rows]
        ctrl = self._ctrl
        values = np.asarray(actions, dtype=np.float64)  # MjData's dtype: one conversion for the batch
        for i, a in zip(rows, values, strict=True):
            try:
                ctrl[i][:] = a
            except Exception as exc:
                raise SlotError(i, "step", exc) from exc
        args = (rows, datas, itertools.count())
        helpers = min(self.threads, max(1, n // 4)) - 1  # a thread for fewer than 4 envs costs more than it saves
        if helpers and self._pool is None:
            self._pool = _StepThreads(self.threads - 1)
        if helpers:
            self._pool.start(self._advance, args, helpers)
        self._started = (slots, actions, values, args, helpers)

    def step_wait(self, obs_out: np.ndarray) -> StepResult:
        return self._finish(obs_out, with_info=False)[0]

    def _finish(self, obs_out: np.ndarray, with_info: bool) -> tuple[StepResult, dict[str, np.ndarray]]:
        slots, actions, values, args, helpers = self._started
        self._started = None
        errors: list[BaseException] = []
        try:
            self._advance(*args)  # every env not yet taken by a helper thread
        except BaseException as exc:  # still wait for the helpers: they use our MjData
            errors.append(exc)
        if helpers:
            errors += self._pool.wait()
        if errors:
            raise errors[0]
        rows, datas, _ = args
        n = len(slots)
        m, get_state = self.model, mujoco.mj_getState
        # a contiguous range of slots (the usual case) indexes with views instead of copies, and
        # the new states are read straight into the batch's state rows
        contiguous = bool(n) and rows[-1] - rows[0] == n - 1
        span = slice(rows[0], rows[0] + n) if contiguous else slots
        t_before, x_before = self.state[span, 0].copy(), self.state[span, 1].copy()
        after = self.state[span] if contiguous else np.empty((n, self.width))
        for k, d in enumerate(datas):
            get_state(m, d, after[k], _STATE)
        if not contiguous:
            self.state[span] = after
        self._check_time(slots, t_before, after[:, 0])
        qpos = after[:, 1 : 1 + self.nq]
        obs_out[span] = self._observe(after)
        p, info = self.params, {}
        ctrl = self.ctrl_weight * _rowdot(values)
        if with_info:  # gymnasium's own control cost, in the action's dtype as gymnasium computes it
            info["reward_ctrl"] = -(self.gym_ctrl_weight * np.sum(np.square(actions), axis=1))
        if not self.ant:
            x_vel = (qpos[:, 0] - x_before) / self.dt
            task_reward = -np.abs(x_vel - p["velocity"][span]) if self.kind == "vel" else p["direction"][span] * x_vel
            reward = task_reward - ctrl
            terminated = np.zeros(n, bool)
            if with_info:
                info.update(x_position=qpos[:, 0], x_velocity=x_vel, reward_forward=self.forward_weight * x_vel)
        else:
            xy_after = np.array([self._xy[i] for i in rows])  # the torso after the step, as gymnasium reads it
            cfrc = np.array([self._cfrc[i] for i in rows])  # contact forces from mj_rnePostConstraint
            xy_vel = (xy_after - self.xy_prev[span]) / self.dt
            self.xy_prev[span] = xy_after
            x_vel, y_vel = xy_vel[:, 0], xy_vel[:, 1]
            lo, hi = self.z_range
            healthy = np.isfinite(after[:, 1:]).all(axis=1) & (lo <= qpos[:, 2]) & (qpos[:, 2] <= hi)
            survive = healthy * self.healthy_reward
            contact = self.contact_weight * np.sum(np.square(np.clip(cfrc, *self.contact_range)), axis=1)
            if self.kind == "ant-dir":
                d = p["direction"][span]
                task_reward = x_vel * d[:, 0] + y_vel * d[:, 1]
            else:
                g = p["goal"][span]
                task_reward = -(np.abs(qpos[:, 0] - g[:, 0]) + np.abs(qpos[:, 1] - g[:, 1]))
            reward = (task_reward - ctrl) + (-contact + survive)  # LocomotionTaskEnv's order of additions
            terminated = ~healthy if self.terminate_unhealthy else np.zeros(n, bool)
            if with_info:
                info.update(x_position=qpos[:, 0], y_position=qpos[:, 1],
                            distance_from_origin=np.sqrt(_rowdot(np.ascontiguousarray(qpos[:, 0:2]))),
                            x_velocity=x_vel, y_velocity=y_vel, reward_forward=x_vel * self.forward_weight,
                            reward_contact=-contact, reward_survive=survive)
        if with_info:
            info["task_reward"] = task_reward
        no = np.zeros(n, bool)
        return StepResult(reward, terminated, no, no, no), info

    def _advance(self, rows: list[int], datas: list[mujoco.MjData], order: Iterator[int]) -> None:
        """Step the envs the shared counter hands out until none is left: C calls only."""
        m, nstep, ant, n = self.model, self.frame_skip, self.ant, len(datas)
        step, rne = mujoco.mj_step, mujoco.mj_rnePostConstraint
        for k in order:
            if k >= n:
                return
            try:
                step(m, datas[k], nstep)
                if ant:  # gymnasium computes the contact forces after every step; only Ant reads them
                    rne(m, datas[k])
            except Exception as exc:
                raise SlotError(rows[k], "step", exc) from exc

    def _check_time(self, slots: np.ndarray, t_before: np.ndarray, t_after: np.ndarray) -> None:
        """MuJoCo's automatic reset of a blown-up env restarts its clock: find such slots in one pass.

        A step advances the clock by ``frame_skip`` timesteps (to rounding); after a reset inside
        the step the clock reads at most ``frame_skip`` timesteps from zero, so the env's clock
        advanced by less than ``frame_skip - 1/2`` timesteps (or went back). One subtraction and
        one comparison for the batch: this runs on the sampler's serial path every step.
        """
        short = (t_after - t_before) < self._min_advance
        if short.any():
            k = int(np.flatnonzero(short)[0])
            i = int(slots[k])
            expected = float(t_before[k])
            for _ in range(self.frame_skip):
                expected += self.model.opt.timestep  # the additions mj_step makes, in its order
            warnings = self._warnings(self.datas[i])
            exc = UnstableSimulation(f"MuJoCo reported {warnings} and reset the simulation "
                                     f"(time {float(t_after[k])!r}, expected {expected!r})")
            raise SlotError(i, "step", exc)

    @staticmethod
    def _warnings(d: mujoco.MjData) -> str:
        found = []
        for name, value in mujoco.mjtWarning.__members__.items():
            stat = d.warning[int(value)] if name != "mjNWARNING" else None
            if stat is not None and stat.number:
                found.append(f"{name} (x{stat.number}, info {stat.lastinfo})")
        return ", ".join(found) or "no warning"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.datas, self._ctrl, self._xy, self._cfrc = [], [], [], []

    def __getstate__(self) -> dict[str, Any]:  # never shipped: workers build their own from the family
        raise TypeError("LocomotionBatch holds MjData and threads; build one per process from the family")
