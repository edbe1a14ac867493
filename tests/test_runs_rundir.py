"""Run directory layout, metadata, and refusal to clobber an existing run."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pytest
import yaml

from metarl.runs.config import ConfigError, param
from metarl.runs.rundir import (
    RunDirError,
    RunMetadata,
    create_run_dir,
    default_run_dir,
    open_run_dir,
    prepare_run,
    read_run_config,
    resume_command,
)


@dataclass(frozen=True)
class SmallCfg:
    lr: float = param(0.1, min=0, exclusive_min=True)
    hidden: tuple[int, ...] = (8, 8)


def test_default_name_layout_and_metadata(tmp_path):
    meta = RunMetadata(agent="maml_trpo", env="Meta-World/ML1:reach-v3", seed=7)
    run = create_run_dir(meta, SmallCfg(lr=0.5), root=tmp_path)
    assert run.path.parent == tmp_path
    assert re.fullmatch(r"maml_trpo-Meta-World_ML1_reach-v3-\d{8}-\d{6}", run.path.name)
    assert run.checkpoints.is_dir() and run.eval.is_dir()
    doc = yaml.safe_load(run.config_file.read_text())
    assert doc["config"] == {"lr": 0.5, "hidden": [8, 8]}
    for key in ("agent", "env", "seed", "device", "metarl_version", "command", "created"):
        assert key in doc["run"]
    assert doc["run"]["seed"] == 7
    run_meta, cfg = read_run_config(run, SmallCfg)
    assert cfg == SmallCfg(lr=0.5) and run_meta["agent"] == "maml_trpo"


def test_same_second_launches_get_distinct_dirs(tmp_path):
    now = dt.datetime(2025, 1, 2, 3, 4, 5)
    first = default_run_dir("rl2", "bandit", tmp_path, now)
    assert first.name == "rl2-bandit-20250102-030405"
    first.mkdir()
    assert default_run_dir("rl2", "bandit", tmp_path, now).name == "rl2-bandit-20250102-030405-1"


def test_refuses_to_overwrite_non_empty_run_dir(tmp_path):
    meta = RunMetadata(agent="rl2", env="bandit", seed=0)
    target = tmp_path / "myrun"
    create_run_dir(meta, SmallCfg(), path=target)  # empty/new: fine
    (target / "progress.csv").write_text("train/loss\n1.0\n")
    with pytest.raises(RunDirError) as err:
        create_run_dir(meta, SmallCfg(), path=target)
    msg = str(err.value)
    assert str(target) in msg and "not empty" in msg and "--resume" in msg
    assert (target / "progress.csv").read_text() == "train/loss\n1.0\n"


def test_existing_empty_dir_is_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    run = create_run_dir(RunMetadata("rl2", "bandit", 0), SmallCfg(), path=tmp_path / "empty")
    assert run.config_file.is_file()


def test_open_run_dir_for_resume(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        open_run_dir(tmp_path / "nope")
    (tmp_path / "notarun").mkdir()
    with pytest.raises(RunDirError, match="not a metarl run"):
        open_run_dir(tmp_path / "notarun")
    run = create_run_dir(RunMetadata("rl2", "bandit", 0), SmallCfg(), path=tmp_path / "r")
    assert open_run_dir(run.path) == run


def test_resume_command_is_shell_quoted():
    assert resume_command("runs/a b") == "metarl train --resume 'runs/a b'"


def test_prepare_run_new_then_resume_with_override(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("lr: 0.3\n")
    meta = RunMetadata(agent="rl2", env="bandit", seed=1, command="metarl train ...")
    run, cfg, _ = prepare_run(SmallCfg, meta, run_dir=tmp_path / "r", config_file=user, overrides=["hidden=[4]"])
    assert cfg == SmallCfg(lr=0.3, hidden=(4,))
    with pytest.raises(RunDirError, match="not empty"):
        prepare_run(SmallCfg, meta, run_dir=run.path)
    with pytest.raises(ConfigError, match="--config cannot be combined with --resume"):
        prepare_run(SmallCfg, meta, run_dir=run.path, resume=True, config_file=user)

    again = RunMetadata(agent="rl2", env="bandit", seed=1, command="metarl train --resume r")
    run2, cfg2, meta2 = prepare_run(SmallCfg, again, run_dir=run.path, resume=True, overrides=["lr=0.2"])
    assert run2 == run and cfg2 == SmallCfg(lr=0.2, hidden=(4,))
    assert meta2["command"] == "metarl train ..."  # the original launch is kept
    assert meta2["resumes"][0]["overrides"] == ["lr=0.2"]
    assert read_run_config(run, SmallCfg)[1] == cfg2
    with pytest.raises(ConfigError, match=r"lr: -1\.0 is out of range"):
        prepare_run(SmallCfg, again, run_dir=run.path, resume=True, overrides=["lr=-1"])
