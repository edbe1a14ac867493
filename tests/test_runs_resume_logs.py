"""After a crash and a resume, progress.csv and TensorBoard hold every iteration exactly once.

A crashed run has logged iterations past its last checkpoint (the trainer logs, then
checkpoints); the resumed run re-runs them from the checkpoint and must not leave the
crashed attempt's rows and events next to its own.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.runs.logger import AppendingCSVOutputFormat
from metarl.runs.trainer import TIMING_KEYS, Trainer, TrainerConfig
from tests.test_runs_trainer import ToyAgent, seed_everything

#: Columns that depend on wall time; the others are a deterministic function of the seed.
TIMING = TIMING_KEYS


class Crash(RuntimeError):
    pass


class CrashingAgent(ToyAgent):
    """The toy agent, dying at the start of iteration ``at`` (after the rows of iterations < at were logged)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def train_iteration(self, it: int) -> dict[str, float]:
        if it == self.at:
            raise Crash(f"crash in iteration {it}")
        return super().train_iteration(it)


def _config(iterations: int) -> TrainerConfig:
    return TrainerConfig(iterations=iterations, checkpoint_every=2, progress=False, stdout=False, tensorboard=True)


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "progress.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run), purge_orphaned_data=True)
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def _train(agent: ToyAgent, run: Path, iterations: int, *, resume: bool = False) -> None:
    Trainer(agent, run, _config(iterations)).run(resume=resume)


def test_resume_after_a_crash_logs_each_iteration_once(tmp_path: Path) -> None:
    seed_everything(0)
    _train(ToyAgent(), tmp_path / "straight", 6)

    seed_everything(0)
    with pytest.raises(Crash):  # iterations 1..5 logged, last checkpoint after 4: row 5 is an orphan
        _train(CrashingAgent(at=5), tmp_path / "crashed", 6)
    assert [r["time/iteration"] for r in _rows(tmp_path / "crashed")] == ["1", "2", "3", "4", "5"]
    seed_everything(99)  # a new process: the checkpoint restores every RNG
    _train(ToyAgent(), tmp_path / "crashed", 6, resume=True)

    rows, want = _rows(tmp_path / "crashed"), _rows(tmp_path / "straight")
    assert [r["time/iteration"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows == want  # the re-run row 5 replaced the crashed one, and matches the straight run
    assert len(list((tmp_path / "crashed").glob("events.out.tfevents.*"))) == 2  # one file per attempt
    loss = _scalars(tmp_path / "crashed", "train/loss")
    assert [step for step, _ in loss] == [1, 2, 3, 4, 5, 6]
    assert loss == _scalars(tmp_path / "straight", "train/loss")


def test_a_fresh_start_in_a_crashed_directory_without_checkpoints_drops_its_rows(tmp_path: Path) -> None:
    seed_everything(0)
    with pytest.raises(Crash):  # dies before the first checkpoint
        _train(CrashingAgent(at=1), tmp_path, 6)
    assert len(_rows(tmp_path)) == 1
    seed_everything(0)
    _train(ToyAgent(), tmp_path, 2)
    assert [r["time/iteration"] for r in _rows(tmp_path)] == ["1", "2"]
    assert [step for step, _ in _scalars(tmp_path, "train/loss")] == [1, 2]


def test_cutting_back_keeps_rows_it_cannot_read_and_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "progress.csv"
    path.write_text("time/iteration,train/loss\n1,0.5\n2,0.4\n,0.3\n3,0.2\n4,0.1")  # no newline: a torn last row
    out = AppendingCSVOutputFormat(path, keep_through=2)
    out.close()
    assert path.read_text().splitlines() == ["time/iteration,train/loss", "1,0.5", "2,0.4", ",0.3"]
    assert not list(tmp_path.glob(".*.tmp"))  # written to a temp file, then moved over
