"""Every shipped experiment config resolves against its agent's typed config.

Why: a recipe such as ``experiments/configs/rl2/ml10.yaml`` is meant to run for hours; a key renamed in the
agent, or misspelt in the file, should fail here in a second, not at the start of a 20M-step run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metarl.agents import agent_class
from metarl.runs import ConfigError, resolve_config, to_dict

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
FILES = sorted(CONFIGS.glob("*/*.yaml"))


def test_there_are_configs_to_check() -> None:
    assert len(FILES) >= 10 and {p.parent.name for p in FILES} >= {"maml-trpo", "rl2", "pearl"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_resolves(path: Path) -> None:
    cls = agent_class(path.parent.name).Config
    cfg = resolve_config(cls, defaults_file=None, config_file=str(path), overrides=[])
    assert isinstance(cfg, cls) and to_dict(cfg)


def test_a_misspelt_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "rl2" / "ml10.yaml").read_text().replace("tanh_head:", "tanh_haed:"))
    with pytest.raises(ConfigError, match="tanh_haed"):
        resolve_config(agent_class("rl2").Config, defaults_file=None, config_file=str(bad), overrides=[])
