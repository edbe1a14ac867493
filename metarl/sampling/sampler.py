"""The sampler: tasks + actor -> :class:`Episodes`, on any backend.

The loop below is the only place that knows about trials, episodes and the
output layout; backends only step envs (see :mod:`metarl.sampling.backend`).
Per step it does one batched ``actor.act`` for every (task, slot) env, one
torch<->numpy conversion each way, and a few vectorized numpy writes into
preallocated output arrays: that is what keeps ``serial`` within a few percent
of a bare ``env.step`` loop.

Determinism: the reset seed of episode ``j`` of task row ``i`` is a hash of
``(seed, i, j)``, the actor's noise comes from ``torch.Generator().manual_seed(seed)``
and inference runs in the driver on the same batch shape whatever the
backend, so one seed gives bit-identical Episodes on ``serial``, ``process`` and ``ray``.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch

from metarl.core.device import torch_threads
from metarl.envs import Task, TaskFamily, make_family
from metarl.sampling.actor import Actor
from metarl.sampling.backend import Backend
from metarl.sampling.buffers import Layout
from metarl.sampling.episodes import Episodes, tensor_fields
from metarl.sampling.errors import SamplerConfigError, SamplerError

BACKENDS = ("serial", "process", "ray", "tensor", "auto")
_MASK64 = np.uint64(2**64 - 1)


def episode_seeds(seed: int, n_tasks: int, n_episodes: int) -> np.ndarray:
    """``[n_tasks, n_episodes]`` reset seeds in ``[0, 2**31)``, a splitmix64 hash of ``(seed, row, episode)``.

    Vectorized (no per-episode ``SeedSequence``) because it runs every call.
    """
    rows = np.arange(n_tasks, dtype=np.uint64)[:, None]
    eps = np.arange(n_episodes, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        z = (np.uint64(seed & (2**64 - 1)) * np.uint64(0x9E3779B97F4A7C15)
             + rows * np.uint64(0xBF58476D1CE4E5B9) + eps * np.uint64(0x94D049BB133111EB) + np.uint64(1))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(33)).astype(np.int64)


class Sampler:
    """Collects Episodes for a batch of tasks; a context manager (``close`` stops workers).

    Build it with :func:`make_sampler`. Envs are kept between calls and
    re-targeted to new tasks in place.

    Example:
        >>> from metarl.evaluation.actors import UniformActor
        >>> from metarl.sampling import make_sampler
        >>> with make_sampler("point-nav") as sampler:
        ...     tasks = sampler.family.sample(2, rng=0)
        ...     episodes = sampler.sample(tasks, UniformActor(sampler.family.action_space), 3, seed=0)
        ...     again = sampler.sample(tasks, UniformActor(sampler.family.action_space), 3, seed=0)
        >>> tuple(episodes.returns.shape)  # [tasks, episodes]
        (2, 3)
        >>> episodes.equal(again)  # a seed fixes env resets and the actor's noise
        True
    """

    def __init__(self, family: TaskFamily, backend: Backend, max_episode_steps: int | None = None,
                 max_envs: int | None = None) -> None:
        self.family, self.backend, self.max_envs = family, backend, max_envs
        self.seconds = 0.0  #: wall time spent in :meth:`sample`, for the trainer's sampling/update split
        self.horizon = int(max_episode_steps or family.horizon)
        self.steps_collected = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, backend.close)
        act = family.action_space
        self._act_shape: tuple[int, ...]
        self._low: np.ndarray | None  # with _high: both set (a bounded Box) or both None
        self._high: np.ndarray | None
        if isinstance(act, gym.spaces.Discrete):
            self._act_shape, self._act_dtype, self._low, self._high = (), "int64", None, None
        elif isinstance(act, gym.spaces.Box):
            self._act_shape, self._act_dtype = tuple(act.shape), "float32"
            low, high = act.low.astype(np.float32), act.high.astype(np.float32)
            bounded = np.isfinite(low).any() or np.isfinite(high).any()
            self._low, self._high = (low, high) if bounded else (None, None)
        else:
            raise SamplerConfigError(f"{family.name}: action space {act} is not supported; allowed: Box, Discrete")
        obs_shape = family.observation_space.shape
        if obs_shape is None:  # a space without a fixed shape (Graph, Sequence, ...) cannot fill a buffer
            raise SamplerConfigError(f"{family.name}: observation space {family.observation_space} has no fixed shape; "
                                     "allowed: Box, Discrete")
        self._obs_shape = tuple(obs_shape)

    @property
    def workers(self) -> int:
        return self.backend.workers

    def __repr__(self) -> str:
        return f"Sampler({self.family.name!r}, {self.backend.describe()}, horizon={self.horizon})"

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop workers / actors and close envs; safe to call twice."""
        self._closed = True
        self._finalizer()

    # -- collection -----------------------------------------------------------------------
    def sample(self, tasks: Sequence[Task], actor: Actor, episodes_per_task: int, *, episodes_per_trial: int = 1,
               seed: int | None = None) -> Episodes:
        """Run ``episodes_per_task`` episodes of every task; returns ``[T, E, H, ...]`` Episodes.

        The episodes of a task are grouped into trials of ``episodes_per_trial``
        consecutive episodes on one env slot; the actor state starts from
        ``actor.initial_state`` at each trial start and carries across the trial's
        episodes. ``seed`` fixes env resets and the actor's noise (``None``: a fresh one).
        """
        if self._closed:
            raise SamplerError(f"{self!r} is closed; create a new sampler")
        tasks = list(tasks)
        self._check_request(tasks, episodes_per_task, episodes_per_trial)
        if seed is None:
            seed = int(cast(int, np.random.SeedSequence().entropy) % 2**31)  # an int when none is passed in
        start = time.perf_counter()
        try:
            # one intra-op thread while envs step: see metarl.core.device.torch_threads
            with torch.no_grad(), torch_threads(1):
                return self._in_passes(tasks, actor, episodes_per_task, episodes_per_trial, int(seed))
        except SamplerError:
            raise
        except BaseException:
            # An interrupt or an actor error mid-step: a remote backend may hold
            # unanswered messages, so restart its workers on the next call.
            self.backend.abort()
            raise
        finally:
            self.seconds += time.perf_counter() - start

    def _in_passes(self, tasks: list[Task], actor: Actor, episodes_per_task: int, per_trial: int,
                   seed: int) -> Episodes:
        """All trials at once, or, above ``max_envs`` env slots, in passes over the trials.

        Why: every slot is a live env, and a Meta-World env holds ~20 MB (its model's meshes), so an
        ML45 batch of 45 tasks x 10 episodes would hold 9 GB at once. A pass runs every task with a
        share of its trials; episode ``j`` of task ``i`` gets the same env seed in every split, while
        the actor's noise is drawn per pass (so results depend on ``max_envs``, reproducibly).
        """
        trials = episodes_per_task // per_trial
        n_tasks = len(tasks)
        if self.max_envs is None or n_tasks * trials <= self.max_envs:
            return self._collect(tasks, actor, trials, per_trial, seed)
        per_pass = self.max_envs // n_tasks
        if per_pass < 1:
            raise SamplerConfigError(f"max_envs={self.max_envs} is less than the {n_tasks} tasks of this batch; "
                                     f"allowed: max_envs >= {n_tasks} (a pass holds at least one trial per task)")
        parts = [self._collect(tasks, actor, min(per_pass, trials - lo), per_trial, seed, first_trial=lo,
                               total_trials=trials) for lo in range(0, trials, per_pass)]
        return concat_episodes(parts)

    def _check_request(self, tasks: list[Task], episodes_per_task: int, episodes_per_trial: int) -> None:
        if not tasks:
            raise SamplerConfigError("tasks is empty; pass at least one Task (family.sample(n, rng))")
        for name, val in (("episodes_per_task", episodes_per_task), ("episodes_per_trial", episodes_per_trial)):
            if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
                raise SamplerConfigError(f"{name}={val!r} is invalid; allowed: an integer >= 1")
        if episodes_per_task % episodes_per_trial:
            raise SamplerConfigError(f"episodes_per_task={episodes_per_task} is not a multiple of "
                                     f"episodes_per_trial={episodes_per_trial}; allowed: k * {episodes_per_trial}")
        wrong = [t for t in tasks if not isinstance(t, Task) or t.family != self.family.name]
        if wrong:
            raise SamplerConfigError(f"task {wrong[0]!r} is not a task of family {self.family.name!r}; "
                                     f"allowed: tasks from make_family({self.family.name!r}).sample(...)")
        n_envs = len(tasks) * (episodes_per_task // episodes_per_trial)
        if n_envs < self.backend.workers:
            raise SamplerConfigError(
                f"workers={self.backend.workers} is more than the {n_envs} envs of this batch "
                f"({len(tasks)} tasks x {episodes_per_task // episodes_per_trial} trials); "
                f"allowed: workers <= {n_envs} (or sample more tasks/trials)")

    def _collect(self, tasks: list[Task], actor: Actor, trials: int, per_trial: int, seed: int,
                 first_trial: int = 0, total_trials: int | None = None) -> Episodes:
        T, E, H = len(tasks), per_trial, self.horizon
        S = trials
        N = T * S
        obs_shape, act_shape = self._obs_shape, self._act_shape
        slot_row = np.repeat(np.arange(T), S)
        slot_col0 = np.tile(np.arange(S), T) * E  # column of the slot's first episode
        columns = slice(first_trial * E, (first_trial + S) * E)  # this pass's episodes of the whole batch
        slot_seeds = episode_seeds(seed, T, (total_trials or S) * E)[:, columns].reshape(N, E)

        buf = self.backend.configure([tasks[r] for r in slot_row],
                                     [f"task row {r}, trial {c // E}" for r, c in zip(slot_row, slot_col0)],
                                     Layout(N, obs_shape, act_shape, self._act_dtype))
        buf.next_seed[:] = slot_seeds[:, 0]
        self.backend.reset()

        # Outputs, preallocated; filled by fancy indexing with (row, column, time) per active slot.
        out_obs = np.zeros((T, S * E, H, *obs_shape), np.float32)
        out_act = np.zeros((T, S * E, H, *act_shape), self._act_dtype)
        out_rew = np.zeros((T, S * E, H), np.float32)
        out_logp = np.zeros((T, S * E, H), np.float32)
        out_term = np.zeros((T, S * E, H), bool)
        out_trunc = np.zeros((T, S * E, H), bool)
        out_last = np.zeros((T, S * E, *obs_shape), np.float32)
        lengths = np.zeros((T, S * E), np.int64)
        success = np.zeros((T, S * E), bool)
        out_info: dict[str, np.ndarray] = {}

        ep = np.zeros(N, np.int64)  # episode within the trial
        t = np.zeros(N, np.int64)  # step within the episode
        active = np.ones(N, bool)
        episode_start = np.ones(N, bool)
        buf.next_seed[:] = slot_seeds[:, 1] if E > 1 else -1
        generator = torch.Generator().manual_seed(seed if first_trial == 0 else (seed * 1_000_003 + first_trial) % 2**62)
        state = actor.initial_state(T, S)
        low, high = self._low, self._high

        lockstep = True  # every slot at the same (episode, step): write with slices, not fancy indexing
        # Whether the envs report success is learned from them: any step with a "success" key. Every slot
        # steps at least once, so values left in the buffer by an earlier call are always overwritten.
        reports_success = bool(self.family.has_success)
        while True:
            obs = buf.obs.copy()  # the actor may keep it; the buffer is overwritten next step
            actions, log_probs, state, extras = actor.act(
                torch.from_numpy(obs.reshape(T, S, *obs_shape)), state,
                torch.from_numpy(episode_start.reshape(T, S)), generator)  # a fresh array each step
            a_np = _numpy(actions).reshape(N, *act_shape)
            at: _Slices | _Gather
            if lockstep:
                at = _Slices(T, S, E, int(ep[0]), int(t[0]))
            else:
                idx = np.flatnonzero(active)
                at = _Gather(idx, slot_row[idx], slot_col0[idx] + ep[idx], t[idx])
            if low is not None and high is not None:  # clip with two ufuncs: np.clip's Python wrapper costs more than the work
                np.minimum(np.maximum(a_np, low, out=buf.actions), high, out=buf.actions)
            else:
                buf.actions[...] = a_np
            buf.active[:] = active
            self.backend.step_start()
            # Recorded while remote workers step: off the critical path.
            at.put(out_obs, obs)
            at.put(out_act, a_np)
            at.put(out_logp, _numpy(log_probs).reshape(N))
            for key, val in extras.items():
                v = _numpy(val).reshape(N, *val.shape[2:])
                if key not in out_info:
                    out_info[key] = np.zeros((T, S * E, H, *v.shape[1:]), v.dtype)
                at.put(out_info[key], v)
            self.backend.step_wait()

            at.put(out_rew, buf.reward)
            at.put(out_term, buf.terminated)
            at.put(out_trunc, buf.truncated)
            at.put_any(success, buf.success)
            reports_success = reports_success or bool(buf.success_reported.any())
            if isinstance(at, _Slices):  # in lockstep: every slot was active
                done = buf.terminated | buf.truncated
                rewards = buf.reward.copy()
                t += 1
                self.steps_collected += N
            else:
                done = (buf.terminated | buf.truncated) & active
                rewards = np.where(active, buf.reward, np.float32(0))
                t[at.idx] += 1
                self.steps_collected += at.idx.size
            if done.any():
                d = np.flatnonzero(done)
                lockstep = lockstep and d.size == N
                r_d, c_d = slot_row[d], slot_col0[d] + ep[d]
                out_last[r_d, c_d] = buf.final_obs[d]
                lengths[r_d, c_d] = t[d]
                ep[d] += 1
                t[d] = 0
                active[d[ep[d] >= E]] = False
                nxt = np.minimum(ep[d] + 1, E - 1)
                buf.next_seed[d] = np.where(ep[d] + 1 < E, slot_seeds[d, nxt], -1)
                if not active.any():
                    break
                episode_start = done & active
            else:
                episode_start = np.zeros(N, bool)
            state = actor.observe(state, actions, torch.from_numpy(rewards.reshape(T, S)),
                                  torch.from_numpy(done.reshape(T, S)))

        mask = (np.arange(H) < lengths[..., None]).astype(np.float32)
        tt = torch.from_numpy
        return Episodes(
            observations=tt(out_obs), actions=tt(out_act), rewards=tt(out_rew), log_probs=tt(out_logp),
            terminated=tt(out_term), truncated=tt(out_trunc), mask=tt(mask), last_observations=tt(out_last),
            lengths=tt(lengths), returns=tt((out_rew * mask).sum(-1, dtype=np.float64).astype(np.float32)), success=tt(success),
            tasks=tuple(tasks), agent_info={k: tt(v) for k, v in out_info.items()},
            episodes_per_trial=E, seed=seed, reports_success=reports_success)


def concat_episodes(parts: Sequence[Episodes]) -> Episodes:
    """Episodes of the same tasks side by side along the episode dimension (passes of one batch)."""
    first = parts[0]
    fields = {name: torch.cat([getattr(p, name) for p in parts], dim=1) for name in tensor_fields()}
    info = {k: torch.cat([p.agent_info[k] for p in parts], dim=1) for k in first.agent_info}
    return Episodes(**fields, tasks=first.tasks, agent_info=info, episodes_per_trial=first.episodes_per_trial,
                    seed=first.seed, reports_success=any(p.reports_success for p in parts))


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU tensor's numpy view (no copy); other devices are copied to the host."""
    t = t.detach()
    return t.numpy() if t.device.type == "cpu" else t.cpu().numpy()


class _Slices:
    """Where this step's values go when all slots are in lockstep: plain strided slices (fast path).

    Slot ``(task i, trial s)`` at episode ``e`` of its trial writes column ``s * E + e``;
    for all slots at once that is ``[:, e::E]``.
    """

    def __init__(self, T: int, S: int, E: int, e: int, t: int) -> None:
        self.shape, self.cols, self.t = (T, S), slice(e, None, E), t

    def put(self, out: np.ndarray, values: np.ndarray) -> None:
        out[:, self.cols, self.t] = values.reshape(*self.shape, *values.shape[1:])

    def put_any(self, out: np.ndarray, values: np.ndarray) -> None:
        out[:, self.cols] |= values.reshape(self.shape)


class _Gather:
    """Where this step's values go once episodes have ended at different steps: one index per active slot."""

    def __init__(self, idx: np.ndarray, rows: np.ndarray, cols: np.ndarray, ts: np.ndarray) -> None:
        self.idx, self.rows, self.cols, self.ts = idx, rows, cols, ts

    def put(self, out: np.ndarray, values: np.ndarray) -> None:
        out[self.rows, self.cols, self.ts] = values[self.idx]

    def put_any(self, out: np.ndarray, values: np.ndarray) -> None:
        out[self.rows, self.cols] |= values[self.idx]


def _check_workers(backend: str, workers: int | None) -> None:
    if workers is None:
        return
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise SamplerConfigError(f"workers={workers!r} is invalid; allowed: an integer >= 1 (or None: one per core)")
    if backend in ("serial", "tensor") and workers != 1:
        raise SamplerConfigError(f"workers={workers} with backend={backend!r}, which runs in-process; allowed: "
                                 "workers=1 or None, or backend='process'/'ray' for parallel workers")


def make_sampler(family: str | TaskFamily, backend: str = "serial", workers: int | None = None,
                 ray_address: str | None = None, *, max_episode_steps: int | None = None,
                 timeout: float | None = None, start_method: str = "spawn", env_threads: int | None = None,
                 max_envs: int | None = None, device: str | torch.device = "cpu") -> Sampler:
    """Build a sampler for ``family`` on ``backend`` (``serial``, ``process``, ``ray``, ``tensor`` or ``auto``).

    ``tensor`` rolls out the family's tensor env (:mod:`metarl.envs.tensor_env`) on ``device``,
    beside the policy (:class:`~metarl.sampling.tensor.TensorSampler`); ``auto`` is ``tensor``
    for a family that has one (bandits, tabular MDPs, point-nav) and ``serial`` otherwise.

    ``workers``: worker processes (``process``, default one per core) or Ray
    actors (``ray``, default one per cluster CPU). ``ray_address`` joins an
    existing cluster. ``timeout`` (``sampling.step_timeout`` in agent configs):
    seconds one call into the envs may take (a batched reset or step of every
    env one worker holds, auto-resets included; building envs gets at least
    3 minutes) before ``sample`` raises a :class:`SamplerError` naming the
    worker, env slot, task and step; ``None``: wait as long as workers are alive.
    Every backend enforces it; see :func:`metarl.sampling.backend.call_within`
    for what an in-process alarm cannot interrupt.
    ``max_episode_steps`` truncates episodes before the family's horizon.
    ``env_threads`` (``sampling.env_threads``): threads each worker may step a batched family's
    physics on (:meth:`TaskFamily.make_batch`); ``None``: its share of the cores (all of them for
    ``serial``, ``cores // workers`` for ``process``, its CPUs for a Ray actor). Results never
    depend on it. ``max_envs`` (``sampling.max_envs``): the most env slots live at once; a larger
    batch runs in passes over its trials (see :meth:`Sampler._in_passes`); ``None``: no bound.
    """
    if backend not in BACKENDS:
        raise SamplerConfigError(f"backend={backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
    fam = make_family(family) if isinstance(family, str) else family
    spec = family if isinstance(family, str) else fam.name
    if backend == "auto":
        backend = "tensor" if fam.has_tensor_env else "serial"
    _check_workers(backend, workers)
    if ray_address is not None and backend != "ray":
        raise SamplerConfigError(f"ray_address={ray_address!r} given with backend={backend!r}; "
                                 "allowed: ray_address only with backend='ray'")
    if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
        raise SamplerConfigError(f"max_episode_steps={max_episode_steps!r} is invalid; allowed: an integer >= 1")
    if max_envs is not None and (isinstance(max_envs, bool) or not isinstance(max_envs, int) or max_envs < 1):
        raise SamplerConfigError(f"max_envs={max_envs!r} is invalid; allowed: an integer >= 1, or None")
    if env_threads is not None and (isinstance(env_threads, bool) or not isinstance(env_threads, int)
                                    or env_threads < 1):
        raise SamplerConfigError(f"env_threads={env_threads!r} is invalid; allowed: an integer >= 1, or None")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not (timeout > 0 and math.isfinite(timeout))):
        raise SamplerConfigError(f"timeout={timeout!r} is invalid; allowed: seconds > 0, or None")
    if backend == "tensor":
        if not fam.has_tensor_env:
            raise SamplerConfigError(f"backend='tensor': family {fam.name!r} has no tensor env; allowed: a family "
                                     "with one (bandit, tabular-mdp, point-nav, or a plug-in's make_tensor_env), "
                                     "or backend serial, process, ray")
        from metarl.sampling.tensor import TensorSampler

        return TensorSampler(fam, torch.device(device), max_episode_steps, max_envs)
    if backend != "serial" and not isinstance(family, str) and type(make_family(spec)) is not type(fam):
        raise SamplerConfigError(f"family {fam.name!r} cannot be rebuilt from its name in a worker; "
                                 "pass the family spec string instead")
    if backend == "serial":
        from metarl.sampling.serial import SerialBackend

        impl: Backend = SerialBackend(fam, max_episode_steps, timeout=timeout, threads=env_threads)
    elif backend == "process":
        from metarl.sampling.process import ProcessBackend

        impl = ProcessBackend(spec, int(workers or os.cpu_count() or 1), max_episode_steps,
                              start_method=start_method, timeout=timeout, threads=env_threads)
    else:
        from metarl.sampling.ray_backend import RayBackend

        impl = RayBackend(spec, workers, max_episode_steps, address=ray_address, timeout=timeout,
                          threads=env_threads)
    return Sampler(fam, impl, max_episode_steps, max_envs)
