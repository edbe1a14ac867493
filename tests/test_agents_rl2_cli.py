"""RL² through the CLI for each policy kind: runs, checkpoints, and 2 + 2 resumed iterations == 4 straight."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metarl import cli
from metarl.api import load_agent, train
from metarl.runs import load_checkpoint

TINY = ["meta_batch_size=3", "trials_per_task=2", "hidden_size=8", "snail_embed=8", "snail_filters=4",
        "snail_key_size=4", "snail_value_size=4", "epochs=2", "minibatches=2", "trainer.stdout=false",
        "trainer.progress=false", "trainer.tensorboard=false", "trainer.checkpoint_every=1"]
ENV = "bandit?k=3&n=4"


def metarl(*args: str) -> int:
    """``metarl ARGS`` in-process: the CLI's own entry point, without paying a fresh interpreter per call."""
    return cli.main(list(args))


@pytest.mark.parametrize("policy", ["gru", "lstm", "snail"])
def test_cli_train_checkpoint_and_resume_equals_straight(tmp_path: Path, policy: str) -> None:
    overrides = [*TINY, f"policy={policy}"]
    sets = [a for kv in overrides for a in ("--set", kv)]
    run = tmp_path / "run"
    assert metarl("train", "rl2", "--env", ENV, "--iterations", "2", "--seed", "5", "--run-dir", str(run), *sets) == 0
    assert load_checkpoint(run).iteration == 2
    header = (run / "progress.csv").read_text().splitlines()[0]
    assert "train/trial_return" in header and "time/env_steps" in header
    assert metarl("train", "--resume", str(run), "--iterations", "4") == 0

    straight = train("rl2", ENV, overrides=[*overrides, "trainer.iterations=4"], seed=5, run_dir=tmp_path / "straight")
    resumed = load_agent(run)
    assert resumed.config.policy == policy and load_checkpoint(run).iteration == 4
    mine, ref = resumed.net.state_dict(), straight.agent.net.state_dict()
    for key, value in ref.items():
        assert torch.equal(value, mine[key]), key
    opt_mine, opt_ref = resumed.optimizer.state_dict()["state"], straight.agent.optimizer.state_dict()["state"]
    for key, value in opt_ref.items():
        assert torch.equal(value["exp_avg_sq"], opt_mine[key]["exp_avg_sq"]), key
    assert resumed.rng.bit_generator.state == straight.agent.rng.bit_generator.state


def test_resume_with_a_new_lr_trains_at_that_lr_and_keeps_adams_moments(tmp_path: Path) -> None:
    """``--set lr=`` on resume takes effect: the checkpoint supplies Adam's moments, the config its step size."""
    run = tmp_path / "run"
    first = train("rl2", ENV, overrides=[*TINY, "trainer.iterations=1", "lr=0.001"], seed=2, run_dir=run).agent
    moments = {k: v["exp_avg"].clone() for k, v in first.optimizer.state_dict()["state"].items()}
    resumed = load_agent(run)  # what the resume below starts from: lr as recorded
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [0.001]
    for key, value in resumed.optimizer.state_dict()["state"].items():
        assert torch.equal(value["exp_avg"], moments[key]), key
    assert metarl("train", "--resume", str(run), "--iterations", "2", "--set", "lr=0.0003") == 0
    after = load_agent(run)
    assert after.config.lr == 0.0003 and [g["lr"] for g in after.optimizer.param_groups] == [0.0003]


@pytest.mark.parametrize("bad", ["policy=transformer", "policy=snail\nbptt=5"])
def test_bad_config_exits_2_and_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    sets = [a for kv in bad.split("\n") for a in ("--set", kv)]
    assert metarl("train", "rl2", "--env", ENV, *sets, "--run-dir", str(tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert bad.split("\n")[-1].split("=")[0] in err and "Traceback" not in err


def test_init_from_warm_starts_and_a_bad_source_names_the_key(tmp_path: Path) -> None:
    """The shared warm start: weights carried over; a missing run or a different network is a ConfigError."""
    from metarl.agents.rl2 import RL2, RL2Config
    from metarl.runs import ConfigError

    source = train("rl2", ENV, overrides=[*TINY, "trainer.iterations=1"], seed=1, run_dir=tmp_path / "src").agent
    warm = RL2(RL2Config(hidden_size=8, init_from=str(tmp_path / "src")), ENV, seed=2)
    for key, value in source.net.state_dict().items():
        assert torch.equal(warm.net.state_dict()[key], value)
    warm.close()
    source.close()
    with pytest.raises(ConfigError, match=r"init_from='.*nowhere'.*no checkpoint"):
        train("rl2", ENV, overrides=[*TINY, f"init_from={tmp_path / 'nowhere'}"], run_dir=tmp_path / "bad")
    with pytest.raises(ConfigError, match=r"init_from=.*src.*torso True"):
        train("rl2", ENV, overrides=[*TINY, "torso=true", f"init_from={tmp_path / 'src'}"], run_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
