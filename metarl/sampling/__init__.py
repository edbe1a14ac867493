"""Rollouts for meta-RL: many tasks x many episodes stepped together, on one core, many, or a Ray cluster.

>>> from metarl.agents.base import PolicyActor
>>> from metarl.envs import make_family
>>> from metarl.nn import GaussianMLPPolicy
>>> from metarl.sampling import make_sampler
>>> family = make_family("point-nav")
>>> tasks = family.sample(4, rng=0)
>>> actor = PolicyActor(GaussianMLPPolicy(2, 2))  # its own weights for every task; or per-task params
>>> with make_sampler("point-nav", backend="serial") as sampler:
...     episodes = sampler.sample(tasks, actor, episodes_per_task=5, seed=0)
>>> tuple(episodes.rewards.shape)
(4, 5, 100)

Names are imported lazily: worker processes import :mod:`metarl.sampling.worker`
(and through it this package) and should not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Actor": "actor", "ActorOutput": "actor",
    "Episodes": "episodes",
    "SamplerConfigError": "errors", "SamplerError": "errors",
    "BACKENDS": "sampler", "Sampler": "sampler", "episode_seeds": "sampler", "make_sampler": "sampler",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"metarl.sampling.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'metarl.sampling' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
