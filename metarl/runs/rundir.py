"""Run directories: one self-describing folder per training run.

Layout::

    runs/<algo>-<env>-<YYYYmmdd-HHMMSS>/
      config.yaml      # {run: metadata, config: resolved hyperparameters}
      progress.csv     # one row per logged iteration (appended on resume)
      events.out.tfevents.*   # TensorBoard
      checkpoints/     # see metarl.runs.checkpoint
      eval/            # meta-test curves (CSV/JSON + PNG)

``config.yaml`` holds everything needed to reproduce the run (agent, env
spec, seed, device, metarl version, command line) so a folder copied off a
cluster still explains itself. A non-empty directory is never reused unless
the caller is resuming it: silently mixing two runs' logs and checkpoints is
worse than failing.
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from metarl.errors import UsageError
from metarl.fileio import atomic_write
from metarl.runs.config import ConfigError, apply_overrides, from_dict, resolve_config, to_dict
from metarl.runs.version import metarl_version

__all__ = [
    "RunDir",
    "RunDirError",
    "RunMetadata",
    "create_run_dir",
    "default_run_dir",
    "open_run_dir",
    "prepare_run",
    "read_run_config",
    "resume_command",
]

C = TypeVar("C")

CONFIG_FILE = "config.yaml"


class RunDirError(UsageError):
    """The run directory cannot be used as asked (exists, missing, not a run)."""


@dataclass(frozen=True)
class RunMetadata:
    """Facts about a run that are not hyperparameters but are needed to reproduce it."""

    agent: str
    env: str
    seed: int
    device: str = "cpu"
    #: Modules that must be imported to rebuild ``env`` (a plug-in that registered it from Python,
    #: or a ``module:factory`` spec). Read back only once the user vouches for them
    #: (``--plugin``; see :mod:`metarl.envs.plugins`).
    plugins: list[str] = field(default_factory=list)
    metarl_version: str = field(default_factory=metarl_version)
    #: Library versions and the benchmark identity the numbers depend on
    #: (:func:`metarl.evaluation.manifest.manifest`); compared before runs are plotted together.
    manifest: dict = field(default_factory=dict)
    command: str = field(default_factory=lambda: shlex.join(sys.argv))
    created: str = field(default_factory=lambda: _dt.datetime.now().astimezone().isoformat(timespec="seconds"))


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory, so no module hard-codes file names."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def progress_csv(self) -> Path:
        return self.path / "progress.csv"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def eval(self) -> Path:
        return self.path / "eval"

    def __fspath__(self) -> str:
        return str(self.path)


def _slug(text: str) -> str:
    """Env specs like ``Meta-World/ML1-train:reach-v3`` must not create subfolders."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "env"


