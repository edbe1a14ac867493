"""Bad input fails fast, names the bad value and what is allowed, and suggests near names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from metarl.envs import EnvSpecError, make_family


@pytest.mark.parametrize("spec, pattern", [
    ("pont-nav", r"unknown task family 'pont-nav'; did you mean 'point-nav'"),
    ("halfcheetah-vell", r"did you mean 'halfcheetah-vel'"),
    ("bandit?k=0", r"k=0 is invalid; k \(number of arms\) must be an integer >= 2"),
    ("bandit?n=-3", r"n=-3 is invalid"),
    ("halfcheetah-vel?low=-1&high=2", r"velocity range \[-1, 2\] is invalid; bounds must be >= 0"),
    ("halfcheetah-vel?low=2&high=1", r"low must be < high"),
    ("ml1-reech", r"unknown Meta-World task 'reech' for ml1; did you mean 'reach'"),
    ("point-nav?goal_rang=1", r"bad parameters .*goal_rang.*allowed: goal_range, horizon"),
    ("bandit?k", r"bad parameter 'k'"),
    ("gym:Pendulm-v1", r"unknown gymnasium env id 'Pendulm-v1'; did you mean 'Pendulum-v1'"),
    ("gym:Pendulum-v1?g=12..8", r"need lo <= hi"),
])
def test_bad_specs(spec, pattern):
    with pytest.raises(EnvSpecError, match=pattern):
        make_family(spec)


def test_bad_split_and_task_count():
    family = make_family("point-nav")
    with pytest.raises(EnvSpecError, match="unknown split 'tset'; allowed: train, test; did you mean 'test'"):
        family.sample(2, rng=0, split="tset")
    with pytest.raises(EnvSpecError, match="n=0 is invalid"):
        family.sample(0, rng=0)


def test_cli_exit_code_and_message():
    out = subprocess.run([sys.executable, "-m", "metarl.cli", "envs", "--env", "pont-nav"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "did you mean 'point-nav'" in out.stderr and "Traceback" not in out.stderr


def test_cli_lists_every_family():
    out = subprocess.run([sys.executable, "-m", "metarl.cli", "envs"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ["point-nav", "bandit", "tabular-mdp", "halfcheetah-vel", "halfcheetah-dir", "ant-dir", "ant-goal",
                 "ml1-reach", "ml10", "ml45"]:
        assert name in out.stdout
    assert "train tasks 50" in out.stdout and "test tasks 250" in out.stdout  # ML1 and ML45's test split
