"""Which plug-in code metarl may import, and when.

A family spec can name code: ``my_pkg.tasks:make_family`` imports ``my_pkg.tasks`` and calls
``make_family``; ``gym:my_pkg:Walker-v0`` makes gymnasium import ``my_pkg``. Typed by the user on
the command line, that is what they asked for. Read back from a run directory's ``config.yaml``
(``metarl evaluate``, ``metarl train --resume``, :func:`metarl.api.load_agent`), it is text from a
file that may have come from anywhere, and ``env: 'os:system?command=...'`` would run a command.
Checkpoints are already loaded with ``weights_only=True`` for this reason; the spec gets the same
care. So a recorded spec may only use code the user has vouched for:

* built-in families (``point-nav``, ``ml10``, ...) and gymnasium ids without a module part;
* families of installed packages (the ``metarl.envs`` entry-point group): installing is vouching;
* families registered with :func:`~metarl.envs.register` in this very process;
* modules named by the user: ``--plugin MODULE`` on the CLI (repeatable), ``METARL_PLUGINS`` in
  the environment (comma-separated), or ``plugins=[...]`` in the Python API.

A family registered from Python is found again the same way: the run records the module that
registered it (``run.plugins`` in ``config.yaml``), and ``--plugin MODULE`` imports that module,
whose ``register(...)`` call makes the name known again. Nothing recorded is imported until the
user names it; the error says exactly what to pass.

Why the current directory is importable for plug-ins: ``python -m`` puts it on ``sys.path``, a
console script does not, and the README's ``examples.my_tasks:make_family`` should work from the
repository root either way. It is appended (never prepended), so it cannot shadow an installed
package.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Sequence

from metarl.envs.base import EnvSpecError

__all__ = [
    "PLUGINS_ENV",
    "check_recorded_spec",
    "import_module",
    "import_plugins",
    "plugin_module_of",
    "vouch",
    "vouched_modules",
]

PLUGINS_ENV = "METARL_PLUGINS"


def vouched_modules() -> list[str]:
    """The modules the user has vouched for, from ``METARL_PLUGINS`` (comma- or colon-separated)."""
    raw = os.environ.get(PLUGINS_ENV, "")
    return [m.strip() for m in raw.replace(os.pathsep, ",").split(",") if m.strip()]


def vouch(modules: Iterable[str]) -> list[str]:
    """Add ``modules`` to the vouched set of this process and of the workers it starts.

    Kept in the environment on purpose: sampler workers (spawned processes, a local Ray
    cluster) inherit it, so they can import the same plug-ins to rebuild the family.
    """
    names = vouched_modules()
    for module in modules:
        module = module.strip()
        if not module or not all(part.isidentifier() for part in module.split(".")):
            raise EnvSpecError(f"--plugin {module!r} is not a module name; allowed: a dotted Python module "
                               "path such as my_tasks or my_pkg.tasks")
        if module not in names:
            names.append(module)
    os.environ[PLUGINS_ENV] = ",".join(names)
    return names


def _cwd_importable() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def import_module(name: str, what: str) -> object:
    """Import a user's module (the current directory importable), any failure a usage error naming it."""
    _cwd_importable()
    try:
        return importlib.import_module(name)
    except Exception as exc:  # whatever the user's module raises on import is theirs to see
        raise EnvSpecError(f"{what}: cannot import module {name!r}: {type(exc).__name__}: {exc}") from exc


def import_plugins(modules: Sequence[str] | None = None) -> list[str]:
    """Import the vouched modules (their ``register(...)`` calls run); returns their names."""
    names = list(vouched_modules() if modules is None else modules)
    for name in names:
        if name not in sys.modules:
            import_module(name, f"plug-in module (--plugin / {PLUGINS_ENV})")
    return names


def plugin_module_of(spec: str) -> str | None:
    """The module a family spec built by this process came from, if it is not built in.

    Recorded in a new run's ``config.yaml`` so a later ``evaluate`` or ``--resume`` can say
    which module to vouch for.
    """
    from metarl.envs.registry import factory_module, parse_spec

    name, _ = parse_spec(spec)
    if name.startswith("gym:"):
        module, sep, _ = name[4:].partition(":")
        return module if sep else None
    if ":" in name:
        return name.partition(":")[0]
    return factory_module(name)


def check_recorded_spec(spec: str, *, source: str, recorded_plugins: Sequence[str] = (),
                        plugins: Sequence[str] = ()) -> None:
    """Refuse a spec read from ``source`` (a file) that would import code nobody vouched for.

    ``recorded_plugins``: the modules the run says it needs (``run.plugins``); ``plugins``: the
    ones vouched for in this call (the Python API), on top of ``--plugin`` / ``METARL_PLUGINS``.
    Imports the vouched modules a recorded name needs, so the name resolves afterwards.
    """
    from metarl.envs.registry import is_known_without_import, parse_spec

    if not isinstance(spec, str) or not spec.strip():
        raise EnvSpecError(f"{source}: the recorded family {spec!r} is not a family spec")
    allowed = [*vouched_modules(), *plugins]
    name, _ = parse_spec(spec)
    if name.startswith("gym:"):
        module, sep, _ = name[4:].partition(":")
        code = module if sep else None
    elif ":" in name:
        code = name.partition(":")[0]
    elif is_known_without_import(name):
        return
    else:
        needed = [m for m in recorded_plugins if isinstance(m, str)]
        missing = [m for m in needed if m not in allowed]
        if needed and not missing:
            import_plugins(needed)
            if is_known_without_import(name):
                return
            raise EnvSpecError(f"{source}: family {name!r} is still unknown after importing {', '.join(needed)}; "
                               f"that module must call metarl.envs.register({name!r}, ...) when imported")
        if not needed:
            import_plugins(allowed)
            if is_known_without_import(name):
                return
            raise EnvSpecError(
                f"{source}: family {name!r} is not built in, not installed (no 'metarl.envs' entry point) and "
                f"the run does not record which module registered it; pass --plugin MODULE (or set "
                f"{PLUGINS_ENV}=MODULE) naming the module whose import calls metarl.envs.register({name!r}, ...)")
        code = missing[0]
        if code == "__main__":
            raise EnvSpecError(
                f"{source}: family {name!r} was registered by a script (__main__), which cannot be imported "
                f"again; move the register({name!r}, ...) call into a module and pass --plugin MODULE")
        raise EnvSpecError(
            f"{source}: family {name!r} was registered from Python by module {code!r}, which you have not "
            f"vouched for; metarl does not import modules named in a run directory on its own. If you trust "
            f"it, pass --plugin {code} (or set {PLUGINS_ENV}={code}; from Python: plugins=[{code!r}])")
    if code is not None and code not in allowed:
        raise EnvSpecError(
            f"{source}: family {spec!r} runs code from module {code!r}, which you have not vouched for; "
            f"metarl does not import modules named in a run directory on its own. If you trust it, pass "
            f"--plugin {code} (or set {PLUGINS_ENV}={code}; from Python: plugins=[{code!r}])")
