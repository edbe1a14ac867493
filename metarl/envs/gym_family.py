"""Any gymnasium env id becomes a task family by randomizing constructor arguments.

A task is one draw of the randomized keyword arguments, e.g. Pendulum with a
random gravity. No code needed on the CLI::

    metarl envs --env "gym:Pendulum-v1?g=8..12"          # g ~ U[8, 12]
    metarl envs --env "gym:CartPole-v1?sutton_barto_reward=true"   # a fixed kwarg

``lo..hi`` means uniform in [lo, hi]; ``a|b|c`` a uniform choice; anything else
is passed unchanged to every task. From Python::

    GymFamily("Pendulum-v1", randomize={"g": (8.0, 12.0)})

Each task needs its own constructor call, so switching task rebuilds the env.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from metarl.envs.base import EnvSpecError, Task, TaskFamily, split_stream


def _parse_value(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    if ".." in text:
        lo, hi = text.split("..", 1)
        try:
            return (float(lo), float(hi))
        except ValueError:
            raise EnvSpecError(f"bad range {text!r}; write lo..hi with numbers, e.g. 8..12") from None
    if "|" in text:
        import yaml

        return [yaml.safe_load(v) for v in text.split("|")]
    return text


def _show(value: Any) -> str:
    """Inverse of :func:`_parse_value`, so a family's name is a valid spec again."""
    if isinstance(value, tuple):
        return f"{value[0]:g}..{value[1]:g}"
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    return str(value)


class GymFamily(TaskFamily):
    """``env_id`` may carry gymnasium's ``module:EnvName-v0`` form: the module is imported first
    (its import registers the env), as ``gymnasium.make`` does."""

    def __init__(self, env_id: str, randomize: Mapping[str, Any] | None = None,
                 fixed: Mapping[str, Any] | None = None, horizon: int | None = None) -> None:
        module, sep, bare_id = env_id.partition(":")
        if sep:
            from metarl.envs.plugins import import_module

            import_module(module, f"gym:{env_id}")
        try:
            spec = gym.spec(bare_id if sep else env_id)
        except gym.error.Error as exc:
            known = [k for k in gym.registry if "/" not in k]
            from metarl.envs.base import suggest

            raise EnvSpecError(f"unknown gymnasium env id {env_id!r}{suggest(env_id, known)} ({exc})") from None
        self.env_id = env_id
        self.randomize: dict[str, Any] = {}
        self.fixed = dict(fixed or {})
        for key, val in (randomize or {}).items():
            val = _parse_value(val)
            if isinstance(val, tuple):
                lo, hi = val
                if not lo <= hi:
                    raise EnvSpecError(f"gym:{env_id}: range for {key!r} is [{lo}, {hi}]; need lo <= hi")
            elif not isinstance(val, list):
                self.fixed[key] = val
                continue
            self.randomize[key] = val
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
            raise EnvSpecError(f"gym:{env_id}: horizon={horizon!r} is invalid; allowed: an integer >= 1")
        self.horizon = int(horizon or spec.max_episode_steps or 1000)
        params = "&".join(f"{k}={_show(v)}" for k, v in {**self.randomize, **self.fixed}.items())
        self.name = f"gym:{env_id}" + (f"?{params}" if params else "")
        self.description = f"gymnasium {env_id} with randomized {sorted(self.randomize) or 'nothing'}"
        # Probe with one draw of every randomized argument, so an argument the env does not take
        # fails here, naming it, rather than inside a sampler worker at the first episode.
        probe = self._build({k: v[0] if isinstance(v, (tuple, list)) else v for k, v in self.randomize.items()})
        self._obs_space, self._act_space = probe.observation_space, probe.action_space
        probe.close()

    def _build(self, kwargs: Mapping[str, Any]) -> gym.Env:
        try:
            return gym.make(self.env_id, max_episode_steps=self.horizon, disable_env_checker=True,
                            **self.fixed, **kwargs)
        except Exception as exc:  # the env's constructor rejecting an argument is the spec's fault
            allowed = f"{', '.join(sorted({**self.fixed, **kwargs}))}" or "none"
            raise EnvSpecError(f"gym:{self.env_id} does not accept the arguments {allowed}: "
                               f"{type(exc).__name__}: {exc}") from None

    @property
    def observation_space(self) -> gym.Space:
        return self._obs_space

    @property
    def action_space(self) -> gym.Space:
        return self._act_space

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        g = split_stream(rng, split)
        params = []
        for _ in range(n):
            p: dict[str, Any] = {}
            for key, spec in self.randomize.items():
                if isinstance(spec, tuple):
                    p[key] = float(g.uniform(*spec))
                else:
                    choice: Sequence[Any] = spec
                    p[key] = choice[int(g.integers(len(choice)))]
            params.append(p)
        return self._tasks(split, params)

    def make_env(self, task: Task) -> gym.Env:
        env = self._build(task.params)
        env.task = task  # type: ignore[attr-defined]
        return env


def gym_family_from_spec(env_id: str, **kwargs: Any) -> GymFamily:
    """Spec form: every ``key=value`` is a fixed kwarg unless it is a range or a choice."""
    horizon = kwargs.pop("horizon", None)
    return GymFamily(env_id, randomize=kwargs, horizon=horizon)


