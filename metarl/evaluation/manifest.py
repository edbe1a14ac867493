"""What a run's numbers depend on, recorded so that runs are compared only with comparable runs.

``manifest(family)`` lists the library versions (metarl, metaworld, mujoco, gymnasium, torch,
numpy) and, for Meta-World families, the benchmark and its reward version. Every new run records
it in ``config.yaml`` (``run.manifest``) and Meta-World evaluations beside their results.
:func:`mismatches` names what differs between two manifests on the keys that change results
(benchmark version and reward version), for ``metarl evaluate``/``plot`` to refuse mixed runs
unless told ``--allow-mixed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from metarl.errors import UsageError

#: Keys whose difference makes two runs' numbers incomparable.
COMPARED = ("metaworld", "reward_version", "benchmark")
PACKAGES = ("metarl", "metaworld", "mujoco", "gymnasium", "torch", "numpy")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def manifest(family: Any) -> dict[str, Any]:
    """Versions of everything a run's numbers depend on, and the family's benchmark identity."""
    out: dict[str, Any] = {p: _version(p) for p in PACKAGES}
    from metarl.envs.metaworld_family import MetaWorldFamily

    if isinstance(family, MetaWorldFamily):
        out["benchmark"] = family.benchmark if family.task is None else f"ml1-{family.task}"
        out["benchmark_seed"] = family.seed
        out["reward_version"] = family.reward_version
    else:
        out["metaworld"] = None  # not a Meta-World run: the installed version does not matter
    return out


def mismatches(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``["reward_version: v2 vs v1", ...]`` for the compared keys on which ``a`` and ``b`` differ.

    A key either side does not record (a run from before manifests, a non-Meta-World run) is not
    a difference: only what both recorded can disagree.
    """
    return [f"{k}: {a[k]} vs {b[k]}" for k in COMPARED
            if a.get(k) is not None and b.get(k) is not None and a[k] != b[k]]


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest a run recorded in its ``config.yaml`` (empty for runs from before manifests)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return dict((doc.get("run") or {}).get("manifest") or {})


def check_comparable(run_dirs: Sequence[str | Path], allow_mixed: bool = False) -> None:
    """Refuse (a usage error, exit 2) to put runs side by side whose manifests disagree on what changes results."""
    if allow_mixed or len(run_dirs) < 2:
        return
    first, base = run_dirs[0], read_manifest(run_dirs[0])
    for other in run_dirs[1:]:
        diff = mismatches(base, read_manifest(other))
        if diff:
            raise UsageError(f"{first} and {other} are not comparable: their manifests differ in {'; '.join(diff)}; "
                             "allowed: --allow-mixed to put them side by side anyway")