def default_run_dir(algo: str, env: str, root: str | Path = "runs", now: _dt.datetime | None = None) -> Path:
    """``root/<algo>-<env>-<timestamp>``, suffixed ``-1``, ``-2`` if launched in the same second."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{_slug(algo)}-{_slug(env)}-{stamp}"
    candidate, n = base, 0
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def create_run_dir(
    metadata: RunMetadata,
    config: Any,
    path: str | Path | None = None,
    root: str | Path = "runs",
) -> RunDir:
    """Create a fresh run directory and write ``config.yaml``.

    Refuses an existing non-empty ``path``: reusing it would interleave two
    runs. Use :func:`open_run_dir` to resume.
    """
    target = Path(path) if path is not None else default_run_dir(metadata.agent, metadata.env, root)
    if target.exists():
        if not target.is_dir():
            raise RunDirError(f"run dir {target} exists and is not a directory")
        if any(target.iterdir()):
            raise RunDirError(
                f"run dir {target} already exists and is not empty; "
                f"resume it with {resume_command(target)!r} or choose another --run-dir"
            )
    run = RunDir(target)
    created = not target.exists()
    try:
        for d in (run.path, run.checkpoints, run.eval):
            d.mkdir(parents=True, exist_ok=True)
        _write_document(run, {"run": asdict(metadata), "config": to_dict(config)})
    except RunDirError:
        if created:  # nothing half-made is left behind
            shutil.rmtree(target, ignore_errors=True)
        raise
    except OSError as exc:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise RunDirError(f"cannot create run dir {target}: {exc.strerror or exc} ({exc.filename or target}); "
                          "allowed: a new or empty folder in a writable place (--run-dir)") from None
    return run


def _write_document(run: RunDir, document: Mapping[str, Any]) -> None:
    """Atomic, so an interrupted resume never leaves a run without its config."""
    try:
        atomic_write(run.config_file, yaml.safe_dump(dict(document), sort_keys=False))
    except OSError as exc:
        raise RunDirError(f"cannot write {run.config_file}: {exc.strerror or exc}") from None


def open_run_dir(path: str | Path) -> RunDir:
    """An existing run directory to resume; it must contain ``config.yaml``."""
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise RunDirError(f"cannot resume: run dir {run.path} does not exist")
    if not run.config_file.is_file():
        raise RunDirError(f"cannot resume: {run.path} is not a metarl run (no {CONFIG_FILE})")
    try:
        run.checkpoints.mkdir(exist_ok=True)
        run.eval.mkdir(exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot resume {run.path}: {exc.strerror or exc} ({exc.filename})") from None
    return run


def read_run_config(run: RunDir | str | Path, config_cls: type[C] | None = None) -> tuple[dict[str, Any], C | dict[str, Any]]:
    """``(metadata dict, config)`` from ``config.yaml``; config typed if ``config_cls`` given."""
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    try:
        document = yaml.safe_load(run.config_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RunDirError(f"{run.config_file}: cannot read run config: {exc}") from exc
    if not isinstance(document, Mapping) or not {"run", "config"} <= set(document):
        raise RunDirError(f"{run.config_file}: expected top-level 'run' and 'config' sections")
    for section in ("run", "config"):
        if not isinstance(document[section], Mapping):
            raise RunDirError(f"{run.config_file}: the {section!r} section must be a mapping, "
                              f"got {type(document[section]).__name__}")
    if config_cls is None:
        return dict(document["run"]), dict(document["config"])
    try:
        return dict(document["run"]), from_dict(config_cls, document["config"])
    except ConfigError as exc:
        raise ConfigError(f"{run.config_file}: {exc}") from exc


def prepare_run(
    config_cls: type[C],
    metadata: RunMetadata,
    *,
    resume: bool = False,
    run_dir: str | Path | None = None,
    root: str | Path = "runs",
    defaults_file: str | Path | None = None,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> tuple[RunDir, C, dict[str, Any]]:
    """What ``metarl train`` does before building the agent: ``(run, config, run metadata)``.

    New run: resolve the config (defaults < files < ``--set``) and create the
    directory. Resume: the stored config is authoritative (so the agent is
    rebuilt exactly); ``overrides`` may still change it, e.g. to raise the
    iteration budget, and each resume is appended to ``run.resumes`` in
    ``config.yaml`` so the history stays visible. A config file on resume is
    refused because it would silently replace the original hyperparameters.
    """
    if not resume:
        cfg = resolve_config(config_cls, defaults_file=defaults_file, config_file=config_file, overrides=overrides)
        run = create_run_dir(metadata, cfg, run_dir, root)
        return run, cfg, asdict(metadata)
    if run_dir is None:
        raise RunDirError("--resume needs the run directory to continue")
    if config_file is not None:
        raise ConfigError(
            "--config cannot be combined with --resume: the run keeps its stored config; use --set to change single keys"
        )
    run = open_run_dir(run_dir)
    meta, cfg = read_run_config(run, config_cls)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    meta.setdefault("resumes", []).append(
        {
            "command": metadata.command,
            "overrides": list(overrides),
            "time": metadata.created,
            "metarl_version": metadata.metarl_version,
        }
    )
    _write_document(run, {"run": meta, "config": to_dict(cfg)})
    return run, cfg, meta


def resume_command(run_dir: str | Path, extra: Sequence[str] = ()) -> str:
    """The exact shell command that continues this run (printed on interrupt)."""
    return shlex.join(["metarl", "train", "--resume", str(run_dir), *extra])
