"""Shared test actors and checks for the sampler tests (also imported by the other test_sampling_* files).

(Kept in a test module so it is owned with the tests; it has one test of its own:
the helpers check themselves.)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from metarl.core import module_params, stack_params
from metarl.nn import CategoricalMLPPolicy, GaussianMLPPolicy, Policy, RecurrentPolicy
from metarl.nn.heads import DistParams
from metarl.sampling.actor import ActorOutput


class CounterActor:
    """action[0] = steps taken since trial start / 4; agent_info['episodes_seen'] = dones observed this trial.

    With the toy env (reward = action[0], clipped to +-10) the rewards of a trial read 0, 1/4, 2/4, ... across
    its episodes iff the state carries over episodes and restarts at each trial.
    """

    def initial_state(self, n_tasks: int, n_slots: int) -> dict[str, Tensor]:
        return {"count": torch.zeros(n_tasks, n_slots), "dones": torch.zeros(n_tasks, n_slots)}

    def act(self, obs: Tensor, state: dict[str, Tensor], episode_start: Tensor, generator: torch.Generator):
        actions = torch.stack([state["count"] / 4, torch.zeros_like(state["count"])], -1)
        extras = {"episodes_seen": state["dones"].clone(), "episode_start": episode_start.clone()}
        return ActorOutput(actions, torch.zeros(obs.shape[:2]), {**state, "count": state["count"] + 1}, extras)

    def observe(self, state: dict[str, Tensor], actions: Tensor, rewards: Tensor, dones: Tensor) -> Any:
        return {**state, "dones": state["dones"] + dones.float()}


def _dist_extras(policy: Policy, out: DistParams) -> dict[str, Tensor]:
    """What the test actors keep in ``Episodes.agent_info``: the Gaussian mean or the logits."""
    return {"logits" if policy.discrete else "mean": out[0]}


def _action_dim(space: gym.Space) -> int:
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else math.prod(space.shape)


class PolicyTestActor:
    """A :mod:`metarl.nn` policy applied with per-task parameters (leading dim = tasks), as MAML and Reptile
    act after their inner loop: one ``dist_params_stacked`` (vmap) call per step for all envs.

    Test-only, so the sampler tests need no agent (:class:`metarl.agents.base.PolicyActor` is the real
    one); unlike it, this actor keeps the distribution parameters in ``extras`` (``mean`` or ``logits``)
    so the tests can check what reaches ``Episodes.agent_info``.
    """

    def __init__(self, policy: Policy, params: Mapping[str, Tensor], *, deterministic: bool = False) -> None:
        self.policy, self.params, self.deterministic = policy, dict(params), deterministic

    def initial_state(self, n_tasks: int, n_slots: int) -> None:
        lead = {k: v.shape[0] for k, v in self.params.items()}
        if any(n != n_tasks for n in lead.values()):
            raise ValueError(f"per-task params have leading dims {lead} but the batch has {n_tasks} tasks")
        return None

    def act(self, obs: Tensor, state: None, episode_start: Tensor, generator: torch.Generator) -> ActorOutput:
        out = self.policy.dist_params_stacked(self.params, obs)  # [T, S, ...] each
        actions = self.policy.head.sample(out, deterministic=self.deterministic, generator=generator)
        log_probs = self.policy.head.distribution(out).log_prob(actions)
        return ActorOutput(actions, log_probs, state, _dist_extras(self.policy, out))

    def observe(self, state: None, actions: Tensor, rewards: Tensor, dones: Tensor) -> None:
        return state


class RecurrentTestActor:
    """A :class:`metarl.nn.RecurrentPolicy` stepped for every env slot through its public ``step_features``,
    fed back the previous action, reward and done (RL²'s inputs, ``make_inputs``).

    The memory lives per slot and is *not* reset between the episodes of a trial: the sampler's call of
    ``initial_state`` at each trial start is the only reset. ``extras`` as :class:`PolicyTestActor`'s.
    """

    def __init__(self, policy: RecurrentPolicy, *, deterministic: bool = False) -> None:
        self.policy, self.deterministic = policy, deterministic

    def initial_state(self, n_tasks: int, n_slots: int) -> dict[str, Any]:
        n = n_tasks * n_slots
        none_yet = (torch.full((n,), -1, dtype=torch.long) if self.policy.discrete
                    else torch.zeros(n, self.policy.action_dim))
        return {"memory": self.policy.initial_state(n), "prev_action": none_yet,
                "prev_reward": torch.zeros(n), "prev_done": torch.zeros(n)}

    def act(self, obs: Tensor, state: dict[str, Any], episode_start: Tensor,
            generator: torch.Generator) -> ActorOutput:
        t, s = obs.shape[:2]
        x = self.policy.make_inputs(obs.reshape(t * s, -1), state["prev_action"], state["prev_reward"],
                                    state["prev_done"])
        features, memory = self.policy.step_features(x, state["memory"])
        out = self.policy.head(features)
        actions = self.policy.head.sample(out, deterministic=self.deterministic, generator=generator)
        log_probs = self.policy.head.distribution(out).log_prob(actions)
        extras = {k: v.view(t, s, *v.shape[1:]) for k, v in _dist_extras(self.policy, out).items()}
        return ActorOutput(actions.view(t, s, *actions.shape[1:]), log_probs.view(t, s), {**state, "memory": memory},
                           extras)

    def observe(self, state: dict[str, Any], actions: Tensor, rewards: Tensor, dones: Tensor) -> dict[str, Any]:
        n = rewards.numel()
        return {**state, "prev_action": actions.reshape(n, *actions.shape[2:]),
                "prev_reward": rewards.reshape(n).float(), "prev_done": dones.reshape(n).float()}


def mlp_policy(obs_dim: int, action_space: gym.Space, hidden: tuple[int, ...]) -> Policy:
    """Categorical for a ``Discrete`` action space, else Gaussian (std 1)."""
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, _action_dim(action_space), hidden)
    return GaussianMLPPolicy(obs_dim, _action_dim(action_space), hidden)


def recurrent_policy(obs_dim: int, action_space: gym.Space, hidden: int) -> RecurrentPolicy:
    return RecurrentPolicy(obs_dim, _action_dim(action_space), discrete=isinstance(action_space, gym.spaces.Discrete),
                           hidden_size=hidden)


def constant_actor(obs_dim: int, action_space, constants: list[float]) -> PolicyTestActor:
    """Per-task params whose policy outputs ``constants[i]`` for every action component of task row ``i`` (Box)."""
    policy = GaussianMLPPolicy(obs_dim, _action_dim(action_space), hidden_sizes=())  # one linear layer
    params = stack_params([module_params(policy, detach=True)] * len(constants))
    params["head.mean.weight"].zero_()
    for i, c in enumerate(constants):
        params["head.mean.bias"][i] = c
    return PolicyTestActor(policy, params, deterministic=True)


def random_actor(obs_dim: int, action_space, n_tasks: int, seed: int = 0) -> PolicyTestActor:
    torch.manual_seed(seed)
    policy = mlp_policy(obs_dim, action_space, (16,))
    base = module_params(policy, detach=True)
    params = stack_params([{k: v + 0.1 * torch.randn_like(v) for k, v in base.items()}
                           for _ in range(n_tasks)])  # distinct per task
    return PolicyTestActor(policy, params)


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (read from /proc; psutil is not installed)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _live_where(field: int, value: int) -> set[int]:
    """Live (non-zombie) pids whose /proc stat ``field`` (after the command name) equals ``value``."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[field]) == value and fields[0] != "Z":
                out.add(int(entry))
    return out


def children(pid: int | None = None) -> set[int]:
    """Live child pids of ``pid`` (default: this process)."""
    return _live_where(1, os.getpid() if pid is None else pid)


def session(sid: int) -> set[int]:
    """Live processes of session ``sid`` (a subprocess started with ``start_new_session``)."""
    return _live_where(3, sid)


def test_helpers_see_this_process() -> None:
    assert alive(os.getpid())
    assert not alive(2**22 + 12345)
    assert os.getpid() in children(os.getppid())


def wait_gone(pids: list[int], within: float = 10.0) -> bool:
    """True once none of ``pids`` is alive, polling until ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False
