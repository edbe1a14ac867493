"""The actor protocol: how the sampler talks to a policy and its per-task adaptation state.

One interface for both meta-RL families (docs/architecture.md):

* gradient-based (MAML, Reptile): ``state`` = per-task parameters stacked on a
  leading task dimension; ``act`` applies the policy with ``vmap`` over tasks;
  ``observe`` leaves the state alone.
* context-based (RL²): ``state`` = one recurrent state per env slot, plus the
  previous action/reward/done that RL² feeds back; ``observe`` records them.

Shapes: ``T`` tasks x ``S`` slots (one slot = one env running one trial;
``S = episodes_per_task // episodes_per_trial``). The sampler calls, under
``torch.no_grad()``::

    state = actor.initial_state(T, S)                 # at trial start
    loop:
        actions, log_probs, state, extras = actor.act(obs, state, episode_start, generator)
        ... all envs step together ...
        state = actor.observe(state, actions, rewards, dones)

``act`` is called once per time step for *all* envs (never per env). Slots
whose trial is over still appear in the batch (their outputs are ignored),
so shapes never change within a call. All randomness must come from
``generator`` so that a seed reproduces the same batch on every backend.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor


class ActorOutput(NamedTuple):
    """What ``act`` returns; a plain 4-tuple in this order works too."""

    actions: Tensor  #: ``[T, S, *action_shape]`` (float for Box, int64 for Discrete)
    log_probs: Tensor  #: ``[T, S]``
    state: Any  #: the state after this step
    extras: dict[str, Tensor]  #: ``[T, S, ...]`` each; kept in ``Episodes.agent_info``


@runtime_checkable
class Actor(Protocol):
    def initial_state(self, n_tasks: int, n_slots: int) -> Any:
        """State at the start of a trial (per-task params, or zeroed hidden state per slot)."""

    def act(self, obs: Tensor, state: Any, episode_start: Tensor, generator: torch.Generator) -> ActorOutput:
        """Actions for ``obs`` ``[T, S, *obs_shape]``; ``episode_start`` ``[T, S]`` bool marks first steps."""

    def observe(self, state: Any, actions: Tensor, rewards: Tensor, dones: Tensor) -> Any:
        """Fold a step's outcome into the state (RL² feeds back the previous action, reward, done)."""
