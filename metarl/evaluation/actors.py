"""Baselines as sampler actors.

Agents and baselines are all scored on episodes collected by the one
:class:`~metarl.sampling.sampler.Sampler`: a baseline is just another
:class:`~metarl.sampling.actor.Actor` (:class:`UniformActor` for ``random``,
:class:`FunctionActor` around a scripted rule or a stable-baselines3 model), so
"return" and "success" mean the same thing on every line of a plot: the
undiscounted sum of rewards of an episode capped at the family's horizon, and
success if *any* step's ``info["success"]`` is truthy (the Meta-World rule), NaN
when the envs report no success at all. ``metarl demo``'s random episodes are
collected the same way (:func:`metarl.demo.random_episode`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metarl.sampling.actor import ActorOutput

__all__ = ["BatchPolicy", "FunctionActor", "UniformActor"]

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
