"""Bad input never gets past the boundary: exit 2, one line that names the value, no traceback.

Table-driven over the cases a new user hit (issue 16, item 11) and others of the same kinds, run
through the installed console script from a folder outside the repository. Also: a tampered run
directory runs no code, plug-ins are imported only once vouched for, a family registered from
Python can be evaluated and resumed again, and failures at run time are one line with exit 1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metarl.runs.checkpoint import find_latest, load_checkpoint, save_checkpoint
from tests.cli_helpers import REPO, metarl, train_args, user_env


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder outside the repository holding one tiny trained MAML-TRPO run (``run``)."""
    root = tmp_path_factory.mktemp("cli")
    r = metarl(*train_args("maml-trpo", "run", iterations=1), cwd=root)
    assert r.code == 0, r.err
    (root / "afile").write_text("not a folder\n")
    return root


def _tampered_checkpoint(work: Path, name: str, edit) -> str:
    """A copy of the run whose latest checkpoint was rewritten by ``edit(state)`` with a valid sha256."""
    target = work / name
    if not target.exists():
        shutil.copytree(work / "run", target)
        ckpt = load_checkpoint(find_latest(target))
        state = edit(ckpt.state)
        shutil.rmtree(ckpt.path)
        save_checkpoint(target, state, agent=ckpt.agent, iteration=ckpt.iteration)
    return name


def _drop_policy(state):
    state["agent"] = {"nothing": torch.zeros(1)}
    return state


def _wrong_shapes(state):
    policy = state["agent"]["policy"]
    key = next(k for k, v in policy.items() if v.ndim == 2)
    policy[key] = torch.zeros(policy[key].shape[0] + 3, policy[key].shape[1])
    return state


TRAIN = ["train", "maml-trpo", "--env", "point-nav", "--iterations", "1", "--set", "meta_batch_size=2",
         "--set", "episodes_per_task=2", "--no-progress"]
EVAL = ["evaluate", "run", "--tasks", "2", "--rounds", "1", "--episodes", "2", "--no-progress"]

# (id, argv, text the message must contain)
USAGE_CASES = [
    ("train-threads", [*TRAIN, "--threads", "-1"], "-1"),
    ("evaluate-threads", [*EVAL, "--threads", "-1"], "-1"),
    ("train-seed", [*TRAIN, "--seed", "-1"], "-1"),
    ("evaluate-seed-huge", [*EVAL, "--seed", str(2**40)], str(2**40)),
    ("set-inf", [*TRAIN, "--set", "inner_lr=.inf"], "inner_lr"),
    ("set-nan", [*TRAIN, "--set", "max_kl=.nan"], "max_kl"),
    ("set-unknown-key", [*TRAIN, "--set", "inner_lrr=0.1"], "inner_lrr"),
    ("set-bad-type", [*TRAIN, "--set", "meta_batch_size=many"], "many"),
    ("set-backtrack-ratio", [*TRAIN, "--set", "backtrack_ratio=1.5"], "backtrack_ratio"),
    ("set-cg-damping", [*TRAIN, "--set", "cg_damping=-1e-3"], "cg_damping"),
    ("set-line-search-steps", [*TRAIN, "--set", "line_search_steps=0"], "line_search_steps"),
    ("set-inner-loss", [*TRAIN, "--set", "inner_loss=dice"], "dice"),
    ("point-nav-goal-test", [*TRAIN[:3], "point-nav?goal_test=circle", *TRAIN[4:]], "circle"),
    ("gym-bad-kwarg", ["train", "maml-trpo", "--env", "gym:Pendulum-v1?nope=1..2", "--run-dir", "left", "--no-progress"],
     "nope"),
    ("gym-bad-range", ["envs", "--env", "gym:Pendulum-v1?g=a..b"], "a..b"),
    ("gym-unknown-id", ["envs", "--env", "gym:NoSuchEnv-v0"], "NoSuchEnv-v0"),
    ("env-kwargs-notjson", [*TRAIN, "--env-kwargs", "notjson"], "notjson"),
    ("env-kwargs-list", [*TRAIN, "--env-kwargs", "[1]"], "[1]"),
    ("env-kwargs-bad-param", ["envs", "--env", "bandit", "--env-kwargs", '{"kk": 3}'], "kk"),
    ("unknown-family", ["train", "maml-trpo", "--env", "point-navv"], "point-navv"),
    ("unknown-agent", ["train", "mamltrpo", "--env", "point-nav"], "mamltrpo"),
    ("bad-plugin-path", ["envs", "--env", "no_such_module_xyz:make"], "no_such_module_xyz"),
    ("iterations-zero", [*TRAIN, "--iterations", "0"], "0"),
    ("evaluate-rounds", [*EVAL, "--rounds", "-1"], "-1"),
    ("evaluate-seeds", [*EVAL, "--seeds", "0"], "0"),
    ("evaluate-tasks", [*EVAL, "--tasks", "0"], "0"),
    ("evaluate-split", [*EVAL, "--split", "validation"], "validation"),
    ("evaluate-baseline", [*EVAL, "--baselines", "randon"], "randon"),
    ("evaluate-checkpoint-missing", [*EVAL, "--checkpoint", "missing"], "missing"),
    ("evaluate-out-file", [*EVAL, "--out", "afile"], "afile"),
    ("evaluate-not-a-run", ["evaluate", "afile"], "afile"),
    ("plot-out-file", ["plot", "run", "--out", "afile"], "afile"),
    ("plot-not-a-run", ["plot", "nowhere"], "nowhere"),
    ("run-dir-under-file", [*TRAIN, "--run-dir", "afile/run"], "afile/run"),
    ("run-dir-exists", [*TRAIN, "--run-dir", "run"], "run"),
    ("resume-missing", ["train", "--resume", "nowhere"], "nowhere"),
    ("device-bogus", [*TRAIN, "--device", "tpu"], "tpu"),
]
if not torch.cuda.is_available():
    USAGE_CASES += [("evaluate-device-cuda", [*EVAL, "--device", "cuda"], "cuda"),
                    ("train-device-cuda", [*TRAIN, "--device", "cuda"], "cuda")]


