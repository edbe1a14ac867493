"""The Python API behind ``metarl train``: the CLI is a thin shell over these functions.

>>> from metarl.api import train, load_agent
>>> result = train("maml-trpo", "point-nav", overrides=["trainer.iterations=2"], run_dir="runs/demo")
>>> agent = load_agent("runs/demo")            # latest checkpoint, ready to adapt / evaluate
>>> curves = agent.meta_test(agent.family.sample(5, rng=0, split="test"), rounds=1, episodes_per_round=10, seed=0)
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metarl import SEED_LIMIT
from metarl.agents import agent_class
from metarl.contract import MetaLearner
from metarl.core import resolve_device
from metarl.envs import make_family
from metarl.envs.plugins import check_recorded_spec, plugin_module_of, vouch
from metarl.envs.registry import parse_spec
from metarl.errors import UsageError
from metarl.runs import (
    CheckpointError,
    ConfigError,
    RunDir,
    RunDirError,
    RunMetadata,
    Trainer,
    TrainResult,
    find_latest,
    load_agent_state,
    load_checkpoint,
    open_run_dir,
    prepare_run,
    read_run_config,
)

DEFAULTS = Path(__file__).resolve().parent / "defaults"
"""Per-family defaults, shipped as package data so an installed metarl (a wheel, ``pip install .``)
trains with the same resolved config as a source checkout. ``experiments/`` holds experiment
configs and results; the package never reads it unless a user passes a file from it."""


def defaults_file(agent: str, env: str) -> Path | None:
    """Per-family defaults in ``metarl/defaults/<agent>/``, most specific first.

    ``ml1-reach`` tries ``ml1-reach.yaml`` then ``ml1.yaml``; ``bandit?k=5`` tries ``bandit.yaml``.
    A variant without defaults of its own for the family (``meta-sgd``, a subclass of
    ``maml-trpo``) uses those of the agent it extends, so a variant ships no copied YAML.
    """
    base, _ = parse_spec(env)
    candidates = [base, base.split("-")[0]] if base.startswith("ml1-") else [base]
    for name in _agent_lineage(agent):
        for family in candidates:
            path = DEFAULTS / name / f"{family.replace(':', '_')}.yaml"
            if path.is_file():
                return path
    return None


def _agent_lineage(agent: str) -> list[str]:
    """``agent`` and the registered agents it subclasses, nearest first."""
    from metarl.agents import AGENTS, agent_class

    if agent not in AGENTS:
        return [agent]
    lineage = [agent]
    for base in agent_class(agent).__mro__[1:]:
        name = getattr(base, "name", None)
        if isinstance(name, str) and name in AGENTS and name not in lineage:
            lineage.append(name)
    return lineage


def configure_threads(threads: int | None) -> None:
    """One intra-op thread by default: meta-RL math is many small ops, and a second
    thread fighting samplers for two cores made an iteration 10x slower here."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads={threads!r} is invalid; allowed: an integer >= 1 (default 1)")
    torch.set_num_threads(threads or 1)


