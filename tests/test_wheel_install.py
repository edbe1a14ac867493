"""A wheel built from the tree, installed into a fresh virtual environment, resolves the same configs.

The per-family defaults are package data (``metarl/defaults``); before, they were read from
``experiments/configs`` beside the source tree, so an installed metarl silently trained with the
dataclass defaults. The fresh environment borrows the dependencies of this one (a ``.pth`` line, no
downloads) but gets metarl only from the wheel, and runs from a folder outside the repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.cli_helpers import METARL, REPO, user_env

SHIPPED = sorted((REPO / "metarl" / "defaults").glob("*/*.yaml"))
SPEC = {"ml1": "ml1-reach", "bandit": "bandit?k=5&n=10"}


def _run(*cmd: str, cwd: Path) -> str:
    out = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=user_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def wheel_metarl(tmp_path_factory) -> Path:
    """The ``metarl`` script of a fresh venv holding only the wheel (dependencies borrowed)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    top_level = {".venv", ".git", "experiments", "runs", "build", "dist", "plots", ".pytest_cache"}

    def skip(folder: str, names: list[str]) -> set[str]:
        here = top_level if Path(folder) == REPO else set()
        return {n for n in names if n in here or n == "__pycache__" or n.endswith(".egg-info")}

    shutil.copytree(REPO, src, ignore=skip)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"),
         str(src), cwd=root)
    (wheel,) = (root / "dist").glob("metarl-*.whl")
    venv = root / "venv"
    _run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv), cwd=root)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (purelib / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index",
         "-q", str(wheel), cwd=root)
    shutil.rmtree(src)
    return venv / "bin" / "metarl"


def test_wheel_carries_the_family_defaults(wheel_metarl, tmp_path):
    where = _run(str(wheel_metarl.with_name("python")), "-c", "import metarl, sys; print(metarl.__file__)", cwd=tmp_path)
    assert str(REPO) not in where, "the fresh venv imported metarl from the source tree"
    assert SHIPPED, "no shipped defaults found"
    for path in SHIPPED:
        agent, family = path.parent.name, path.stem
        args = ["train", agent, "--env", SPEC.get(family, family), "--show-config"]
        installed = _run(str(wheel_metarl), *args, cwd=tmp_path)
        editable = _run(str(METARL), *args, cwd=tmp_path)
        assert installed == editable, f"{agent} on {family}: the wheel resolves another config"
        first_key = next(iter(yaml.safe_load(path.read_text())))
        assert first_key in installed


def test_wheel_trains_with_the_shipped_defaults(wheel_metarl, tmp_path):
    args = ["train", "maml-trpo", "--env", "point-nav", "--iterations", "1", "--set", "meta_batch_size=2",
            "--set", "episodes_per_task=2", "--no-progress", "--set", "trainer.stdout=false"]
    _run(str(wheel_metarl), *args, "--run-dir", "wheel", cwd=tmp_path)
    _run(str(METARL), *args, "--run-dir", "editable", cwd=tmp_path)
    configs = [yaml.safe_load((tmp_path / d / "config.yaml").read_text())["config"] for d in ("wheel", "editable")]
    assert configs[0] == configs[1]
    shipped = yaml.safe_load((REPO / "metarl" / "defaults" / "maml-trpo" / "point-nav.yaml").read_text())
    kept = {k: v for k, v in shipped.items() if k not in ("meta_batch_size", "episodes_per_task", "trainer")}
    assert kept and all(configs[0][k] == (v if not isinstance(v, dict) else {**configs[0][k], **v})
                        for k, v in kept.items())