@pytest.mark.parametrize(("argv", "named"), [c[1:] for c in USAGE_CASES], ids=[c[0] for c in USAGE_CASES])
def test_bad_input_exits_2_naming_the_value(work, argv, named):
    r = metarl(*argv, cwd=work)
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" not in r.err + r.out
    assert named in r.err, r.err
    assert not (work / "left").exists(), "a run that could not start left its directory behind"


@pytest.mark.parametrize("edit", [_drop_policy, _wrong_shapes], ids=["structure", "shapes"])
def test_checkpoint_with_valid_hash_that_does_not_fit(work, edit):
    name = _tampered_checkpoint(work, f"run-{edit.__name__}", edit)
    for argv in (["evaluate", name, "--tasks", "2", "--rounds", "1", "--episodes", "2", "--no-progress"],
                 ["train", "--resume", name, "--iterations", "2", "--no-progress"]):
        r = metarl(*argv, cwd=work)
        assert r.code == 2, r.err
        assert "Traceback" not in r.err
        assert "does not fit" in r.err and "iter_000001" in r.err


def test_tampered_run_dir_runs_no_code(work):
    run = work / "evil"
    shutil.copytree(work / "run", run)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("env: point-nav", "env: 'os:system?command=touch pwned'", 1))
    for argv in (["evaluate", "evil", "--no-progress"], ["train", "--resume", "evil", "--iterations", "2"]):
        r = metarl(*argv, cwd=work)
        assert r.code == 2, r.err
        assert "--plugin os" in r.err and "METARL_PLUGINS=os" in r.err
        assert "Traceback" not in r.err
    code = "from metarl.api import load_agent\ntry:\n    load_agent('evil')\nexcept ValueError as e:\n    print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, env=user_env())
    assert "plugins=['os']" in out.stdout, out.stderr
    assert not (work / "pwned").exists()


def test_tampered_gym_id_with_module_runs_no_code(work):
    run = work / "evil-gym"
    shutil.copytree(work / "run", run)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("env: point-nav", "env: 'gym:antigravity:Fly-v0'", 1))
    r = metarl("evaluate", "evil-gym", cwd=work)
    assert r.code == 2 and "--plugin antigravity" in r.err, r.err
    assert "antigravity" not in sys.modules


