"""Meta-RL agents, each its paper's algorithm in one file over :mod:`metarl.core`.

Agents are looked up by the name typed after ``metarl train``; modules load
lazily so ``metarl envs`` does not import every agent.
"""

from __future__ import annotations

import importlib

from metarl.envs.base import EnvSpecError, suggest

AGENTS: dict[str, str] = {
    "maml-trpo": "metarl.agents.maml_trpo:MAMLTRPO",
    "meta-sgd": "metarl.agents.meta_sgd:MetaSGD",
    "multitask-trpo": "metarl.agents.maml_trpo:MultiTaskTRPO",
    "reptile-ppo": "metarl.agents.reptile_ppo:ReptilePPO",
    "rl2": "metarl.agents.rl2:RL2",
}


def agent_class(name: str) -> type:
    """The agent class for a CLI name; unknown names fail with the nearest valid one."""
    if name not in AGENTS:
        raise EnvSpecError(f"unknown agent {name!r}{suggest(name, AGENTS)}; allowed: {', '.join(sorted(AGENTS))}")
    module, _, attr = AGENTS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
