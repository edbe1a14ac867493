"""Crash-safe, verifiable, code-execution-free checkpoints.

Layout inside a run directory::

    checkpoints/
      iter_000010/  state.pt  meta.json
      iter_000020/  ...
      latest        # text file: "iter_000020"

Why it is built this way:

* **Atomic**: a checkpoint is written into a hidden temp directory and
  published with one ``os.replace``. A crash (or SIGKILL, or full disk) while
  writing leaves, at worst, a stale temp dir that is ignored and later swept;
  earlier checkpoints are never touched. The rename is the commit point, so
  :func:`find_latest` trusts complete ``iter_*`` directories; the ``latest``
  file is a convenience for humans and tools, also replaced atomically.
* **Verified**: ``meta.json`` stores the sha256 of ``state.pt``; a truncated or
  edited file is reported as a :class:`CheckpointError` naming the file
  instead of a confusing unpickling error or, worse, silently wrong weights.
* **Safe**: ``state.pt`` is read with ``torch.load(weights_only=True)``, which
  refuses pickles that would import or call arbitrary code. The state must
  therefore contain only tensors, dicts, lists, tuples, str, int, float, bool
  and None; :func:`save_checkpoint` checks this up front so a bad state fails
  at save time (where the bug is) rather than at resume time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metarl.errors import UsageError
from metarl.fileio import atomic_write
from metarl.runs.rng import capture_rng_state, restore_rng_state
from metarl.runs.version import metarl_version

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "capture_rng_state",
    "check_weights_only_safe",
    "checkpoint_name",
    "find_latest",
    "list_checkpoints",
    "load_agent_state",
    "load_checkpoint",
    "prune_checkpoints",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
LATEST_FILE = "latest"
FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^iter_(\d+)$")
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


class CheckpointError(UsageError):
    """A checkpoint cannot be trusted or does not fit; the message names the file and why.

    A usage error (exit status 2): the checkpoint is input the user pointed at.
    """


@dataclass(frozen=True)
class Checkpoint:
    """A loaded, verified checkpoint."""

    path: Path
    iteration: int
    agent: str
    state: dict[str, Any]
    meta: dict[str, Any]


def checkpoint_name(iteration: int) -> str:
    """Zero-padded so directory listings sort by iteration."""
    return f"iter_{iteration:06d}"


def _root(run_dir: str | Path) -> Path:
    """Accept a run directory or its ``checkpoints/`` directory."""
    run_dir = Path(run_dir)
    return run_dir if run_dir.name == CHECKPOINTS_DIR else run_dir / CHECKPOINTS_DIR


# --------------------------------------------------------------------------- validation

_LEAF_TYPES = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype)


def check_weights_only_safe(obj: Any, where: str = "state") -> None:
    """Raise ``CheckpointError`` naming the first value ``weights_only`` would refuse."""
    if isinstance(obj, _LEAF_TYPES):
        return
    if isinstance(obj, Mapping):
        if not isinstance(obj, (dict,)):
            raise CheckpointError(f"{where} is a {type(obj).__name__}; use a plain dict in checkpoint state")
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(f"{where} has a key of type {type(k).__name__}: {k!r}")
            check_weights_only_safe(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_weights_only_safe(v, f"{where}[{i}]")
        return
    hint = " (convert with torch.as_tensor or .tolist())" if "numpy" in type(obj).__module__ else ""
    raise CheckpointError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which "
        f"torch.load(weights_only=True) cannot read back{hint}"
    )


# --------------------------------------------------------------------------- writing


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every filesystem
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_synced(path: Path, write: Any) -> None:
    with path.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _sweep_stale(root: Path) -> None:
    """Remove temp dirs and files left by crashed writers (a run dir has one writer at a time)."""
    for p in root.iterdir():
        if p.name.startswith((_TMP_PREFIX, _OLD_PREFIX)):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def save_checkpoint(
    run_dir: str | Path,
    state: Mapping[str, Any],
    *,
    agent: str,
    iteration: int,
    keep_last: int | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Atomically write ``checkpoints/iter_<iteration>/`` and point ``latest`` at it.

    ``iteration`` is the number of completed iterations (so resuming starts at
    it). Rewriting an existing iteration replaces it atomically too.
    ``keep_last`` prunes older checkpoints after the new one is committed.
    """
    check_weights_only_safe(dict(state))
    root = _root(run_dir)
    try:
        return _save(root, run_dir, state, agent, iteration, keep_last, extra_meta)
    except OSError as exc:  # full disk, read-only or vanished folder: nothing half-written is left behind
        raise CheckpointError(f"cannot write a checkpoint under {root}: {exc.strerror or exc} "
                              f"({exc.filename or root}); free space or fix permissions, then resume") from None


