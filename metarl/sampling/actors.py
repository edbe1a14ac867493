"""Two reference actors, for tests, the benchmark and as templates for agents.

Plain torch on purpose (``metarl.nn`` holds the real policies); each shows one
side of the :class:`~metarl.sampling.actor.Actor` protocol:

* :class:`TaskParamsActor`: an ``nn.Module`` applied with per-task parameters
  (``functional_call`` under ``vmap`` over the task dimension), as MAML and
  Reptile need after their inner loop;
* :class:`GRUActor`: one shared GRU cell whose hidden state lives per slot and
  carries across the episodes of a trial, as RL² needs.

Both sample Gaussian actions (or categorical ones for ``Discrete`` spaces) from
the generator they are given, and return the distribution parameters in
``extras`` so agents can recompute ratios and KLs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import gymnasium as gym
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from metarl.sampling.actor import ActorOutput

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def space_dims(space: gym.Space[Any]) -> tuple[int, bool]:
    """(policy output size, is discrete) for a Box or Discrete action space."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n), True
    if isinstance(space, gym.spaces.Box):
        return int(math.prod(space.shape)), False
    raise TypeError(f"action space {space} is not supported; allowed: Box, Discrete")


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def sample_head(out: Tensor, log_std: Tensor | None, generator: torch.Generator,
                deterministic: bool) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Sample from a diagonal Gaussian (``log_std`` given) or a categorical (``out`` = logits).

    Noise is drawn for the whole ``[T, S, ...]`` batch at once, outside any vmap,
    so the draw depends only on the generator and the batch shape.
    """
    if log_std is None:
        logp_all = torch.log_softmax(out, -1)
        if deterministic:
            actions = out.argmax(-1)
        else:
            flat = logp_all.exp().reshape(-1, out.shape[-1])
            actions = torch.multinomial(flat, 1, generator=generator).view(out.shape[:-1])
        return actions, logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1), {"logits": out}
    log_std = log_std.expand_as(out)
    noise = torch.zeros_like(out) if deterministic else torch.randn(out.shape, generator=generator)
    actions = out + log_std.exp() * noise
    log_probs = (-0.5 * noise.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)
    return actions, log_probs, {"mean": out}


class MLPPolicy(nn.Module):
    """obs -> action mean (with a state-independent ``log_std``) or logits."""

    def __init__(self, obs_dim: int, action_space: gym.Space[Any], hidden: Sequence[int] = (64, 64),
                 init_log_std: float = 0.0) -> None:
        super().__init__()
        out_dim, self.discrete = space_dims(action_space)
        self.net = mlp([obs_dim, *hidden, out_dim])
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((out_dim,), float(init_log_std)))

    def forward(self, obs: Tensor) -> Tensor:
        return cast(Tensor, self.net(obs))

    def batched_forward(self, params: dict[str, Tensor], obs: Tensor) -> Tensor:
        """``vmap(functional_call(self, ...))`` over tasks, written out with ``baddbmm``.

        Same result, about 5x less per-call overhead: the forward runs in the
        driver once per step for every env, on the critical path of the
        ``process`` and ``ray`` backends.
        """
        x = obs
        for i, layer in enumerate(self.net):
            if isinstance(layer, nn.Linear):
                x = torch.baddbmm(params[f"net.{i}.bias"].unsqueeze(1), x, params[f"net.{i}.weight"].transpose(1, 2))
            else:
                x = layer(x)
        return x


def stack_params(module: nn.Module, n_tasks: int) -> dict[str, Tensor]:
    """The module's parameters repeated for ``n_tasks`` tasks (the pre-adaptation starting point)."""
    params, _ = stack_module_state([module] * n_tasks)
    return {k: v.detach().clone() for k, v in params.items()}


