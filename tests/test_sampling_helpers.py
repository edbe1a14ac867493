"""Shared test actors and checks for the sampler tests (also imported by the other test_sampling_* files).

(Kept in a test module so it is owned with the tests; it has one test of its own:
the helpers check themselves.)
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from torch import Tensor

from metarl.sampling import MLPPolicy, TaskParamsActor, stack_params
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


def constant_actor(obs_dim: int, action_space, constants: list[float]) -> TaskParamsActor:
    """Per-task params whose policy outputs ``constants[i]`` for every action component of task row ``i``."""
    policy = MLPPolicy(obs_dim, action_space, hidden=())
    params = stack_params(policy, len(constants))
    params["net.0.weight"].zero_()
    for i, c in enumerate(constants):
        params["net.0.bias"][i] = c
    return TaskParamsActor(policy, params, deterministic=True)


def random_actor(obs_dim: int, action_space, n_tasks: int, seed: int = 0) -> TaskParamsActor:
    torch.manual_seed(seed)
    policy = MLPPolicy(obs_dim, action_space, hidden=(16,))
    params = stack_params(policy, n_tasks)
    params = {k: v + 0.1 * torch.randn_like(v) for k, v in params.items()}  # distinct per task
    return TaskParamsActor(policy, params)


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