def check_seed(seed: object, what: str = "seed") -> int:
    """Seeds seed numpy, torch and the sampler hash alike, so they must fit all three."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise UsageError(f"{what}={seed!r} is invalid; allowed: an integer in [0, {SEED_LIMIT - 1}]")
    return seed


def check_device(device: str | torch.device) -> torch.device:
    """The device, or a usage error naming it (asking for CUDA where there is none included)."""
    try:
        return resolve_device(device)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"device: {exc}") from None


def read_recorded_run(run: RunDir, plugins: Sequence[str] = ()) -> dict[str, Any]:
    """A run directory's metadata, once its family spec is known to run no unvouched code.

    A run directory may come from anywhere; see :mod:`metarl.envs.plugins` for what is trusted.
    """
    meta, _ = read_run_config(run)
    for key in ("agent", "env", "seed"):
        if key not in meta:
            raise RunDirError(f"{run.config_file}: the 'run' section has no {key!r}; is this a metarl run?")
    agent_class(str(meta["agent"]))  # an unknown agent name is refused before anything else runs
    recorded = meta.get("plugins") or []
    if not isinstance(recorded, list):
        raise RunDirError(f"{run.config_file}: run.plugins must be a list of module names, got {recorded!r}")
    check_recorded_spec(meta["env"], source=str(run.config_file), recorded_plugins=recorded, plugins=plugins)
    check_seed(meta["seed"], f"{run.config_file}: run.seed")
    return meta


def _without_recorded_address(cfg: Any) -> Any:
    """A run directory's ``sampling.ray_address`` is not joined on its own: a hostile cluster could
    answer with pickles. The user states it again (``--set sampling.ray_address=...``) to use it."""
    sampling = getattr(cfg, "sampling", None)
    if sampling is None or getattr(sampling, "ray_address", None) is None:
        return cfg
    return dataclasses.replace(cfg, sampling=dataclasses.replace(sampling, ray_address=None))


def build_agent(agent: str, env: str, config: Any, *, seed: int, device: str | torch.device,
                from_checkpoint: bool = False) -> MetaLearner:
    """``from_checkpoint``: the weights are about to come from the run's own checkpoint, so a warm start
    (``init_from``) is skipped: it would be overwritten at once, and its source run may be gone by now."""
    if from_checkpoint and getattr(config, "init_from", None):
        config = dataclasses.replace(config, init_from=None)
    cls = agent_class(agent)
    return cls(config, env, seed=seed, device=resolve_device(device))


@dataclass
class RunResult:
    run_dir: Path
    result: TrainResult
    agent: MetaLearner


def train(
    agent: str,
    env: str | None = None,
    *,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    seed: int = 0,
    device: str = "cpu",
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    root: str | Path = "runs",
    threads: int | None = None,
    plugins: Sequence[str] = (),
) -> RunResult:
    """Train (or resume) a run; returns where it lives, how it ended and the trained agent.

    ``plugins``: modules vouched for (see :mod:`metarl.envs.plugins`), needed to resume a run whose
    family is a plug-in; a new run records the module its family came from.
    """
    configure_threads(threads)
    vouch(plugins)
    recorded: list[str] = []
    if resume is not None:
        previous = open_run_dir(resume)
        meta = read_recorded_run(previous, plugins)
        agent, env, seed, device = meta["agent"], meta["env"], int(meta["seed"]), meta.get("device", device)
        recorded = list(meta.get("plugins") or [])
        _check_recorded_address(previous, agent, overrides)
    if env is None:
        raise UsageError("train() needs env (a task family name) unless resuming")
    check_seed(seed)
    family = make_family(env)  # fail fast on a bad family or device before creating a run directory
    check_device(device)
    cls = agent_class(agent)
    if resume is None:
        recorded = [m for m in [plugin_module_of(env)] if m]
    from metarl.evaluation.manifest import manifest

    metadata = RunMetadata(agent=agent, env=env, seed=seed, device=str(device), plugins=recorded,
                           manifest=manifest(family))
    fresh_dir = resume is None and not (run_dir is not None and Path(run_dir).exists())
    run, cfg, _ = prepare_run(cls.Config, metadata, resume=resume is not None, run_dir=resume or run_dir, root=root,
                              defaults_file=defaults_file(agent, env), config_file=config_file, overrides=overrides)
    try:
        learner = build_agent(agent, env, cfg, seed=seed, device=device, from_checkpoint=resume is not None)
    except BaseException:
        if fresh_dir:  # a run that could not even start leaves no empty directory behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    try:
        result = Trainer(learner, run, cfg.trainer).run(resume=resume is not None)
    finally:
        learner.close()
    return RunResult(run.path, result, learner)


def _check_recorded_address(run: RunDir, agent: str, overrides: Sequence[str]) -> None:
    """Resuming joins a Ray cluster only if the user names it again (see :func:`_without_recorded_address`)."""
    _, cfg = read_run_config(run, agent_class(agent).Config)
    address = getattr(getattr(cfg, "sampling", None), "ray_address", None)
    if address is not None and not any(o.strip().startswith("sampling.ray_address=") for o in overrides):
        raise UsageError(f"{run.config_file}: the run joins the Ray cluster at sampling.ray_address={address!r}; "
                         "metarl does not join a cluster named in a run directory on its own. Pass "
                         f"--ray-address {address} to join it, or --set sampling.ray_address=null for a local one")


def load_agent(run_dir: str | Path, checkpoint: str | Path | None = None, *, device: str | None = None,
               expect_agent: str | None = None, plugins: Sequence[str] = ()) -> MetaLearner:
    """Rebuild a run's agent from its config and a checkpoint (the latest by default).

    Safe on a run directory from elsewhere: its family spec may only run vouched code
    (``plugins``, ``--plugin``, ``METARL_PLUGINS``; see :mod:`metarl.envs.plugins`), its checkpoint
    is loaded with ``weights_only=True``, and a recorded Ray address is not joined.
    """
    run = RunDir(Path(run_dir))
    if not run.config_file.is_file():
        raise RunDirError(f"{run.path} is not a metarl run directory (no config.yaml)")
    vouch(plugins)
    meta = read_recorded_run(run, plugins)
    name = meta["agent"]
    if expect_agent is not None and name != expect_agent:
        raise CheckpointError(f"{run.path}: this run was trained by {name!r}, not {expect_agent!r}")
    cls = agent_class(name)
    _, cfg = read_run_config(run, cls.Config)
    if checkpoint is not None and not Path(checkpoint).exists():
        raise CheckpointError(f"--checkpoint {checkpoint}: no such checkpoint directory; allowed: a directory "
                              f"such as {run.checkpoints}/iter_000010 (or none for the latest)")
    path = Path(checkpoint) if checkpoint else find_latest(run.path)
    if path is None:
        raise CheckpointError(f"{run.checkpoints}: no checkpoint in this run; train it first (metarl train ...)")
    ckpt = load_checkpoint(path)
    if ckpt.agent != name:
        raise CheckpointError(f"{path}: checkpoint of agent {ckpt.agent!r}, but the run is {name!r}")
    device = device or meta.get("device", "cpu")
    check_device(device)
    learner = build_agent(name, meta["env"], _without_recorded_address(cfg), seed=int(meta["seed"]), device=device,
                          from_checkpoint=True)
    try:
        load_agent_state(learner, ckpt)
    except BaseException:
        learner.close()
        raise
    return learner

