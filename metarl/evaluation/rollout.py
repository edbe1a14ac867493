"""Actors for baselines, and a small loop for scoring a policy on envs you built yourself.

Agents and baselines are all scored on episodes collected by the one
:class:`~metarl.sampling.sampler.Sampler`: a baseline is just another
:class:`~metarl.sampling.actor.Actor` (:class:`UniformActor` for ``random``,
:class:`FunctionActor` around a scripted rule or a stable-baselines3 model), so
"return" and "success" mean the same thing on every line of a plot: the
undiscounted sum of rewards of an episode capped at the family's horizon, and
success if *any* step's ``info["success"]`` is truthy (the Meta-World rule), NaN
when the envs report no success at all.

:func:`run_episodes` remains for a policy and envs that are not a task family's
(the ``metarl demo`` episode); it applies the same success rule through the same
function (:func:`metarl.sampling.stepper.success_flags`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metarl.sampling.actor import ActorOutput
from metarl.sampling.stepper import SUCCESS_KEY, success_flags

__all__ = [
    "BatchPolicy",
    "EpisodeResult",
    "FunctionActor",
    "Policy",
    "UniformActor",
    "batched",
    "episode_seeds",
    "run_episode",
    "run_episodes",
]

Policy = Callable[[np.ndarray], np.ndarray | int]
"""Maps one observation to one action (stateless between steps)."""

BatchPolicy = Callable[[np.ndarray], Sequence]
"""Maps stacked observations ``[n, *obs_shape]`` to ``n`` actions."""


class UniformActor:
    """Uniform random actions over the action space, drawn from the sampler's generator; stateless.

    Box dimensions without two finite bounds draw N(0, 1) instead (gymnasium's ``Box.sample``
    does the same for unbounded dimensions; the sampler then clips to a one-sided bound).
    """

    def __init__(self, space: gym.Space) -> None:
        self.space = space

    def initial_state(self, n_tasks: int, n_slots: int) -> None:
        return None

    def act(self, obs: Tensor, state: Any, episode_start: Tensor, generator: torch.Generator) -> ActorOutput:
        t, s = obs.shape[:2]
        if isinstance(self.space, gym.spaces.Discrete):
            n = int(self.space.n)
            actions = torch.randint(n, (t, s), generator=generator) + int(self.space.start)
            return ActorOutput(actions, torch.full((t, s), -math.log(n)), None, {})
        low, high = (torch.as_tensor(b, dtype=torch.float32) for b in (self.space.low, self.space.high))
        bounded = torch.isfinite(low) & torch.isfinite(high)
        if bool(bounded.all()):
            actions = low + (high - low) * torch.rand(t, s, *low.shape, generator=generator)
            return ActorOutput(actions, -torch.log(high - low).sum().expand(t, s), None, {})
        width = torch.where(bounded, high - low, torch.ones_like(low))
        uniform = torch.where(bounded, low, torch.zeros_like(low)) + width * torch.rand(t, s, *low.shape,
                                                                                         generator=generator)
        normal = torch.randn(t, s, *low.shape, generator=generator)
        actions = torch.where(bounded, uniform, normal)
        log_probs = torch.where(bounded, -torch.log(width), -0.5 * normal**2 - 0.5 * math.log(2 * math.pi))
        return ActorOutput(actions, log_probs.flatten(2).sum(-1), None, {})

    def observe(self, state: Any, actions: Tensor, rewards: Tensor, dones: Tensor) -> Any:
        return state


class FunctionActor:
    """A stateless batch policy (numpy observations ``[n, *obs]`` -> ``n`` actions) as a sampler actor.

    For scripted rules and for policies of other libraries (a stable-baselines3 model's
    ``predict``), so they are scored by the same sampler as the agents. Their randomness is
    their own: a seed fixes the env resets, not their noise. ``log_probs`` are zeros.
    """

    def __init__(self, policy: BatchPolicy) -> None:
        self.policy = policy

    def initial_state(self, n_tasks: int, n_slots: int) -> None:
        return None

    def act(self, obs: Tensor, state: Any, episode_start: Tensor, generator: torch.Generator) -> ActorOutput:
        t, s = obs.shape[:2]
        actions = torch.as_tensor(np.asarray(self.policy(obs.reshape(t * s, *obs.shape[2:]).numpy())))
        return ActorOutput(actions.reshape(t, s, *actions.shape[1:]), torch.zeros(t, s), None, {})

    def observe(self, state: Any, actions: Tensor, rewards: Tensor, dones: Tensor) -> Any:
        return state


@dataclass(frozen=True)
class EpisodeResult:
    ret: float
    steps: int
    success: float  # 1.0 / 0.0, NaN when the envs report no success signal


def batched(policy: Policy) -> BatchPolicy:
    """Adapt a one-observation policy (a scripted rule, random actions) to the batch interface."""
    return lambda obs: [policy(o) for o in obs]


def episode_seeds(seed: int, *key: int, n: int) -> list[int]:
    """``n`` seeds private to ``(seed, *key)``, e.g. ``(seed, task, round)``.

    Independent streams per task and round keep results reproducible regardless
    of evaluation order, and identical across methods that use the same key.
    """
    ss = np.random.SeedSequence([int(seed), *(int(k) for k in key)])
    return [int(s) for s in ss.generate_state(n, dtype=np.uint32)]


def _lockstep(envs: Sequence[gym.Env], policy: BatchPolicy, horizon: int,
              seeds: Sequence[int | None]) -> tuple[list[EpisodeResult], bool]:
    """One episode per env, all advanced together; each stops at termination, truncation or ``horizon``.

    Returns the results with success 1.0 / 0.0, and whether any step reported success at all.
    """
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    n = len(obs)
    totals, steps, succeeded, reported = [0.0] * n, [0] * n, [False] * n, False
    active = list(range(n))
    for _ in range(horizon):
        if not active:
            break
        actions = policy(np.stack([obs[i] for i in active]))
        still = []
        for i, action in zip(active, actions):
            obs[i], reward, terminated, truncated, info = envs[i].step(action)
            totals[i] += float(reward)
            steps[i] += 1
            if SUCCESS_KEY in info:
                reported = True
                succeeded[i] = succeeded[i] or bool(success_flags([info[SUCCESS_KEY]])[0])
            if not (terminated or truncated):
                still.append(i)
        active = still
    return [EpisodeResult(totals[i], steps[i], float(succeeded[i])) for i in range(n)], reported


def run_episodes(
    envs: gym.Env | Sequence[gym.Env], policy: BatchPolicy, horizon: int, seeds: Sequence[int | None]
) -> list[EpisodeResult]:
    """``len(seeds)`` episodes (one per reset seed), ``len(envs)`` at a time, in seed order.

    Success follows the sampler's rule for a batch: NaN for every episode when no step of any of
    them had a ``"success"`` key, else 1.0 / 0.0 per episode.
    """
    envs = [envs] if isinstance(envs, gym.Env) else list(envs)
    results: list[EpisodeResult] = []
    reported = False
    for start in range(0, len(seeds), len(envs)):
        chunk = list(seeds[start:start + len(envs)])
        got, any_reported = _lockstep(envs[: len(chunk)], policy, horizon, chunk)
        results += got
        reported = reported or any_reported
    return results if reported else [replace(r, success=math.nan) for r in results]


def run_episode(env: gym.Env, policy: Policy, horizon: int, seed: int | None = None) -> EpisodeResult:
    """A single episode with a one-observation policy."""
    return run_episodes(env, batched(policy), horizon, [seed])[0]
