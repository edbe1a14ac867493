"""The generic training loop: exact resume, checkpoint cadence, SIGINT in a real process.

This file doubles as the script run in a subprocess by the SIGINT tests
(``python tests/test_runs_trainer.py RUN_DIR MODE``).
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from metarl.runs.checkpoint import list_checkpoints, load_checkpoint
from metarl.runs.interrupt import EXIT_INTERRUPTED
from metarl.runs.rng import generator_state, set_generator_state
from metarl.runs.trainer import ENV_STEPS_KEY, Agent, Trainer, TrainerConfig

REPO = Path(__file__).resolve().parents[1]


class ToyAgent:
    """Linear regression with Adam on fresh random data drawn from every RNG stream."""

    name = "toy"

    def __init__(self, sleep_s: float = 0.0, announce: bool = False) -> None:
        self.model = torch.nn.Linear(4, 1)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=0.05)
        self.gen = np.random.default_rng(0)
        self.true_w = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
        self.sleep_s = sleep_s
        self.announce = announce

    def train_iteration(self, it: int) -> dict[str, float]:
        if self.announce:
            print(f"ITER {it}", flush=True)
        x = torch.randn(32, 4)
        noise = torch.as_tensor(np.random.normal(size=(32, 1)) * 0.1, dtype=torch.float32)
        shift = float(self.gen.normal()) + random.random()
        y = x @ self.true_w.T + noise + shift
        loss = torch.nn.functional.mse_loss(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        time.sleep(self.sleep_s)
        return {"loss": loss.item(), ENV_STEPS_KEY: 32}

    def state_dict(self) -> dict[str, Any]:  # the agent owns its generator, so it checkpoints it
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "gen": generator_state(self.gen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        set_generator_state(self.gen, state["gen"])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's legacy and torch's global streams (a fresh process in these tests)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _config(iterations: int, **kw: Any) -> TrainerConfig:
    base = {"checkpoint_every": 2, "progress": False, "stdout": False, "tensorboard": False}
    return TrainerConfig(iterations=iterations, **{**base, **kw})


def _losses(run_dir: Path) -> list[str]:
    with (run_dir / "progress.csv").open(newline="") as f:
        return [row["train/loss"] for row in csv.DictReader(f)]


def _assert_same_state(a: dict, b: dict) -> None:
    torch.testing.assert_close({k: v for k, v in a.items() if k != "gen"}, {k: v for k, v in b.items() if k != "gen"},
                               rtol=0, atol=0)
    assert a.get("gen") == b.get("gen")  # the agent's own generator, plain data


def test_toy_agent_satisfies_protocol():
    assert isinstance(ToyAgent(), Agent)


def test_resume_equals_straight_run(tmp_path):
    seed_everything(0)
    straight = ToyAgent()
    result = Trainer(straight, tmp_path / "a", _config(4)).run()
    assert result.exit_code == 0 and result.iterations_done == 4

    seed_everything(0)
    first = ToyAgent()
    Trainer(first, tmp_path / "b", _config(2)).run()
    seed_everything(12345)  # a new process: different RNGs, different init
    resumed = ToyAgent()
    result = Trainer(resumed, tmp_path / "b", _config(4)).run(resume=True)
    assert result.exit_code == 0 and result.iterations_done == 4

    _assert_same_state(resumed.state_dict(), straight.state_dict())  # params + Adam moments
    assert _losses(tmp_path / "b") == _losses(tmp_path / "a")  # CSV appended, same metrics
    assert len(_losses(tmp_path / "a")) == 4
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == [
        "iter_000002",
        "iter_000004",
    ]
    final = load_checkpoint(tmp_path / "b")
    assert final.iteration == 4 and final.state["trainer"]["env_steps"] == 128


def test_checkpoint_cadence_keep_last_and_tensorboard(tmp_path):
    seed_everything(0)
    agent = ToyAgent()
    cfg = _config(5, checkpoint_every=2, keep_last=2, tensorboard=True)
    result = Trainer(agent, tmp_path, cfg).run()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["iter_000004", "iter_000005"]
    assert result.checkpoint == tmp_path / "checkpoints" / "iter_000005"
    assert list(tmp_path.glob("events.out.tfevents.*"))
    with (tmp_path / "progress.csv").open(newline="") as f:
        row = next(csv.DictReader(f))
    assert {"time/iteration", "time/elapsed_s", "perf/steps_per_s", "time/total_env_steps"} <= set(row)


def test_resume_refuses_other_agent_or_missing_checkpoint(tmp_path):
    from metarl.runs.checkpoint import CheckpointError

    agent = ToyAgent()
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        Trainer(agent, tmp_path, _config(2)).run(resume=True)
    Trainer(agent, tmp_path, _config(2)).run()
    with pytest.raises(CheckpointError, match="already has checkpoints"):
        Trainer(agent, tmp_path, _config(2)).run()
    other = ToyAgent()
    other.name = "other"
    with pytest.raises(CheckpointError, match="written by agent 'toy'"):
        Trainer(other, tmp_path, _config(4)).run(resume=True)


# ---------------------------------------------------------------- real-process SIGINT


def _spawn(run_dir: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, __file__, str(run_dir), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,  # own process group, so leftovers can be found
    )


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"never saw {prefix!r}; stderr: {proc.stderr.read()}")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:  # fields: state ppid pgrp ...
                members.append(int(entry.name))
    return members


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and POSIX signals")
def test_sigint_checkpoints_exits_130_and_resumes_exactly(tmp_path):
    run_dir = tmp_path / "run"
    proc = _spawn(run_dir, "slow")
    _wait_for_line(proc, "ITER 2")  # mid-run: iterations 0 and 1 are done
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert f"metarl train --resume {run_dir}" in err
    assert _group_members(proc.pid) == []  # no child process left behind
    ckpt = load_checkpoint(run_dir)
    assert 2 < ckpt.iteration < 50  # stopped at an iteration boundary after ITER 2

    resume = _spawn(run_dir, "resume")
    _, err = resume.communicate(timeout=60)
    assert resume.returncode == 0, err

    seed_everything(0)
    straight = ToyAgent()
    Trainer(straight, tmp_path / "straight", _config(ckpt.iteration + 2)).run()
    _assert_same_state(load_checkpoint(run_dir).state["agent"], straight.state_dict())


@pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals")
def test_second_sigint_aborts_immediately(tmp_path):
    run_dir = tmp_path / "run"
    proc = _spawn(run_dir, "stuck")
    _wait_for_line(proc, "ITER 0")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert time.monotonic() - start < 10  # did not wait for the 60 s iteration
    assert proc.returncode not in (0, EXIT_INTERRUPTED), err
    assert "aborting now" in err
    assert list_checkpoints(run_dir) == []  # nothing half-baked was saved


def _main(run_dir: str, mode: str) -> int:
    seed_everything(0)
    agent = ToyAgent(sleep_s={"slow": 0.3, "stuck": 60.0}.get(mode, 0.0), announce=True)
    trainer = Trainer(agent, run_dir, _config(50))
    if mode == "resume":
        # continue exactly two more iterations past the interrupt checkpoint
        done = load_checkpoint(run_dir).iteration
        trainer = Trainer(agent, run_dir, _config(done + 2))
        return trainer.run(resume=True).exit_code
    return trainer.run().exit_code


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:]))
