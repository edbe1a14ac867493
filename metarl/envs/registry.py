"""Finding task families by the names users type.

Four ways to name a family, all resolved by :func:`make_family`:

1. a built-in or registered name, with optional parameters:
   ``point-nav``, ``bandit?k=5&n=100``, ``ml1-reach``, ``ml10?seed=3``;
2. a Python path to a factory: ``my_package.module:factory?x=1``;
3. an installed package's entry point in the ``metarl.envs`` group;
4. any gymnasium env id with randomized constructor arguments:
   ``gym:Pendulum-v1?g=8..12``.

Parameters after ``?`` are ``key=value`` pairs joined by ``&``; values are read
as YAML scalars (``5`` is an int, ``true`` a bool). ``extra_kwargs`` (from
``--env-kwargs``) are merged on top.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from metarl.envs.base import EnvSpecError, TaskFamily, suggest

Factory = Callable[..., TaskFamily]

ENTRY_POINT_GROUP = "metarl.envs"
_REGISTRY: dict[str, Factory] = {}
_BUILTIN: set[str] = set()  # names registered by metarl itself, filled by _register_builtins


def register(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Make ``name`` resolvable; ``factory(**params)`` must return a TaskFamily."""
    if not name or any(c in name for c in "?&=:"):
        raise EnvSpecError(f"family name {name!r} is invalid; use letters, digits, '-' and '_'")
    if name in _REGISTRY and not overwrite:
        raise EnvSpecError(f"family {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = factory


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``'bandit?k=5&n=100'`` -> ``('bandit', {'k': 5, 'n': 100})``."""
    name, _, query = spec.strip().partition("?")
    params: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, raw = part.partition("=")
        if not eq or not key:
            raise EnvSpecError(f"bad parameter {part!r} in {spec!r}; write key=value pairs joined by '&'")
        params[key] = raw if ".." in raw or "|" in raw else _scalar(raw, key, spec)
    return name, params


def _scalar(raw: str, key: str, spec: str) -> Any:
    """A parameter value read as a YAML scalar (``5``, ``2.5``, ``true``); anything else is refused."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise EnvSpecError(f"bad value {raw!r} for {key!r} in {spec!r}; allowed: a number, true/false or a "
                           "plain word (quote nothing)") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise EnvSpecError(f"bad value {raw!r} for {key!r} in {spec!r}; allowed: a finite number")
    if isinstance(value, (list, dict)) or (value is not None and not isinstance(value, (str, int, float, bool))):
        raise EnvSpecError(f"bad value {raw!r} for {key!r} in {spec!r}; allowed: a number, true/false or a plain "
                           "word (lists go in --env-kwargs as JSON)")
    return value


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _builtin_names() -> list[str]:
    from metarl.envs.metaworld_family import task_names

    return sorted(_REGISTRY) + [f"ml1-{t}" for t in task_names()] + ["ml10", "ml45"]


def known_names() -> list[str]:
    """Every name ``make_family`` accepts without a Python path."""
    return _builtin_names() + sorted(_entry_points())


def factory_module(name: str) -> str | None:
    """The module that registered ``name`` from Python (``None`` for built-ins and unknown names)."""
    if name in _BUILTIN or name not in _REGISTRY:
        return None
    return getattr(_REGISTRY[name], "__module__", None)


def is_known_without_import(name: str) -> bool:
    """Whether ``name`` resolves without importing a module nobody vouched for.

    True for built-ins, Meta-World names, families registered in this process, installed entry
    points and gymnasium ids without a ``module:`` part (see :mod:`metarl.envs.plugins`).
    """
    if name.startswith("gym:"):
        return ":" not in name[4:]
    if ":" in name:
        return False
    if name in _REGISTRY or name in ("ml10", "ml45") or name.startswith("ml1-"):
        return True
    return name in _entry_points()


def _load_path(path: str) -> Factory:
    from metarl.envs.plugins import import_module

    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise EnvSpecError(f"plug-in {path!r}: write module:factory, e.g. my_tasks:make_family")
    module = import_module(module_name, f"plug-in {path!r}")
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise EnvSpecError(f"plug-in {path!r}: module {module_name!r} has no attribute {attr!r}{suggest(attr, names)}") from None


