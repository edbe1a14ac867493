"""Plug-in families through all three paths, and the README's example."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from metarl.envs import EnvSpecError, TaskFamily, make_family, register, unregister
from metarl.envs.registry import ENTRY_POINT_GROUP


def test_python_registration_call():
    from examples.my_tasks import Walk

    register("walk-test", Walk)
    try:
        family = make_family("walk-test?target_range=3.0")
        assert isinstance(family, Walk) and family.target_range == 3.0
        task = family.sample(2, rng=0)[0]
        env = family.make_env(task)
        env.reset(seed=0)
        _, reward, *_ = env.step(np.array([0.5], np.float32))
        assert reward == pytest.approx(-abs(0.5 - task.params["target"]))
    finally:
        unregister("walk-test")
    with pytest.raises(EnvSpecError, match="unknown task family 'walk-test'"):
        make_family("walk-test")


def test_module_path_from_cli(repo_root):
    out = subprocess.run([sys.executable, "-m", "metarl.cli", "envs", "--env",
                          "examples.my_tasks:make_family?target_range=2.0"],
                         capture_output=True, text=True, cwd=repo_root, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "walk" in out.stdout and "horizon 20" in out.stdout


def test_entry_point_of_an_installed_package(tmp_path, monkeypatch):
    pkg = tmp_path / "walkplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from examples.my_tasks import Walk
        def factory(target_range: float = 1.0):
            return Walk(target_range)
    """))
    dist = tmp_path / "walkplug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: walkplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nwalk-ep = walkplug:factory\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    family = make_family("walk-ep?target_range=5")
    assert family.target_range == 5 and family.sample(1, rng=0)[0].params["target"] <= 5
    from metarl.envs import known_names

    assert "walk-ep" in known_names()


def test_plugin_that_does_not_import():
    with pytest.raises(EnvSpecError, match="cannot import module 'no_such_pkg_xyz.mod': ModuleNotFoundError"):
        make_family("no_such_pkg_xyz.mod:factory")


def test_plugin_missing_attribute_suggests():
    with pytest.raises(EnvSpecError, match="did you mean 'make_family'"):
        make_family("examples.my_tasks:make_famly")


def test_plugin_returning_wrong_type():
    with pytest.raises(EnvSpecError, match="returned dict, not a metarl.envs.TaskFamily"):
        make_family("tests.test_envs_plugins:not_a_family")


def not_a_family():
    return {"oops": 1}


def test_readme_python_examples_run(repo_root, tmp_path, monkeypatch):
    """The README's Python snippets are executed as written, so they cannot rot."""
    readme = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README has python examples"
    monkeypatch.chdir(tmp_path)
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    finally:
        from metarl.envs.registry import _REGISTRY

        for name in [n for n in _REGISTRY if n.startswith("readme-")]:
            unregister(name)


def test_factory_must_build_a_task_family():
    assert issubclass(type(make_family("examples.my_tasks:make_family")), TaskFamily)
    assert Path("examples/my_tasks.py").name == "my_tasks.py"