def _save(root: Path, run_dir: str | Path, state: Mapping[str, Any], agent: str, iteration: int,
          keep_last: int | None, extra_meta: Mapping[str, Any] | None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _sweep_stale(root)
    name = checkpoint_name(iteration)
    final = root / name
    tmp = root / f"{_TMP_PREFIX}{name}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        _write_synced(tmp / STATE_FILE, lambda f: torch.save(dict(state), f))
        meta = {
            "format_version": FORMAT_VERSION,
            "agent": agent,
            "iteration": iteration,
            "metarl_version": metarl_version(),
            "torch_version": torch.__version__,
            "state_file": STATE_FILE,
            "sha256": _sha256(tmp / STATE_FILE),
            **dict(extra_meta or {}),
        }
        _write_synced(tmp / META_FILE, lambda f: f.write(json.dumps(meta, indent=2).encode()))
        _fsync_dir(tmp)
        if final.exists():  # os.replace cannot replace a non-empty directory
            old = root / f"{_OLD_PREFIX}{name}-{uuid.uuid4().hex}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write(root / LATEST_FILE, name + "\n", fsync=True, tmp_prefix=_TMP_PREFIX, unique=True)  # swept if killed
    if keep_last is not None:
        prune_checkpoints(run_dir, keep_last)
    return final


# --------------------------------------------------------------------------- finding


def _iteration_of(path: Path) -> int | None:
    m = _NAME_RE.match(path.name)
    return int(m.group(1)) if m else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Committed checkpoint directories, oldest first (temp dirs are ignored)."""
    root = _root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _iteration_of(p) is not None and (p / META_FILE).is_file()]
    return sorted(found, key=lambda p: _iteration_of(p) or 0)


def find_latest(run_dir: str | Path) -> Path | None:
    """The highest-iteration committed checkpoint, or None if there is none."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints; returns what was removed."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    doomed = list_checkpoints(run_dir)[:-keep_last]
    for p in doomed:
        shutil.rmtree(p)
    return doomed


# --------------------------------------------------------------------------- loading


def _resolve(path: Path) -> Path:
    """A checkpoint dir as given, or the latest one inside a run/checkpoints dir."""
    if (path / META_FILE).exists() or _iteration_of(path) is not None:
        return path
    latest = find_latest(path)
    if latest is None:
        raise CheckpointError(f"{path}: no checkpoint found (expected {CHECKPOINTS_DIR}/iter_*/)")
    return latest


def _read_meta(meta_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{meta_path}: missing; the checkpoint is incomplete") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{meta_path}: unreadable or corrupt JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    for key, kind in (("sha256", str), ("iteration", int), ("agent", str)):
        if key not in meta:
            raise CheckpointError(f"{meta_path}: missing field '{key}'")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise CheckpointError(f"{meta_path}: field '{key}' is {meta[key]!r}; allowed: a {kind.__name__}")
    state_file = meta.get("state_file", STATE_FILE)
    if not isinstance(state_file, str) or Path(state_file).name != state_file:
        raise CheckpointError(f"{meta_path}: state_file {state_file!r} must name a file inside the checkpoint")
    return meta


def _unpickling_cause(exc: Exception) -> str:
    """The one informative sentence of torch's long weights_only error (which also
    suggests ``weights_only=False``, advice we deliberately do not repeat)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    m = re.search(r"WeightsUnpickler error: (.*?\.)(?:\s|$)", text)
    if m:
        return m.group(1)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def load_checkpoint(
    path: str | Path,
    *,
    map_location: str | torch.device = "cpu",
    verify: bool = True,
) -> Checkpoint:
    """Load and verify a checkpoint directory (or the latest one in a run dir).

    Raises :class:`CheckpointError` naming the offending file when the
    checkpoint is missing, incomplete, truncated, modified (sha256 mismatch),
    or contains pickled code that ``weights_only=True`` refuses to run.
    """
    ckpt_dir = _resolve(Path(path))
    meta = _read_meta(ckpt_dir / META_FILE)
    state_path = ckpt_dir / str(meta.get("state_file", STATE_FILE))
    if not state_path.is_file():
        raise CheckpointError(f"{state_path}: missing; the checkpoint is incomplete")
    if verify:
        actual = _sha256(state_path)
        if actual != meta["sha256"]:
            raise CheckpointError(
                f"{state_path}: sha256 mismatch ({state_path.stat().st_size} bytes): "
                f"the file is truncated or was modified after it was written "
                f"(expected {meta['sha256']}, got {actual})"
            )
    try:
        state = torch.load(state_path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{state_path}: refused to load: it contains pickled objects other than "
            f"tensors and plain containers, which could run code (weights_only=True). "
            f"Cause: {_unpickling_cause(exc)}"
        ) from exc
    except Exception as exc:  # truncated zip, wrong format, ...
        raise CheckpointError(f"{state_path}: cannot be read: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{state_path}: expected a dict, got {type(state).__name__}")
    return Checkpoint(
        path=ckpt_dir,
        iteration=int(meta["iteration"]),
        agent=str(meta["agent"]),
        state=state,
        meta=meta,
    )


def load_agent_state(agent: Any, ckpt: Checkpoint) -> None:
    """Load a verified checkpoint's ``agent`` state into ``agent``; a misfit is a usage error naming it.

    The sha256 only proves the file is the one that was written: a checkpoint of another
    configuration (other layer sizes, another policy) or a hand-edited state still gets here,
    and must fail with the file and the first mismatch named, not a raw ``KeyError``.
    """
    state = ckpt.state.get("agent")
    if not isinstance(state, dict):
        raise CheckpointError(f"{ckpt.path}: has no agent state (expected a dict under 'agent')")
    try:
        agent.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError, AttributeError) as exc:
        detail = " ".join(str(exc).split())[:400]
        raise CheckpointError(f"{ckpt.path}: does not fit this run's {getattr(agent, 'name', 'agent')} agent "
                              f"(another config, or a damaged state): {type(exc).__name__}: {detail}") from None
