"""One training-metrics vocabulary: every agent logs the shared keys, and old runs plot through their legacy keys."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from metarl.agents.maml_trpo import MAMLTRPO, MAMLTRPOConfig, MultiTaskTRPO, MultiTaskTRPOConfig
from metarl.agents.reptile_ppo import JointPPO, JointPPOConfig, ReptilePPO, ReptilePPOConfig
from metarl.agents.rl2 import RL2, RL2Config
from metarl.cli import main
from metarl.evaluation.metrics import RETURN_KEY, SHARED_KEYS, ProgressError, read_progress
from metarl.evaluation.plots import plot_training
from metarl.runs import ENV_STEPS_KEY, resolve_config
from metarl.runs.rundir import RunMetadata, create_run_dir

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
COMMON = ["trainer.stdout=false", "trainer.progress=false"]


def _iteration(cls, config_cls, family: str, overrides: list[str]) -> dict[str, float]:
    torch.set_num_threads(1)
    agent = cls(resolve_config(config_cls, overrides=[*COMMON, *overrides]), family, seed=0)
    try:
        return dict(agent.train_iteration(0))
    finally:
        agent.close()


MAML = ["meta_batch_size=2", "episodes_per_task=2", "hidden_sizes=[8]"]
REPTILE = ["meta_batch_size=2", "inner_updates=2", "episodes_per_update=2", "ppo_epochs=1", "minibatch_size=50",
           "hidden_sizes=[8]"]
RL2_TINY = ["meta_batch_size=4", "trials_per_task=2", "hidden_size=8", "epochs=1", "minibatches=1"]


def test_every_agent_logs_the_shared_return_with_its_documented_meaning() -> None:
    maml = _iteration(MAMLTRPO, MAMLTRPOConfig, "point-nav", MAML)
    assert maml["return"] == maml["post_return"] != maml["pre_return"]  # the post-adaptation episodes
    multitask = _iteration(MultiTaskTRPO, MultiTaskTRPOConfig, "point-nav", MAML)
    assert multitask["return"] == multitask["post_return"] and "pre_return" not in multitask
    for cls, config_cls in ((ReptilePPO, ReptilePPOConfig), (JointPPO, JointPPOConfig)):
        reptile = _iteration(cls, config_cls, "point-nav", REPTILE)
        assert reptile["return"] == reptile["inner_1_return"] != reptile["inner_0_return"]  # the last inner batch
    rl2 = _iteration(RL2, RL2Config, "bandit?k=3&n=4", RL2_TINY)
    # per trial: four 0/1 pulls summed, so above any single pull's mean and at most 4
    assert rl2["return"] == rl2["trial_return"] and rl2["first_episode_return"] < rl2["return"] <= 4.0
    assert rl2["return"] > 1.0
    for metrics in (maml, multitask, reptile, rl2):
        assert metrics[ENV_STEPS_KEY] > 0
        assert "success" not in metrics  # neither point-nav nor bandits report success


def _progress(tmp_path: Path, agent: str, columns: dict[str, list[float]]) -> Path:
    @dataclass(frozen=True)
    class Cfg:
        lr: float = 0.1

    run = create_run_dir(RunMetadata(agent=agent, env="point-nav", seed=0), Cfg(), path=tmp_path / agent)
    with run.progress_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(columns))
        for row in zip(*columns.values(), strict=True):
            w.writerow(["" if np.isnan(v) else v for v in row])
    return run.path


def test_legacy_keys_fill_the_shared_ones_and_new_keys_win(tmp_path: Path) -> None:
    steps = [100.0, 200.0, 300.0]
    reptile = _progress(tmp_path, "reptile-ppo", {
        "train/inner_2_return": [1.0, 2.0, 3.0], "train/inner_10_return": [7.0, 8.0, 9.0],
        "train/inner_10_success": [0.0, 0.5, 1.0], "time/total_env_steps": steps})
    p = read_progress(reptile)
    np.testing.assert_array_equal(p.columns[RETURN_KEY], [7.0, 8.0, 9.0])  # the last inner update, 10 > 2
    assert p.sources == {"train/return": "train/inner_10_return", "train/success": "train/inner_10_success"}
    rl2 = read_progress(_progress(tmp_path, "rl2", {"train/trial_return": [4.0, 5.0, 6.0], "time/total_env_steps": steps}))
    assert rl2.sources == {RETURN_KEY: "train/trial_return"} and not rl2.has("train/success")
    # a new run has the key: it is used as is, even beside a legacy column of other values
    new = read_progress(_progress(tmp_path, "maml-trpo", {"train/return": [1.0, np.nan, 3.0],
                                                          "train/post_return": [9.0, 9.0, 9.0],
                                                          "time/total_env_steps": steps}))
    assert new.sources == {} and new.columns[RETURN_KEY][0] == 1.0
    with pytest.raises(ProgressError, match="no rows yet"):
        read_progress(_progress(tmp_path, "empty", {"train/return": []}))


@pytest.mark.skipif(not (RESULTS / "rl2-gru-bandit-k5-n10" / "progress.csv").is_file(), reason="results not checked out")
def test_committed_runs_of_every_agent_plot_together(tmp_path: Path) -> None:
    runs = [RESULTS / name for name in ("rl2-gru-bandit-k5-n10", "maml-trpo-point-nav", "reptile-ppo-point-nav",
                                        "maml-trpo-ml1-reach")]
    legacy = {r.name: read_progress(r).sources for r in runs}
    assert legacy["rl2-gru-bandit-k5-n10"] == {RETURN_KEY: "train/trial_return"}
    assert legacy["maml-trpo-point-nav"] == {RETURN_KEY: "train/post_return"}
    assert legacy["reptile-ppo-point-nav"] == {RETURN_KEY: "train/inner_2_return"}
    assert legacy["maml-trpo-ml1-reach"] == {RETURN_KEY: "train/post_return", "train/success": "train/post_success"}
    fig = plot_training(runs, tmp_path / "training.png")
    ret, succ = (ax for ax in fig.axes if ax.get_visible())
    assert ret.get_title() == RETURN_KEY and succ.get_title() == "train/success"
    assert [line.get_label().split(" · ")[0] for line in ret.get_lines()] == ["rl2", "maml-trpo", "reptile-ppo",
                                                                            "maml-trpo"]
    assert all(len(line.get_xdata()) > 10 for line in ret.get_lines())  # no run dropped or reduced to a dot
    assert len(succ.get_lines()) == 1  # only the Meta-World run reports success
    assert "train/trial_return" in ret.get_xlabel()  # the panel says where old runs' values come from
    assert (tmp_path / "training.png").stat().st_size > 10_000


def test_cli_plot_of_old_runs_and_a_clear_usage_error(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    if (RESULTS / "rl2-gru-bandit-k5-n10").is_dir():
        code = main(["plot", str(RESULTS / "rl2-gru-bandit-k5-n10"), str(RESULTS / "maml-trpo-point-nav"),
                     "--out", str(tmp_path / "p")])
        assert code == 0, capsys.readouterr().err
        assert (tmp_path / "p" / "training.png").stat().st_size > 10_000
    capsys.readouterr()
    bare = _progress(tmp_path, "bare", {"train/kl": [0.1, 0.2], "time/iteration": [1.0, 2.0]})
    assert main(["plot", str(bare), "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "none of the keys train/return, train/success" in err and "available: time/iteration, train/kl" in err
    (bare / "progress.csv").unlink()
    assert main(["plot", str(bare), "--out", str(tmp_path / "q")]) == 2
    assert "progress.csv: no such file" in capsys.readouterr().err


def test_shared_keys_are_the_default_plot() -> None:
    from metarl.evaluation.plots import DEFAULT_TRAINING_KEYS

    assert DEFAULT_TRAINING_KEYS == SHARED_KEYS == ("train/return", "train/success")


def test_runs_of_one_agent_env_and_seed_keep_a_legend_entry_each(tmp_path: Path) -> None:
    a = _progress(tmp_path / "a", "rl2", {"train/return": [1.0, 2.0], "time/total_env_steps": [1.0, 2.0]})
    b = _progress(tmp_path / "b", "rl2", {"train/trial_return": [3.0, 4.0], "time/total_env_steps": [1.0, 2.0]})
    c = _progress(tmp_path, "sweep-point", {"train/return": [5.0, 6.0], "time/total_env_steps": [1.0, 2.0]})
    fig = plot_training([a, b, c])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(set(labels)) == 3 and all(label.startswith("rl2 · point-nav · seed 0 (") for label in labels[:2])
    assert labels[2] == "sweep-point · point-nav · seed 0"  # a run alone with its label keeps it short
    assert str(a) in labels[0] and str(b) in labels[1]  # both folders are named "rl2": their paths tell them apart
