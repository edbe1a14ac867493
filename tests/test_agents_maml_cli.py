"""MAML-TRPO through the CLI and the Python API: run dir, determinism, resume, interrupts, config errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.api import load_agent, train
from metarl.cli import main
from metarl.runs import load_checkpoint

TINY = ["meta_batch_size=3", "episodes_per_task=2", "hidden_sizes=[16]", "trainer.stdout=false",
        "trainer.progress=false"]


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "metarl.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def sets(*extra: str) -> list[str]:
    out: list[str] = []
    for item in [*TINY, *extra]:
        out += ["--set", item]
    return out


def test_two_iterations_through_the_cli(tmp_path):
    run = tmp_path / "run"
    out = cli("train", "maml-trpo", "--env", "point-nav", "--iterations", "2", "--run-dir", str(run), *sets(),
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (run / "config.yaml").is_file()
    header, *rows = (run / "progress.csv").read_text().strip().splitlines()
    assert "train/post_return" in header and len(rows) == 2
    events = EventAccumulator(str(run))
    events.Reload()
    assert "train/post_return" in events.Tags()["scalars"]
    ckpt = load_checkpoint(run)
    assert ckpt.iteration == 2 and ckpt.agent == "maml-trpo"
    agent = load_agent(run)
    eps = agent.meta_test(agent.family.sample(2, rng=0, split="test"), rounds=1, episodes_per_round=2, seed=0)
    assert len(eps) == 2 and eps[0].returns.shape == (2, 2)


def _params(result) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result.agent.policy.state_dict().items()}


def test_seeded_runs_are_identical_and_resume_equals_straight(tmp_path):
    straight = train("maml-trpo", "point-nav", overrides=[*TINY, "trainer.iterations=4"], seed=3,
                     run_dir=tmp_path / "a")
    again = train("maml-trpo", "point-nav", overrides=[*TINY, "trainer.iterations=4"], seed=3, run_dir=tmp_path / "b")
    for k, v in _params(straight).items():
        assert torch.equal(v, _params(again)[k]), k
    assert (tmp_path / "a/progress.csv").read_text().split("\n")[1:] != []

    train("maml-trpo", "point-nav", overrides=[*TINY, "trainer.iterations=2"], seed=3, run_dir=tmp_path / "c")
    resumed = train("maml-trpo", overrides=["trainer.iterations=4"], resume=tmp_path / "c")
    assert resumed.result.iterations_done == 4
    for k, v in _params(straight).items():
        assert torch.equal(v, _params(resumed)[k]), k

    def metric_rows(path: Path) -> list[str]:
        header, *rows = path.read_text().strip().splitlines()
        cols = header.split(",")
        keep = [i for i, c in enumerate(cols) if c.startswith("train/")]
        return [",".join(r.split(",")[i] for i in keep) for r in rows]

    assert metric_rows(tmp_path / "a/progress.csv") == metric_rows(tmp_path / "c/progress.csv")


def test_sigint_leaves_a_loadable_checkpoint_and_no_orphans(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "metarl.cli", "train", "maml-trpo", "--env", "point-nav",
                             "--iterations", "500", "--run-dir", str(run), *sets("trainer.checkpoint_every=1000")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "progress.csv").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "metarl train --resume" in err
    ckpt = load_checkpoint(run)
    assert ckpt.iteration >= 1
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.strip()
    assert children == ""


@pytest.mark.parametrize("args, message", [
    (["--set", "meta_bach_size=3"], "did you mean 'meta_batch_size'"),
    (["--set", "inner_lr=-0.1"], "inner_lr"),
    (["--set", "meta_batch_size=0"], "meta_batch_size"),
    (["--set", "no_such_key=1"], "no_such_key"),
    (["--device", "gpu"], "invalid device 'gpu'"),
])
def test_config_errors_exit_2_and_name_the_key(tmp_path, args, message, capsys):
    code = main(["train", "maml-trpo", "--env", "point-nav", "--run-dir", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, message", [
    (["maml-trpo", "--env", "pont-nav"], "did you mean 'point-nav'"),
    (["maml-trop", "--env", "point-nav"], "did you mean 'maml-trpo'"),
])
def test_unknown_family_or_agent_exit_2(tmp_path, args, message, capsys):
    code = main(["train", *args, "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_tampered_checkpoint_is_named(tmp_path):
    train("maml-trpo", "point-nav", overrides=[*TINY, "trainer.iterations=1"], run_dir=tmp_path / "r")
    state = next((tmp_path / "r/checkpoints").glob("iter_*/state.pt"))
    state.write_bytes(state.read_bytes()[:100])
    out = cli("train", "--resume", str(tmp_path / "r"), "--iterations", "2", cwd=tmp_path)
    assert out.returncode != 0 and "state.pt" in out.stderr
    assert os.path.exists(state)


def test_show_config_lists_resolved_keys_with_help(capsys):
    assert main(["train", "maml-trpo", "--env", "point-nav", "--show-config", "--set", "inner_lr=0.2"]) == 0
    out = capsys.readouterr().out
    assert "inner_lr = 0.2    # inner step size alpha" in out
    assert "hidden_sizes = [100, 100]" in out  # from metarl/defaults/maml-trpo/point-nav.yaml
    assert "trainer.iterations = 100" in out
