"""The device rollout loop: a family's :class:`~metarl.envs.tensor_env.TensorEnv` and the actor, all in torch.

Why a second loop beside :meth:`Sampler._collect <metarl.sampling.sampler.Sampler._collect>`:
that one moves every step's observations and actions between torch and numpy and steps envs
through a backend, which is right for gymnasium and MuJoCo envs. For a family with a tensor env
(bandits, tabular MDPs, point-nav) the env step is a few tensor operations, so here the policy,
the env and the output buffers share one device and the loop makes no host transfer and no
Python call per env. It writes the same :class:`Episodes` layout (``[tasks, episodes, time]``,
trials contiguous), so agents cannot tell the paths apart.

How the layout is filled without per-step host decisions: every row (one trial of one task)
steps every iteration; a row whose trial is over writes into a spare "trash" element at the end
of each flat output buffer, so the indices of a step are computed on the device. The loop stops
once no row is active (checked each step on the CPU, every ``horizon`` steps on an accelerator,
where the check is a synchronization); that only saves time, it changes no output.

Determinism: the actor's noise comes from a ``torch.Generator`` on the device seeded with the
call's seed, the env's draws from a second one; one seed gives the same Episodes on every run
on the same device. The random streams differ from the gymnasium path's, whose episodes are
equal in distribution, not bit for bit, except where the env is deterministic (point-nav): with
a deterministic actor both paths produce identical episodes (``tests/test_sampling_tensor.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from metarl.envs import Task, TaskFamily
from metarl.sampling.actor import Actor
from metarl.sampling.backend import Backend
from metarl.sampling.buffers import Layout, StepBuffers
from metarl.sampling.episodes import Episodes
from metarl.sampling.sampler import Sampler

__all__ = ["TensorBackend", "TensorSampler"]

_ENV_STREAM = 0x5EED_E17  # mixed into the call's seed for the env's generator


class TensorBackend(Backend):
    """Where a :class:`TensorSampler`'s envs live: one device, in this process.

    It only names the device and holds nothing to shut down; the stepping calls of the
    :class:`Backend` contract belong to the numpy loop and are not used by this sampler.
    """

    name = "tensor"
    workers = 1

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def configure(self, tasks: Sequence[Task], labels: Sequence[str], layout: Layout) -> StepBuffers:
        raise RuntimeError("the tensor backend is driven by TensorSampler, not by Sampler's numpy loop")

    def reset(self) -> None:
        raise RuntimeError("the tensor backend is driven by TensorSampler, not by Sampler's numpy loop")

    def step_start(self) -> None:
        raise RuntimeError("the tensor backend is driven by TensorSampler, not by Sampler's numpy loop")

    def step_wait(self) -> None:
        raise RuntimeError("the tensor backend is driven by TensorSampler, not by Sampler's numpy loop")

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def describe(self) -> str:
        return f"tensor ({self.device})"


class TensorSampler(Sampler):
    """A :class:`Sampler` whose envs are the family's tensor env on ``device`` (``backend="tensor"``).

    Example:
        >>> from metarl.evaluation.actors import UniformActor
        >>> from metarl.sampling import make_sampler
        >>> with make_sampler("bandit?k=5&n=10", backend="tensor") as sampler:
        ...     tasks = sampler.family.sample(3, rng=0)
        ...     episodes = sampler.sample(tasks, UniformActor(sampler.family.action_space), 10,
        ...                               episodes_per_trial=10, seed=0)
        ...     again = sampler.sample(tasks, UniformActor(sampler.family.action_space), 10,
        ...                            episodes_per_trial=10, seed=0)
        >>> tuple(episodes.rewards.shape), episodes.equal(again)
        ((3, 10, 1), True)
    """

    def __init__(self, family: TaskFamily, device: torch.device, max_episode_steps: int | None = None,
                 max_envs: int | None = None) -> None:
        super().__init__(family, TensorBackend(device), max_episode_steps, max_envs)
        self.device = device
        self._bounds: tuple[Tensor, Tensor] | None = None
        if self._low is not None and self._high is not None:
            self._bounds = (torch.as_tensor(self._low, device=device), torch.as_tensor(self._high, device=device))

    def _collect(self, tasks: list[Task], actor: Actor, trials: int, per_trial: int, seed: int,
                 first_trial: int = 0, total_trials: int | None = None) -> Episodes:
        T, S, E, H = len(tasks), trials, per_trial, self.horizon
        N, dev = T * S, self.device
        obs_shape, act_shape = self._obs_shape, self._act_shape
        act_dtype = torch.int64 if self._act_dtype == "int64" else torch.float32
        call_seed = seed if first_trial == 0 else (seed * 1_000_003 + first_trial) % 2**62
        generator = torch.Generator(device=dev).manual_seed(call_seed)
        env_generator = torch.Generator(device=dev).manual_seed((call_seed * 0x9E3779B1 + _ENV_STREAM) % 2**63)
        env = self.family.make_tensor_env([tasks[i // S] for i in range(N)], dev)

        n_eps = T * S * E  # flat episode index of row (i, s) at episode e: (i * S + s) * E + e
        row_ep0 = torch.arange(N, device=dev) * E
        trash_ep, trash_step = n_eps, n_eps * H
        out_obs = torch.zeros(trash_step + 1, *obs_shape, device=dev)
        out_act = torch.zeros(trash_step + 1, *act_shape, dtype=act_dtype, device=dev)
        out_rew = torch.zeros(trash_step + 1, device=dev)
        out_logp = torch.zeros(trash_step + 1, device=dev)
        out_term = torch.zeros(trash_step + 1, dtype=torch.bool, device=dev)
        out_trunc = torch.zeros(trash_step + 1, dtype=torch.bool, device=dev)
        out_last = torch.zeros(trash_ep + 1, *obs_shape, device=dev)
        lengths = torch.zeros(trash_ep + 1, dtype=torch.long, device=dev)
        success = torch.zeros(trash_ep + 1, dtype=torch.bool, device=dev)
        out_info: dict[str, Tensor] = {}

        ep = torch.zeros(N, dtype=torch.long, device=dev)
        t = torch.zeros(N, dtype=torch.long, device=dev)
        active = torch.ones(N, dtype=torch.bool, device=dev)
        episode_start = torch.ones(N, dtype=torch.bool, device=dev)
        obs = env.reset(episode_start, env_generator)
        state = actor.initial_state(T, S)
        reports_success = bool(self.family.has_success)
        check_every = 1 if dev.type == "cpu" else H
        for it in range(E * H):
            actions, log_probs, state, extras = actor.act(obs.reshape(T, S, *obs_shape), state,
                                                          episode_start.reshape(T, S), generator)
            a = actions.reshape(N, *act_shape).to(dev)
            if self._bounds is not None:
                low, high = self._bounds
                a_env = torch.minimum(torch.maximum(a, low), high)
            else:
                a_env = a
            out = env.step(a_env, env_generator)
            e_idx = torch.where(active, row_ep0 + ep, trash_ep)
            s_idx = torch.where(active, e_idx * H + t, trash_step)
            out_obs[s_idx] = obs
            out_act[s_idx] = a.to(act_dtype)
            out_logp[s_idx] = log_probs.reshape(N).to(dev, torch.float32)
            for key, val in extras.items():
                v = val.reshape(N, *val.shape[2:]).to(dev)
                if key not in out_info:
                    out_info[key] = torch.zeros(trash_step + 1, *v.shape[1:], dtype=v.dtype, device=dev)
                out_info[key][s_idx] = v
            reward = out.reward.to(torch.float32)
            out_rew[s_idx] = reward
            out_term[s_idx] = out.terminated
            t = t + 1
            truncated = ~out.terminated & (t >= H)
            out_trunc[s_idx] = truncated
            if out.success is not None:
                reports_success = True
                success[e_idx] = success[e_idx] | out.success
            done = (out.terminated | truncated) & active
            done_idx = torch.where(done, e_idx, trash_ep)
            out_last[done_idx] = out.obs
            lengths[done_idx] = t
            ep = ep + done.long()
            t = torch.where(done, 0, t)
            rewards = torch.where(active, reward, 0.0)
            active = active & (ep < E)
            episode_start = done & active
            obs = env.reset(episode_start, env_generator)
            state = actor.observe(state, actions, rewards.reshape(T, S), done.reshape(T, S))
            if (it + 1) % check_every == 0 and not bool(active.any()):
                break

        shape = (T, S * E, H)
        lengths_out = lengths[:n_eps].reshape(T, S * E)
        mask = (torch.arange(H, device=dev) < lengths_out[..., None]).to(torch.float32)
        rewards_out = out_rew[:trash_step].reshape(shape)
        self.steps_collected += int(lengths_out.sum())
        return Episodes(
            observations=out_obs[:trash_step].reshape(*shape, *obs_shape),
            actions=out_act[:trash_step].reshape(*shape, *act_shape),
            rewards=rewards_out, log_probs=out_logp[:trash_step].reshape(shape),
            terminated=out_term[:trash_step].reshape(shape), truncated=out_trunc[:trash_step].reshape(shape),
            mask=mask, last_observations=out_last[:n_eps].reshape(T, S * E, *obs_shape), lengths=lengths_out,
            returns=(rewards_out * mask).sum(-1, dtype=torch.float64).to(torch.float32),
            success=success[:n_eps].reshape(T, S * E), tasks=tuple(tasks),
            agent_info={k: v[:trash_step].reshape(*shape, *v.shape[1:]) for k, v in out_info.items()},
            episodes_per_trial=E, seed=seed, reports_success=reports_success)

