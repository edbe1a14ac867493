"""Agents register where they are defined; the registry loads lazily and the CLI names them all."""

from __future__ import annotations

import subprocess
import sys

import pytest

from metarl.agents import AGENTS, agent_class, agent_help, agent_names, register
from metarl.agents.base import MetaAgent
from metarl.envs.base import EnvSpecError


def test_every_agent_class_is_found_by_its_own_name() -> None:
    names = agent_names()
    assert {"maml-trpo", "multitask-trpo", "meta-sgd", "reptile-ppo", "rl2"} <= set(names)
    for name in names:
        cls = agent_class(name)
        assert issubclass(cls, MetaAgent) and cls.name == name
        assert AGENTS[name] == f"{cls.__module__}:{cls.__qualname__}"


def test_the_cli_help_names_every_agent(capsys: pytest.CaptureFixture[str]) -> None:
    """The list comes from the registry, so a new agent needs no edit outside its own file."""
    from metarl.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for name in agent_names():
        assert f"{name} (" in shown, f"{name} is registered but `metarl train --help` does not name it"
        assert agent_class(name).__dict__.get("summary"), f"{name} has no one-line summary"
    assert " ".join(agent_help().split()) in shown


def test_unknown_names_and_duplicate_names_are_refused() -> None:
    with pytest.raises(EnvSpecError, match="unknown agent 'maml-trop'.*maml-trpo"):
        agent_class("maml-trop")
    with pytest.raises(ValueError, match="two agents are named 'rl2'"):
        register(type("Impostor", (), {"name": "rl2", "__module__": "somewhere"}))


def test_listing_families_imports_no_agent_and_no_torch() -> None:
    code = ("import sys\nfrom metarl.cli import main\nmain(['envs'])\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('metarl.agents.')]\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
