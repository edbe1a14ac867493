"""Plots are drawn from files alone, with labelled axes, CI bands and a legend per method."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

import numpy as np
import pytest

from metarl.evaluation.curves import CurveRow, write_curves
from metarl.evaluation.plots import plot_adaptation, plot_training
from metarl.runs.rundir import RunMetadata, create_run_dir


def _curves(tmp_path, with_success: bool):
    rng = np.random.default_rng(0)
    rows = []
    for method, seeds, gain in (("maml-trpo", (0, 1, 2), 10.0), ("random", (0,), 0.0)):
        for seed in seeds:
            for t in range(5):
                for k in range(4):
                    success = float(np.clip(0.2 * k * (gain > 0) + rng.uniform(0, 0.1), 0, 1)) if with_success else math.nan
                    rows.append(CurveRow(method, f"{method}-{seed}", "ml1-reach" if with_success else "point-nav", "test",
                                         seed, t, k, 400 * k, 10, -50 + gain * k + rng.normal(0, 2), success))
    return write_curves(rows, tmp_path / "eval")[0]


def test_adaptation_plot_from_csv_alone(tmp_path):
    csv_path = _curves(tmp_path, with_success=True)
    png, svg = tmp_path / "out" / "adaptation.png", tmp_path / "out" / "adaptation.svg"
    fig = plot_adaptation(csv_path, png, svg, n_boot=200)
    assert png.stat().st_size > 10_000 and svg.stat().st_size > 10_000
    ret_ax, succ_ax = fig.axes
    assert ret_ax.get_xlabel().startswith("adaptation rounds") and "return" in ret_ax.get_ylabel()
    assert "success rate" in succ_ax.get_ylabel()
    assert "ml1-reach" in fig._suptitle.get_text() and "test" in fig._suptitle.get_text()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["maml-trpo (3 seeds)", "random (seed 0)"]
    assert len(ret_ax.collections) == 2  # one CI band per method
    maml_line = ret_ax.get_lines()[0]
    np.testing.assert_allclose(maml_line.get_xdata(), [0, 1, 2, 3])
    assert maml_line.get_ydata()[-1] > maml_line.get_ydata()[0] + 20  # the adaptation gain is drawn


def test_success_panel_omitted_without_signal_and_env_steps_axis(tmp_path):
    csv_path = _curves(tmp_path, with_success=False)
    fig = plot_adaptation([csv_path], tmp_path / "a.png", x="env_steps", per_run=True, n_boot=100)
    assert len(fig.axes) == 1 and "environment steps" in fig.axes[0].get_xlabel()
    assert len(fig.axes[0].get_lines()) == 4  # three maml runs + random
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_xdata(), [0, 400, 800, 1200])
    with pytest.raises(ValueError, match="x='time'"):
        plot_adaptation(csv_path, x="time")


@dataclass(frozen=True)
class _Cfg:
    lr: float = 0.1


def _run(tmp_path, agent, seed, columns):
    run = create_run_dir(RunMetadata(agent=agent, env="point-nav", seed=seed), _Cfg(), path=tmp_path / f"{agent}-{seed}")
    with run.progress_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for i in range(5):
            w.writerow([i, 1000 * (i + 1), *[float(i * j) for j in range(len(columns) - 2)]])
    return run.path


def test_training_plot_reads_progress_and_config(tmp_path):
    a = _run(tmp_path, "maml-trpo", 0, ["time/iteration", "time/total_env_steps", "train/pre_return", "train/post_return"])
    b = _run(tmp_path, "rl2-gru", 3, ["time/iteration", "time/total_env_steps", "train/return"])
    fig = plot_training([a, b], tmp_path / "training.png", keys=("train/*_return", "train/return", "train/missing"))
    assert (tmp_path / "training.png").stat().st_size > 5_000
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["train/post_return", "train/pre_return", "train/return"]
    assert visible[0].get_xlabel() == "environment steps (all tasks)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["maml-trpo · point-nav · seed 0", "rl2-gru · point-nav · seed 3"]
    with pytest.raises(ValueError, match="available: .*train/pre_return"):
        plot_training([a], keys=("train/nothing",))


def test_a_run_keeps_its_color_in_every_panel(tmp_path):
    a = _run(tmp_path, "maml-trpo", 0, ["time/iteration", "time/total_env_steps", "train/pre_return"])
    b = _run(tmp_path, "rl2-gru", 1, ["time/iteration", "time/total_env_steps", "train/pre_return", "train/return"])
    fig = plot_training([a, b], keys=("train/pre_return", "train/return"))
    first, second = fig.axes[0].get_lines(), fig.axes[1].get_lines()
    assert len(first) == 2 and len(second) == 1
    assert second[0].get_color() == first[1].get_color() != first[0].get_color()