def test_plugin_from_the_current_directory_and_python_registered_family(tmp_path):
    """The README's plug-in routes from a user's folder: a ``module:factory`` spec and ``register()``."""
    (tmp_path / "my_reg.py").write_text(
        "from metarl.envs import GymFamily, register\n"
        "register('pendulum-g', lambda: GymFamily('Pendulum-v1', randomize={'g': (8.0, 12.0)}, horizon=10))\n")
    (tmp_path / "train_it.py").write_text(
        "import my_reg\nfrom metarl.api import train\n"
        "train('maml-trpo', 'pendulum-g', run_dir='reg', overrides=['trainer.iterations=1', 'meta_batch_size=2',"
        " 'episodes_per_task=2', 'hidden_sizes=[8, 8]', 'trainer.stdout=false', 'trainer.progress=false'])\n")
    shutil.copy(REPO / "examples" / "my_tasks.py", tmp_path / "my_tasks.py")
    r = metarl("envs", "--env", "my_tasks:make_family?target_range=2.0", cwd=tmp_path)
    assert r.code == 0 and "1-D walk" in r.out, r.err
    out = subprocess.run([sys.executable, "train_it.py"], cwd=tmp_path, capture_output=True, text=True,
                         env=user_env())
    assert out.returncode == 0, out.stderr
    assert "- my_reg" in (tmp_path / "reg" / "config.yaml").read_text()

    eval_args = ["evaluate", "reg", "--tasks", "2", "--rounds", "1", "--episodes", "2", "--no-progress"]
    r = metarl(*eval_args, cwd=tmp_path)
    assert r.code == 2 and "--plugin my_reg" in r.err and "Traceback" not in r.err, r.err
    r = metarl(*eval_args, "--plugin", "my_reg", cwd=tmp_path)
    assert r.code == 0, r.err
    r = metarl(*eval_args, cwd=tmp_path, env=user_env(METARL_PLUGINS="my_reg"))
    assert r.code == 0, r.err
    r = metarl("train", "--resume", "reg", "--iterations", "2", "--no-progress", "--plugin", "my_reg", cwd=tmp_path)
    assert r.code == 0, r.err
    assert (tmp_path / "reg" / "checkpoints" / "iter_000002").is_dir()


def test_python_dash_m_metarl(tmp_path):
    out = subprocess.run([sys.executable, "-m", "metarl", "envs", "--env", "point-nav"], cwd=tmp_path,
                         capture_output=True, text=True, env=user_env())
    assert out.returncode == 0 and "point-nav" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-m", "metarl", "train", "bogus"], cwd=tmp_path, capture_output=True,
                         text=True, env=user_env())
    assert out.returncode == 2


def test_help_names_every_agent_and_what_rounds_mean(tmp_path):
    r = metarl("train", "--help", cwd=tmp_path)
    for agent in ("maml-trpo", "multitask-trpo", "reptile-ppo", "rl2"):
        assert agent in r.out
    r = metarl("evaluate", "--help", cwd=tmp_path)
    assert "(default: 3)" in r.out and "(default: 10)" in r.out
    assert "RL²" in r.out and "trial" in r.out


def test_failure_at_run_time_is_one_line_with_exit_1(tmp_path):
    """An env that raises mid-collection: exit 1, the useful sentence, no traceback unless --debug."""
    spec = "tests.sampling_faulty_envs:toy?fail_at=3"
    argv = ["train", "maml-trpo", "--env", spec, "--iterations", "1", "--set", "meta_batch_size=2",
            "--set", "episodes_per_task=2", "--no-progress", "--run-dir", "crash"]
    env = user_env(PYTHONPATH=str(REPO))
    r = metarl(*argv, cwd=tmp_path, env=env)
    assert r.code == 1, r.err
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    assert "step 3" in lines[0] and "--debug" in lines[0]
    shutil.rmtree(tmp_path / "crash", ignore_errors=True)
    r = metarl(*argv, "--debug", cwd=tmp_path, env=env)
    assert r.code == 1 and "Traceback" in r.err


@contextlib.contextmanager
def _mounted(path: Path, options: str):
    """A tmpfs at ``path`` (root only); yields False where mounting is not allowed."""
    path.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or shutil.which("mount") is None, reason="needs mount(8)")
def test_read_only_parent_and_full_disk(tmp_path):
    with _mounted(tmp_path / "ro", "ro,size=64k") as ro, _mounted(tmp_path / "full", "size=24k") as full:
        if not (ro and full):
            if os.geteuid() == 0:
                pytest.skip("mounting a tmpfs is not allowed here")
            (tmp_path / "ro").chmod(0o555)  # a plain user cannot write here, so it is read-only for them
        r = metarl(*TRAIN, "--run-dir", "ro/run", cwd=tmp_path)
        assert r.code == 2 and "ro/run" in r.err and "Traceback" not in r.err, r.err
        if ro and full:
            r = metarl(*TRAIN, "--run-dir", "full/run", "--set", "hidden_sizes=[256, 256]", cwd=tmp_path)
            assert r.code == 2 and "No space left" in r.err and "Traceback" not in r.err, r.err
            leftovers = [p.name for p in (tmp_path / "full").rglob(".tmp-*")]
            assert leftovers == []
