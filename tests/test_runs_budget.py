"""``trainer.total_steps``: a budget in env steps instead of iterations."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.cli_helpers import metarl, train_args


def test_training_stops_at_the_env_step_budget_and_resumes_to_a_larger_one(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = train_args("maml-trpo", str(run), iterations=1000)
    done = metarl(*args, "--set", "trainer.total_steps=1500", "--set", "trainer.checkpoint_every=1000", cwd=tmp_path)
    assert done.code == 0, done.err
    steps = [int(float(r["time/total_env_steps"])) for r in csv.DictReader((run / "progress.csv").open())]
    assert steps[-1] >= 1500 and (len(steps) == 1 or steps[-2] < 1500)  # stopped at the first iteration past it
    assert (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir())  # the last one is checkpointed
    row = next(csv.DictReader((run / "progress.csv").open()))
    split = float(row["time/sampling_s"]) + float(row["time/update_s"])
    assert float(row["time/sampling_s"]) > 0 and abs(split - float(row["time/iteration_s"])) < 1e-6
    more = metarl("train", "--resume", str(run), "--set", "trainer.total_steps=3000", "--no-progress", cwd=tmp_path)
    assert more.code == 0, more.err
    steps = [int(float(r["time/total_env_steps"])) for r in csv.DictReader((run / "progress.csv").open())]
    assert steps[-1] >= 3000 and steps[-2] < 3000