class TaskParamsActor:
    """``module`` applied with per-task parameters: the state *is* ``params`` (leading dim = tasks).

    ``params`` holds every parameter of ``module`` with a leading task dimension
    (``stack_params`` gives the pre-adaptation starting point; an agent's
    ``adapt`` returns the adapted ones). The log-std of a Gaussian policy is a
    per-task parameter too (``params['log_std']``, ``[T, act_dim]``). Any module
    works through ``vmap(functional_call)``; :class:`MLPPolicy` takes an
    equivalent hand-batched path unless ``use_vmap``.
    """

    def __init__(self, module: nn.Module, params: dict[str, Tensor], *, deterministic: bool = False,
                 use_vmap: bool = False) -> None:
        self.module, self.params, self.deterministic = module, params, deterministic
        self.discrete = bool(getattr(module, "discrete", False))

        def forward(p: dict[str, Tensor], obs: Tensor) -> Tensor:
            return cast(Tensor, functional_call(module, p, (obs,)))

        self._forward: Callable[[dict[str, Tensor], Tensor], Tensor] = (
            module.batched_forward if isinstance(module, MLPPolicy) and not use_vmap else vmap(forward))

    def initial_state(self, n_tasks: int, n_slots: int) -> dict[str, Tensor]:
        lead = {k: v.shape[0] for k, v in self.params.items()}
        if any(n != n_tasks for n in lead.values()):
            raise ValueError(f"per-task params have leading dims {lead} but the batch has {n_tasks} tasks")
        return self.params

    def act(self, obs: Tensor, state: dict[str, Tensor], episode_start: Tensor,
            generator: torch.Generator) -> ActorOutput:
        out = self._forward(state, obs)  # [T, S, out]
        log_std = None if self.discrete else state["log_std"][:, None, :]
        actions, log_probs, extras = sample_head(out, log_std, generator, self.deterministic)
        return ActorOutput(actions, log_probs, state, extras)

    def observe(self, state: Any, actions: Tensor, rewards: Tensor, dones: Tensor) -> Any:
        return state


class GRUActor(nn.Module):
    """RL²-style recurrent actor: input = [obs, previous action, previous reward, previous done].

    The hidden state is per slot and is *not* reset between the episodes of a
    trial (that is how RL² carries what it learned about the task); the sampler
    calls ``initial_state`` at each trial start. With ``keep_inputs`` the GRU
    input of each step is returned in ``extras['rnn_input']`` so an agent can
    replay the sequence with gradients.
    """

    def __init__(self, obs_dim: int, action_space: gym.Space[Any], hidden: int = 64, *, deterministic: bool = False,
                 keep_inputs: bool = False) -> None:
        super().__init__()
        self.out_dim, self.discrete = space_dims(action_space)
        self.obs_dim, self.hidden, self.deterministic, self.keep_inputs = obs_dim, hidden, deterministic, keep_inputs
        self.cell = nn.GRUCell(obs_dim + self.out_dim + 2, hidden)
        self.head = nn.Linear(hidden, self.out_dim)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.zeros(self.out_dim))

    def initial_state(self, n_tasks: int, n_slots: int) -> dict[str, Tensor]:
        def z(*s: int) -> Tensor:
            return torch.zeros(n_tasks, n_slots, *s)

        return {"h": z(self.hidden), "prev_action": z(self.out_dim), "prev_reward": z(1), "prev_done": z(1)}

    def act(self, obs: Tensor, state: dict[str, Tensor], episode_start: Tensor,
            generator: torch.Generator) -> ActorOutput:
        t, s = obs.shape[:2]
        x = torch.cat([obs.reshape(t, s, -1), state["prev_action"], state["prev_reward"], state["prev_done"]], -1)
        h = self.cell(x.reshape(t * s, -1), state["h"].reshape(t * s, -1)).view(t, s, -1)
        actions, log_probs, extras = sample_head(self.head(h), None if self.discrete else self.log_std,
                                                 generator, self.deterministic)
        if self.keep_inputs:
            extras["rnn_input"] = x
        return ActorOutput(actions, log_probs, {**state, "h": h}, extras)

    def observe(self, state: dict[str, Tensor], actions: Tensor, rewards: Tensor, dones: Tensor) -> dict[str, Tensor]:
        if self.discrete:
            prev = torch.nn.functional.one_hot(actions.long(), self.out_dim).float()
        else:
            prev = actions.reshape(*actions.shape[:2], -1).float()
        return {**state, "prev_action": prev, "prev_reward": rewards.float().unsqueeze(-1),
                "prev_done": dones.float().unsqueeze(-1)}
