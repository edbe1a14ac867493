"""The agent-agnostic outer training loop: log, checkpoint, resume, stop cleanly.

Every agent (MAML-TRPO, Reptile-PPO, RL²) gets identical run semantics by
implementing the small :class:`Agent` protocol; the loop owns everything
that is not the algorithm. A resumed run continues bit-for-bit: the
checkpoint holds the agent state (parameters, optimizer, sampler,
normalizers), every RNG stream and the iteration counter, and RNGs are
restored last so nothing consumes randomness in between.

Iterations are counted as *completed* iterations: ``checkpoints/iter_000010``
was written after iterations 0..9 ran, and resuming from it calls
``train_iteration(10)`` next.

Each iteration is logged before it is checkpointed (a crash in between must
not leave a checkpoint whose metrics were never written), so a crashed run may
have logged iterations past its last checkpoint; the resumed run cuts
``progress.csv`` and TensorBoard back to the checkpoint before it re-runs them
(:class:`~metarl.runs.logger.RunLogger` ``resume_after``).

Failures inside an iteration (a ``SamplerError`` after a hung env's step
timeout, a NaN, an env crash) are not caught here: they end the run, and the
last periodic checkpoint is where ``--resume`` continues. That is also how a
SIGTERM reaches a run whose env hangs: the flag it sets is checked between
iterations, and the step timeout ends the hung iteration.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarl.contract import Trainable
from metarl.runs.checkpoint import (
    CheckpointError,
    capture_rng_state,
    find_latest,
    load_agent_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from metarl.runs.config import param
from metarl.runs.interrupt import EXIT_INTERRUPTED, EXIT_OK, GracefulInterrupt
from metarl.runs.logger import STEP_KEY, ProgressBar, RunLogger, namespaced
from metarl.runs.rundir import RunDir, resume_command

__all__ = ["ENV_STEPS_KEY", "Agent", "TrainResult", "Trainer", "TrainerConfig"]

ENV_STEPS_KEY = "time/env_steps"
#: Columns that measure wall time: everything else a seeded run logs is reproducible bit for bit.
TIMING_KEYS = frozenset({"time/iteration_s", "time/elapsed_s", "perf/steps_per_s", "time/sampling_s", "time/update_s",
                         "perf/run_dir_mb"})
"""Metric an agent returns with the environment steps sampled this iteration;
the trainer turns it into ``time/total_env_steps`` and ``perf/steps_per_s``."""


#: What the trainer needs from an agent: the training part of the one agent contract.
Agent = Trainable


@dataclass(frozen=True)
class TrainerConfig:
    """Run-loop settings, declared like agent configs so ``--set`` can reach them."""

    iterations: int = param(100, min=1, help="total outer iterations")
    total_steps: int | None = param(None, min=1, help="stop once this many env steps were collected instead "
                                                      "(null: stop after `iterations`; set, `iterations` is ignored)")
    checkpoint_every: int = param(10, min=1, help="checkpoint every K iterations")
    keep_last: int | None = param(None, min=1, help="keep only the newest N checkpoints (null: keep all)")
    progress: bool | None = param(None, help="progress bar (null: only on a terminal)")
    stdout: bool = param(True, help="print the metrics table each iteration")
    tensorboard: bool = param(True, help="write TensorBoard events")


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :meth:`Trainer.run`; ``exit_code`` is what the CLI should return."""

    exit_code: int
    iterations_done: int
    checkpoint: Path | None
    interrupted: bool


