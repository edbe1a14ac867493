"""Reptile-PPO's annealed outer step survives a resume that changes ``trainer.iterations``.

The bug this guards: with ``anneal_iterations: null`` eps annealed over whatever
``trainer.iterations`` was *now*, so "2 iterations, then ``--resume --iterations 4``"
annealed over 2 and then over 4, and differed from "4 straight". The shipped
defaults now give the anneal its own horizon, and null means the budget the run
was created with (checkpointed), never the current one.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from metarl.api import train
from metarl.runs import load_checkpoint
from metarl.runs.trainer import TIMING_KEYS

# Speed only: fewer tasks, episodes and updates, a smaller net; nothing that touches the anneal
# (outer_lr, outer_lr_final, anneal_iterations come from metarl/defaults/reptile-ppo/point-nav.yaml).
FAST = ["meta_batch_size=2", "episodes_per_update=2", "inner_updates=2", "ppo_epochs=1", "minibatch_size=100",
        "hidden_sizes=[8]", "trainer.checkpoint_every=2", "trainer.stdout=false", "trainer.progress=false",
        "trainer.tensorboard=false"]
#: Columns that depend on wall time; everything else must match bit for bit.
TIMING = TIMING_KEYS


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "progress.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _net(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run).state["agent"]["net"]


def _split_and_straight(tmp_path: Path, *extra: str) -> tuple[Path, Path]:
    """The same run trained 4 iterations straight, and 2 then resumed with ``--iterations 4``."""
    straight = train("reptile-ppo", "point-nav", overrides=[*FAST, *extra, "trainer.iterations=4"], seed=3,
                     run_dir=tmp_path / "straight")
    straight.agent.close()
    first = train("reptile-ppo", "point-nav", overrides=[*FAST, *extra, "trainer.iterations=2"], seed=3,
                  run_dir=tmp_path / "split")
    first.agent.close()
    resumed = train("reptile-ppo", overrides=["trainer.iterations=4"], resume=tmp_path / "split")
    resumed.agent.close()
    return tmp_path / "straight", tmp_path / "split"


def test_shipped_point_nav_defaults_resume_to_a_larger_budget_bit_identically(tmp_path: Path) -> None:
    straight, split = _split_and_straight(tmp_path)
    cfg = load_checkpoint(split)  # the run really used the shipped anneal, not a test override
    config_text = (split / "config.yaml").read_text()
    assert "anneal_iterations: 40" in config_text and "outer_lr_final: 0.0" in config_text, config_text
    assert cfg.iteration == 4
    a, b = _net(straight), _net(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = _rows(split)
    assert [r["time/iteration"] for r in rows] == ["1", "2", "3", "4"]
    assert rows == _rows(straight)
    # eps follows 0.5 -> 0 over the shipped 40 iterations, on both sides of the resume
    assert [float(r["train/outer_lr"]) for r in rows] == pytest.approx([0.5 * (1 - it / 40) for it in range(4)])


def test_null_anneal_keeps_the_budget_the_run_was_created_with(tmp_path: Path) -> None:
    """``anneal_iterations: null`` resolves once, at creation: a resume to 4 keeps annealing over 2
    (and says so), instead of stretching the schedule mid-run."""
    with pytest.warns(UserWarning, match=r"anneals over the 2 iterations this run was created with: "
                                         r"iterations 2..3 run at outer_lr_final=0"):
        _, split = _split_and_straight(tmp_path, "anneal_iterations=null")
    assert [float(r["train/outer_lr"]) for r in _rows(split)] == pytest.approx([0.5, 0.25, 0.0, 0.0])
    assert load_checkpoint(split).state["agent"]["created_iterations"] == 2
