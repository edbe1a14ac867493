"""Score a policy on one task by running whole episodes: the shared measuring stick.

Every baseline (and the agents' evaluation protocol, if it wants to) scores
episodes through :func:`run_episodes`, so "return" and "success" mean the same
thing on every line of a plot: the undiscounted sum of rewards of an episode
capped at the family's horizon, and success if *any* step reported
``info["success"]`` true (the Meta-World rule), NaN if no step reported it.

Episodes on several copies of the env run in lockstep so that a neural policy
is called once per step for all of them: calling a torch policy per single
observation costs more than the point-nav physics by two orders of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

__all__ = [
    "BatchPolicy",
    "EpisodeResult",
    "Policy",
    "batched",
    "episode_seeds",
    "run_episode",
    "run_episodes",
]

Policy = Callable[[np.ndarray], np.ndarray | int]
"""Maps one observation to one action (stateless between steps)."""

BatchPolicy = Callable[[np.ndarray], Sequence]
"""Maps stacked observations ``[n, *obs_shape]`` to ``n`` actions."""


@dataclass(frozen=True)
class EpisodeResult:
    ret: float
    steps: int
    success: float  # 1.0 / 0.0, NaN when the env reports no success signal


def batched(policy: Policy) -> BatchPolicy:
    """Adapt a one-observation policy (a scripted rule, random actions) to the batch interface."""
    return lambda obs: [policy(o) for o in obs]


def episode_seeds(seed: int, *key: int, n: int) -> list[int]:
    """``n`` reset seeds private to ``(seed, *key)``, e.g. ``(seed, task, round)``.

    Independent streams per task and round keep results reproducible regardless
    of evaluation order, and identical across methods that use the same key.
    """
    ss = np.random.SeedSequence([int(seed), *(int(k) for k in key)])
    return [int(s) for s in ss.generate_state(n, dtype=np.uint32)]


def _lockstep(envs: Sequence[gym.Env], policy: BatchPolicy, horizon: int, seeds: Sequence[int]) -> list[EpisodeResult]:
    """One episode per env, all advanced together; each stops at termination, truncation or ``horizon``."""
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    n = len(obs)
    totals, steps, success = [0.0] * n, [0] * n, [math.nan] * n
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
            if "success" in info:
                s = float(bool(info["success"]))
                success[i] = s if math.isnan(success[i]) else max(success[i], s)
            if not (terminated or truncated):
                still.append(i)
        active = still
    return [EpisodeResult(totals[i], steps[i], success[i]) for i in range(n)]


def run_episodes(
    envs: gym.Env | Sequence[gym.Env], policy: BatchPolicy, horizon: int, seeds: Sequence[int]
) -> list[EpisodeResult]:
    """``len(seeds)`` episodes (one per reset seed), ``len(envs)`` at a time, in seed order."""
    envs = [envs] if isinstance(envs, gym.Env) else list(envs)
    results: list[EpisodeResult] = []
    for start in range(0, len(seeds), len(envs)):
        chunk = list(seeds[start:start + len(envs)])
        results.extend(_lockstep(envs[: len(chunk)], policy, horizon, chunk))
    return results


def run_episode(env: gym.Env, policy: Policy, horizon: int, seed: int | None = None) -> EpisodeResult:
    """A single episode with a one-observation policy."""
    return _lockstep([env], batched(policy), horizon, [seed])[0]
