"""Every verb works for every agent, through the installed console script, as a user runs it.

For each agent (MAML-TRPO, multi-task TRPO, Meta-SGD, Reptile-PPO, joint PPO, RL² with a GRU, an LSTM
and SNAIL, PEARL): train one iteration, resume to two, evaluate, plot; each step must exit 0 and produce its files.
"""

from __future__ import annotations

import csv

import pytest

from tests.cli_helpers import TINY, metarl, train_args


def _iterations(progress) -> list[int]:
    with progress.open(newline="") as f:
        return [int(float(row["time/iteration"])) for row in csv.DictReader(f)]


@pytest.mark.parametrize("agent", sorted(TINY))
def test_train_resume_evaluate_plot(agent, tmp_path):
    run = tmp_path / "run"
    r = metarl(*train_args(agent, "run", iterations=1), cwd=tmp_path)
    assert r.code == 0, r.err
    assert (run / "checkpoints" / "iter_000001" / "state.pt").is_file()
    assert _iterations(run / "progress.csv") == [1]

    r = metarl("train", "--resume", "run", "--iterations", "2", "--no-progress", cwd=tmp_path)
    assert r.code == 0, r.err
    assert (run / "checkpoints" / "iter_000002" / "state.pt").is_file()
    assert _iterations(run / "progress.csv") == [1, 2]
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard events were not written"

    r = metarl("evaluate", "run", "--tasks", "2", "--rounds", "1", "--episodes", "2", "--no-progress", cwd=tmp_path)
    assert r.code == 0, r.err
    for name in ("curves.csv", "curves.json", "adaptation.png"):
        assert (run / "eval" / name).stat().st_size > 0, name
    assert "Traceback" not in r.err

    r = metarl("plot", "run", "--out", "plots", cwd=tmp_path)
    assert r.code == 0, r.err
    assert (tmp_path / "plots" / "training.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "adaptation.png").stat().st_size > 1000