class Trainer:
    """Runs ``config.iterations`` iterations of ``agent`` inside ``run``.

    Checkpoints hold the agent's ``state_dict()`` (which owns every generator the agent draws
    from) and the global RNG streams (Python, NumPy's legacy one, torch).
    """

    def __init__(
        self,
        agent: Agent,
        run: RunDir | str | Path,
        config: TrainerConfig | None = None,
    ) -> None:
        self.agent = agent
        self.run_dir = run if isinstance(run, RunDir) else RunDir(Path(run))
        self.config = config or TrainerConfig()
        self.iteration = 0
        self._elapsed_s = 0.0
        self._env_steps = 0

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "agent": self.agent.state_dict(),
            "rng": capture_rng_state(),
            "trainer": {"elapsed_s": self._elapsed_s, "env_steps": self._env_steps},
        }

    def save(self) -> Path:
        """Checkpoint now (only call between iterations)."""
        return save_checkpoint(
            self.run_dir.path,
            self._state(),
            agent=self.agent.name,
            iteration=self.iteration,
            keep_last=self.config.keep_last,
        )

    def restore(self) -> Path:
        """Load the latest checkpoint of the run into the agent, RNGs and counters."""
        latest = find_latest(self.run_dir.path)
        if latest is None:
            raise CheckpointError(f"{self.run_dir.checkpoints}: no checkpoint to resume from; start a new run instead")
        ckpt = load_checkpoint(latest)
        if ckpt.agent != self.agent.name:
            raise CheckpointError(f"{latest}: written by agent {ckpt.agent!r}, cannot resume {self.agent.name!r}")
        load_agent_state(self.agent, ckpt)
        try:
            self.iteration = int(ckpt.state["iteration"])
            self._elapsed_s = float(ckpt.state["trainer"]["elapsed_s"])
            self._env_steps = int(ckpt.state["trainer"]["env_steps"])
            restore_rng_state(ckpt.state["rng"])  # last: nothing may draw after
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{latest}: its trainer or RNG state is damaged: {type(exc).__name__}: {exc}") from None
        return latest

    # ------------------------------------------------------------------ loop

    def _step(self) -> dict[str, Any]:
        sampler = getattr(self.agent, "sampler", None)
        sampled_before = getattr(sampler, "seconds", None)
        start = time.perf_counter()
        metrics = namespaced(self.agent.train_iteration(self.iteration))
        duration = time.perf_counter() - start
        if sampled_before is not None:  # collecting vs the rest (the update, and any periodic evaluation)
            metrics["time/sampling_s"] = sampler.seconds - sampled_before
            metrics["time/update_s"] = duration - metrics["time/sampling_s"]
        self.iteration += 1
        self._elapsed_s += duration
        metrics[STEP_KEY] = self.iteration
        metrics["time/iteration_s"] = duration
        metrics["time/elapsed_s"] = self._elapsed_s
        if ENV_STEPS_KEY in metrics:
            steps = int(metrics[ENV_STEPS_KEY])
            self._env_steps += steps
            metrics["time/total_env_steps"] = self._env_steps
            metrics["perf/steps_per_s"] = steps / max(duration, 1e-9)
        # What the run holds on disk so far (checkpoints, logs; PEARL's replay buffers make it large).
        metrics["perf/run_dir_mb"] = _tree_bytes(self.run_dir.path) / 2**20
        return metrics

    def done(self) -> bool:
        """The budget is spent: ``total_steps`` env steps when set, else ``iterations`` iterations."""
        if self.config.total_steps is not None:
            return self._env_steps >= self.config.total_steps
        return self.iteration >= self.config.iterations

    def run(self, *, resume: bool = False) -> TrainResult:
        """Train until ``config.iterations`` or an interrupt; see :class:`TrainResult`."""
        cfg = self.config
        if resume:
            self.restore()
        elif find_latest(self.run_dir.path) is not None:
            raise CheckpointError(
                f"{self.run_dir.checkpoints}: already has checkpoints; resume the run "
                f"({resume_command(self.run_dir.path)}) or use a new run directory"
            )
        last_saved: Path | None = None
        saved_at = self.iteration if resume else -1
        # From the iteration the run starts at: a fresh run (0) in a directory a crashed attempt
        # left without checkpoints drops that attempt's rows too.
        logger = RunLogger(self.run_dir.path, stdout=cfg.stdout, tensorboard=cfg.tensorboard,
                           resume_after=self.iteration)
        by_steps = cfg.total_steps is not None  # the bar counts what the budget counts
        bar = ProgressBar(cfg.total_steps if by_steps else cfg.iterations, self._env_steps if by_steps else self.iteration,
                          enabled=cfg.progress, desc=self.agent.name, unit="steps" if by_steps else "it")
        with GracefulInterrupt() as stop, logger:
            try:
                while not self.done() and not stop.requested:
                    metrics = self._step()
                    logger.log(metrics, step=self.iteration)
                    bar.update(self._env_steps if by_steps else self.iteration, metrics)
                    if self.iteration % cfg.checkpoint_every == 0 or self.done():
                        last_saved, saved_at = self.save(), self.iteration
            finally:
                bar.close()
            interrupted = stop.requested and not self.done()
            if interrupted and saved_at != self.iteration:
                last_saved = self.save()
        last_saved = last_saved or find_latest(self.run_dir.path)
        if interrupted:
            print(
                f"Interrupted after {self.iteration} iterations ({self._env_steps:,} env steps); "
                f"checkpoint saved. Resume with:\n  {resume_command(self.run_dir.path)}",
                file=sys.stderr,
                flush=True,
            )
            return TrainResult(EXIT_INTERRUPTED, self.iteration, last_saved, True)
        return TrainResult(EXIT_OK, self.iteration, last_saved, False)


def _tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (files that vanish while it is walked are skipped)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
