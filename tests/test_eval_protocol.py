"""The meta-test protocol on a real agent, checked against closed forms, and `metarl evaluate` errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metarl.agents.maml_trpo import MAMLTRPO, MAMLTRPOConfig
from metarl.api import train
from metarl.cli import main
from metarl.evaluation.curves import read_curves
from metarl.evaluation.protocol import evaluate_agent
from metarl.runs import resolve_config

TINY = ["meta_batch_size=2", "episodes_per_task=2", "hidden_sizes=[8]", "trainer.stdout=false", "trainer.progress=false"]


def still_agent() -> MAMLTRPO:
    """A point-nav policy that never moves: its return is exactly -100 * |goal| on every round."""
    cfg = resolve_config(MAMLTRPOConfig, overrides=["hidden_sizes=[8]", "inner_lr=1e-30"])
    agent = MAMLTRPO(cfg, "point-nav", seed=0)
    with torch.no_grad():
        for p in agent.policy.parameters():
            p.zero_()
        agent.policy.head.log_std.fill_(-30.0)
    return agent


def test_curves_match_the_closed_form(tmp_path):
    agent = still_agent()
    csv_path, json_path, rows = evaluate_agent(agent, run="still", out_dir=tmp_path, n_tasks=4, rounds=2,
                                               episodes_per_round=3, seeds=[5], progress=False)
    tasks = agent.family.sample(4, rng=5, split="test")
    for row in rows:
        gx, gy = tasks[row.task].params["goal"]
        assert row.return_mean == pytest.approx(-100 * math.hypot(gx, gy), rel=1e-4)
        assert row.env_steps == 300 * row.round  # 3 episodes of 100 steps per earlier round
        assert row.episodes == 3 and math.isnan(row.success_rate)
    assert len(rows) == 4 * 3
    def key(path):
        return [(r.task, r.round, r.env_steps, r.return_mean) for r in read_curves(path).rows]

    assert key(csv_path) == key(json_path) == [(r.task, r.round, r.env_steps, r.return_mean) for r in rows]
    agent.close()


def test_random_baseline_sits_beside_the_agent(tmp_path):
    agent = still_agent()
    _, _, rows = evaluate_agent(agent, run="still", out_dir=tmp_path, n_tasks=2, rounds=1, episodes_per_round=2,
                                seeds=[0], baselines=["random"], progress=False)
    assert {r.method for r in rows} == {"maml-trpo", "random"}
    with pytest.raises(ValueError, match="unknown baseline"):
        evaluate_agent(agent, run="x", out_dir=tmp_path, baselines=["rnd"])
    agent.close()


class Outcome:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys, monkeypatch):
    """The real CLI entry point, in-process: a fresh interpreter per call costs seconds of imports."""

    def run(*args, cwd) -> Outcome:
        monkeypatch.chdir(cwd)
        try:
            code = main([*args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def test_evaluate_errors(tmp_path, cli):
    # a run without checkpoints
    run = tmp_path / "empty"
    train("maml-trpo", "point-nav", overrides=[*TINY, "trainer.iterations=1"], run_dir=run)
    for ckpt in (run / "checkpoints").iterdir():
        if ckpt.is_dir():
            for f in ckpt.iterdir():
                f.unlink()
            ckpt.rmdir()
        else:
            ckpt.unlink()
    out = cli("evaluate", str(run), cwd=tmp_path)
    assert out.returncode != 0 and "no checkpoint" in out.stderr and "Traceback" not in out.stderr
    # a checkpoint of another agent
    other = tmp_path / "other"
    train("multitask-trpo", "point-nav", overrides=[*TINY, "trainer.iterations=1"], run_dir=other)
    maml = tmp_path / "maml"
    train("maml-trpo", "point-nav", overrides=[*TINY, "trainer.iterations=1"], run_dir=maml)
    ckpt = next((other / "checkpoints").glob("iter_*"))
    out = cli("evaluate", str(maml), "--checkpoint", str(ckpt), cwd=tmp_path)
    assert out.returncode != 0 and "multitask-trpo" in out.stderr and "Traceback" not in out.stderr
    # an unknown split
    out = cli("evaluate", str(maml), "--split", "tset", cwd=tmp_path)
    assert out.returncode == 2 and "'tset'" in out.stderr and "'train', 'test'" in out.stderr
    # not a run directory
    out = cli("evaluate", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "not a metarl run directory" in out.stderr
    # and a good one writes CSV, JSON and the plot
    out = cli("evaluate", str(maml), "--tasks", "2", "--rounds", "1", "--episodes", "2", "--baselines", "random",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "over 2 test tasks" in out.stdout and "maml-trpo minus each baseline" in out.stdout
    assert (maml / "eval/curves.csv").is_file() and (maml / "eval/adaptation.png").stat().st_size > 10_000
    out = cli("plot", str(maml), str(other), "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "plots/training.png").is_file() and (tmp_path / "plots/training.svg").is_file()
    assert np.isfinite(read_curves(maml / "eval/curves.csv").rows[0].return_mean)
