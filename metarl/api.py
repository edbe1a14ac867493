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

from metarl.agents import agent_class
from metarl.core import resolve_device
from metarl.envs import make_family
from metarl.envs.registry import parse_spec
from metarl.runs import (
    CheckpointError,
    ConfigError,
    RunDir,
    RunMetadata,
    Trainer,
    TrainResult,
    find_latest,
    load_checkpoint,
    open_run_dir,
    prepare_run,
    read_run_config,
)

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


def defaults_file(agent: str, env: str) -> Path | None:
    """Per-family defaults shipped in ``experiments/configs/<agent>/``, most specific first.

    ``ml1-reach`` tries ``ml1-reach.yaml`` then ``ml1.yaml``; ``bandit?k=5`` tries ``bandit.yaml``.
    """
    base, _ = parse_spec(env)
    candidates = [base, base.split("-")[0]] if base.startswith("ml1-") else [base]
    for name in candidates:
        path = EXPERIMENTS / agent / f"{name.replace(':', '_')}.yaml"
        if path.is_file():
            return path
    return None


def configure_threads(threads: int | None) -> None:
    """One intra-op thread by default: meta-RL math is many small ops, and a second
    thread fighting samplers for two cores made an iteration 10x slower here."""
    torch.set_num_threads(threads or 1)


def build_agent(agent: str, env: str, config: Any, *, seed: int, device: str | torch.device,
                from_checkpoint: bool = False) -> Any:
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
    agent: Any


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
) -> RunResult:
    """Train (or resume) a run; returns where it lives, how it ended and the trained agent."""
    configure_threads(threads)
    if resume is not None:
        meta, _ = read_run_config(open_run_dir(resume))
        agent, env, seed, device = meta["agent"], meta["env"], int(meta["seed"]), meta.get("device", device)
    if env is None:
        raise ValueError("train() needs env (a task family name) unless resuming")
    make_family(env)  # fail fast on a bad family or device before creating a run directory
    try:
        resolve_device(device)
    except ValueError as exc:
        raise ConfigError(f"device: {exc}") from None
    cls = agent_class(agent)
    metadata = RunMetadata(agent=agent, env=env, seed=seed, device=str(device))
    fresh_dir = resume is None and not (run_dir is not None and Path(run_dir).exists())
    run, cfg, _ = prepare_run(cls.Config, metadata, resume=resume is not None, run_dir=resume or run_dir, root=root,
                              defaults_file=defaults_file(agent, env), config_file=config_file, overrides=overrides)
    try:
        learner = build_agent(agent, env, cfg, seed=seed, device=device, from_checkpoint=resume is not None)
    except Exception:
        if fresh_dir:  # a run that could not even start leaves no empty directory behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    try:
        result = Trainer(learner, run, cfg.trainer).run(resume=resume is not None)
    finally:
        learner.close()
    return RunResult(run.path, result, learner)


def load_agent(run_dir: str | Path, checkpoint: str | Path | None = None, *, device: str | None = None,
               expect_agent: str | None = None) -> Any:
    """Rebuild a run's agent from its config and a checkpoint (the latest by default)."""
    run = RunDir(Path(run_dir))
    meta, _ = read_run_config(run)
    name = meta["agent"]
    if expect_agent is not None and name != expect_agent:
        raise CheckpointError(f"{run.path}: this run was trained by {name!r}, not {expect_agent!r}")
    cls = agent_class(name)
    _, cfg = read_run_config(run, cls.Config)
    path = Path(checkpoint) if checkpoint else find_latest(run.path)
    if path is None:
        raise CheckpointError(f"{run.checkpoints}: no checkpoint in this run; train it first (metarl train ...)")
    ckpt = load_checkpoint(path)
    if ckpt.agent != name:
        raise CheckpointError(f"{path}: checkpoint of agent {ckpt.agent!r}, but the run is {name!r}")
    learner = build_agent(name, meta["env"], cfg, seed=int(meta["seed"]), device=device or meta.get("device", "cpu"),
                          from_checkpoint=True)
    learner.load_state_dict(ckpt.state["agent"])
    return learner
