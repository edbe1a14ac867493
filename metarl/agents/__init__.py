"""Meta-RL agents, each its paper's algorithm in one file over :mod:`metarl.core`.

An agent registers itself where it is defined: every subclass of
:class:`~metarl.agents.base.MetaAgent` that sets its own ``name`` is the agent of that name
(``MetaAgent.__init_subclass__`` calls :func:`register`), so the registry and the classes cannot
drift apart. The modules of this package are imported on the first lookup, not before, so
``metarl envs`` imports no agent (and no torch).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from metarl.envs.base import EnvSpecError, suggest

_REGISTRY: dict[str, type] = {}
_LOADED = False


def register(cls: type) -> None:
    """Make ``cls`` the agent named ``cls.name``; two different classes may not share a name."""
    name = cls.__dict__["name"]
    other = _REGISTRY.get(name)
    if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"two agents are named {name!r}: {other.__module__}.{other.__qualname__} and "
                         f"{cls.__module__}.{cls.__qualname__}")
    _REGISTRY[name] = cls


def _registry() -> dict[str, type]:
    global _LOADED
    if not _LOADED:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _LOADED = True
    return _REGISTRY


def agent_names() -> list[str]:
    """Every agent's name, sorted."""
    return sorted(_registry())


def agent_help() -> str:
    """``name (summary), ...`` of every agent, from each class's ``summary``: the CLI's agent list."""
    parts = []
    for name, cls in sorted(_registry().items()):
        summary = cls.__dict__.get("summary", "")
        parts.append(f"{name} ({summary})" if summary else name)
    return ", ".join(parts)


def agent_class(name: str) -> type:
    """The agent class for a CLI name; unknown names fail with the nearest valid one."""
    registry = _registry()
    if name not in registry:
        raise EnvSpecError(f"unknown agent {name!r}{suggest(name, registry)}; allowed: {', '.join(sorted(registry))}")
    return registry[name]


def __getattr__(attr: str) -> Any:
    if attr == "AGENTS":  # name -> "module:Class", as the registry was once written out by hand
        return {n: f"{c.__module__}:{c.__qualname__}" for n, c in sorted(_registry().items())}
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