def _call(factory: Factory, origin: str, params: dict[str, Any]) -> TaskFamily:
    if not callable(factory):
        raise EnvSpecError(f"{origin}: {factory!r} is a {type(factory).__name__}, not callable; allowed: a "
                           "function or class that returns a metarl.envs.TaskFamily")
    try:
        sig = inspect.signature(factory)
    except ValueError:
        sig = None  # builtins without a signature: let the call itself complain
    if sig is not None:
        try:
            sig.bind(**params)
        except TypeError as exc:
            allowed = ", ".join(sig.parameters) or "none"
            raise EnvSpecError(f"{origin}: bad parameters {params}: {exc}; allowed: {allowed}") from None
    try:
        family = factory(**params)
    except EnvSpecError:
        raise
    except Exception as exc:  # a factory rejecting its parameters, or a broken plug-in: name it
        raise EnvSpecError(f"{origin}: building the family with parameters {params} raised "
                           f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(family, TaskFamily):
        raise EnvSpecError(
            f"{origin} returned {type(family).__name__}, not a metarl.envs.TaskFamily; "
            "a factory must return a TaskFamily subclass instance"
        )
    _check_family(family, origin)
    return family


def _check_family(family: TaskFamily, origin: str) -> None:
    """What the sampler relies on, checked once here so a broken plug-in fails by name, not mid-rollout."""
    for attr in ("horizon", "trial_episodes"):
        value = getattr(family, attr, None)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise EnvSpecError(f"{origin}: family attribute {attr}={value!r} is invalid; allowed: an integer >= 1")
    for attr in ("observation_space", "action_space"):
        try:
            space = getattr(family, attr)
        except Exception as exc:  # a property of the user's family that raises
            raise EnvSpecError(f"{origin}: reading {attr} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(space, gym.spaces.Space):
            raise EnvSpecError(f"{origin}: {attr} is a {type(space).__name__}; allowed: a gymnasium.spaces.Space")


def with_params(spec: str, params: dict[str, Any]) -> str:
    """``spec`` with ``params`` appended as ``key=value`` pairs (the inverse of :func:`parse_spec`)."""
    spec = spec.strip()
    if not params:
        return spec
    return spec + ("&" if "?" in spec else "?") + "&".join(f"{k}={v}" for k, v in params.items())


def make_family(spec: str, **extra_kwargs: Any) -> TaskFamily:
    """Resolve a family name (see module docstring) into a TaskFamily, remembering the spec it came from."""
    family = _make_family(spec, **extra_kwargs)
    if family.spec is None:
        family.spec = with_params(spec, extra_kwargs)
    return family


def _make_family(spec: str, **extra_kwargs: Any) -> TaskFamily:
    if not isinstance(spec, str) or not spec.strip():
        raise EnvSpecError(f"family name {spec!r} is empty; run `metarl envs` to list families")
    name, params = parse_spec(spec)
    params.update(extra_kwargs)
    if name.startswith("gym:"):
        from metarl.envs.gym_family import gym_family_from_spec

        return gym_family_from_spec(name[4:], **params)
    if name.startswith("ml1-") or name in ("ml10", "ml45"):
        from metarl.envs.metaworld_family import MetaWorldFamily

        if name.startswith("ml1-"):
            return _call(lambda seed=0, fast=True, reward_version="v2": MetaWorldFamily("ml1", name[4:], seed, fast,
                                                                                       reward_version), name, params)
        return _call(lambda seed=0, fast=True, reward_version="v2": MetaWorldFamily(name, None, seed, fast, reward_version),
                     name, params)
    if name not in _REGISTRY and ":" not in name:
        from metarl.envs.plugins import import_plugins

        import_plugins()  # a worker rebuilding a family that a vouched plug-in registers
    if name in _REGISTRY:
        return _call(_REGISTRY[name], name, params)
    if ":" in name:
        return _call(_load_path(name), f"plug-in {name!r}", params)
    eps = _entry_points()
    if name in eps:
        try:
            factory = eps[name].load()
        except Exception as exc:
            raise EnvSpecError(f"entry point {name!r} ({eps[name].value}) failed to load: {type(exc).__name__}: {exc}") from exc
        return _call(factory, f"entry point {name!r}", params)
    if name.startswith("ml1"):
        from metarl.envs.metaworld_family import task_names

        raise EnvSpecError(f"unknown Meta-World task in {name!r}{suggest(name[4:], task_names())} write ml1-<task>, "
                           f"e.g. ml1-reach")
    raise EnvSpecError(
        f"unknown task family {name!r}{suggest(name, known_names())}; "
        f"allowed: {', '.join(sorted(_REGISTRY) + sorted(eps) + ['ml1-<task>', 'ml10', 'ml45', 'gym:<id>'])}"
    )


def iter_listing() -> Iterator[str]:
    """Names shown by ``metarl envs``: one ``ml1-*`` line stands for the 50 ML1 tasks."""
    yield from sorted(_REGISTRY)
    yield from ["ml1-reach", "ml10", "ml45"]
    yield from sorted(_entry_points())


def _register_builtins() -> None:
    from metarl.envs.bandit import Bandit
    from metarl.envs.locomotion import AntDir, AntGoal, HalfCheetahDir, HalfCheetahVel
    from metarl.envs.point import PointNav
    from metarl.envs.tabular import TabularMDP

    for name, factory in {
        "point-nav": PointNav, "bandit": Bandit, "tabular-mdp": TabularMDP,
        "halfcheetah-vel": HalfCheetahVel, "halfcheetah-dir": HalfCheetahDir,
        "ant-dir": AntDir, "ant-goal": AntGoal,
    }.items():
        register(name, factory, overwrite=True)
        _BUILTIN.add(name)


_register_builtins()
