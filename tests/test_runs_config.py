"""Config loading, overrides and the error messages users see."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from metarl.runs.config import (
    ConfigError,
    apply_overrides,
    dump_yaml,
    field_help,
    from_dict,
    load_yaml,
    param,
    resolve_config,
    validate,
)


@dataclass(frozen=True)
class InnerCfg:
    lr: float = param(0.1, min=0, exclusive_min=True, help="inner step size")
    steps: int = param(1, min=1, help="inner gradient steps")


@dataclass(frozen=True)
class ToyCfg:
    meta_batch_size: int = param(20, min=1, help="tasks per meta-update")
    max_kl: float = param(0.01, min=0, max=1, exclusive_min=True)
    hidden_sizes: tuple[int, ...] = param((64, 64), min=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    env: str = "point"
    device: str | None = None
    normalize: bool = True
    inner: InnerCfg = field(default_factory=InnerCfg)


@dataclass(frozen=True)
class OuterCfg:
    inner: InnerCfg = field(default_factory=lambda: InnerCfg(lr=0.5, steps=2))


def test_partial_section_keeps_parent_default():
    assert from_dict(OuterCfg, {"inner": {"steps": 7}}).inner == InnerCfg(lr=0.5, steps=7)
    assert resolve_config(OuterCfg, overrides=["inner.steps=3"]).inner == InnerCfg(lr=0.5, steps=3)


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = resolve_config(
        ToyCfg,
        overrides=[
            "inner.lr=1e-3",
            "hidden_sizes=[32, 16]",
            "env=123",
            "max_kl=0.05",
            "device=null",
        ],
    )
    assert cfg.inner.lr == pytest.approx(1e-3)
    assert cfg.hidden_sizes == (32, 16)
    assert cfg.env == "123"  # string fields keep the raw text
    path = tmp_path / "cfg.yaml"
    text = dump_yaml(cfg, path)
    assert from_dict(ToyCfg, yaml.safe_load(text)) == cfg
    assert resolve_config(ToyCfg, config_file=path) == cfg
    assert dump_yaml(resolve_config(ToyCfg, config_file=path)) == text


def test_unknown_key_suggests_nearest():
    with pytest.raises(ConfigError, match=r"meta_batch_sise.*did you mean 'meta_batch_size'"):
        resolve_config(ToyCfg, overrides=["meta_batch_sise=4"])
    with pytest.raises(ConfigError, match=r"'inner\.lrr'.*did you mean 'inner\.lr'"):
        from_dict(ToyCfg, {"inner": {"lrr": 0.1}})


def test_unknown_key_in_yaml_names_file(tmp_path):
    path = tmp_path / "user.yaml"
    path.write_text("meta_batch_size: 4\noptimiser: sgd\n")
    with pytest.raises(ConfigError) as err:
        resolve_config(ToyCfg, config_file=path)
    msg = str(err.value)
    assert str(path) in msg and "optimiser" in msg and "did you mean 'optimizer'" in msg


def test_negative_learning_rate_names_key_value_and_bound():
    with pytest.raises(ConfigError) as err:
        resolve_config(ToyCfg, overrides=["inner.lr=-0.5"])
    msg = str(err.value)
    assert "inner.lr" in msg and "-0.5" in msg and "> 0" in msg


def test_zero_learning_rate_rejected_by_exclusive_min():
    with pytest.raises(ConfigError, match=r"inner\.lr: 0\.0 is out of range; allowed: > 0"):
        resolve_config(ToyCfg, overrides=["inner.lr=0"])


def test_zero_meta_batch_rejected():
    with pytest.raises(ConfigError, match=r"meta_batch_size: 0 is out of range; allowed: >= 1"):
        from_dict(ToyCfg, {"meta_batch_size": 0})


def test_upper_bound_and_elementwise_bounds():
    with pytest.raises(ConfigError, match=r"max_kl: 2\.0 .*> 0 and <= 1"):
        resolve_config(ToyCfg, overrides=["max_kl=2"])
    with pytest.raises(ConfigError, match=r"hidden_sizes: 0 is out of range"):
        resolve_config(ToyCfg, overrides=["hidden_sizes=[8, 0]"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("meta_batch_size=abc", r"meta_batch_size: expected int, got 'abc'"),
        ("meta_batch_size=2.5", r"meta_batch_size: expected int, got 2\.5"),
        ("normalize=3", r"normalize: expected bool"),
        ("inner=3", r"inner: expected a mapping"),
        ("optimizer=rmsprop", r"optimizer: 'rmsprop' is not allowed; choose one of \['adam', 'sgd'\]"),
        ("hidden_sizes=64", r"hidden_sizes: expected a list"),
        ("env.name=x", r"'env' is not a section"),
        ("no_equals_sign", r"--set expects key=value"),
    ],
)
def test_wrong_types_name_the_key(override, expected):
    with pytest.raises(ConfigError, match=expected):
        resolve_config(ToyCfg, overrides=[override])


def test_yaml_string_for_int_field_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inner:\n  steps: three\n")
    with pytest.raises(ConfigError, match=r"inner\.steps: expected int, got 'three'"):
        resolve_config(ToyCfg, config_file=path)


def test_precedence_defaults_file_user_file_set(tmp_path):
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("meta_batch_size: 40\ninner:\n  lr: 0.5\n  steps: 3\n")
    user = tmp_path / "user.yaml"
    user.write_text("inner:\n  lr: 0.2\n")
    cfg = resolve_config(ToyCfg, defaults_file=defaults, config_file=user, overrides=["meta_batch_size=8"])
    assert cfg.meta_batch_size == 8  # --set beats defaults file
    assert cfg.inner == InnerCfg(lr=0.2, steps=3)  # user beats defaults, sections merge
    assert cfg.max_kl == 0.01  # dataclass default survives


def test_apply_overrides_and_validate_code_built_config():
    cfg = apply_overrides(ToyCfg(), ["inner.steps=5", "meta_batch_size=1e2"])
    assert cfg.inner.steps == 5 and cfg.meta_batch_size == 100
    validate(cfg)
    with pytest.raises(ConfigError, match=r"inner\.lr: -1"):
        validate(ToyCfg(inner=InnerCfg(lr=-1.0)))
    with pytest.raises(ConfigError, match=r"meta_batch_size: expected int"):
        validate(ToyCfg(meta_batch_size="4"))  # type: ignore[arg-type]


def test_load_yaml_errors_and_run_config_section(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(bad)
    run_file = tmp_path / "config.yaml"
    run_file.write_text("run: {agent: toy}\nconfig: {meta_batch_size: 3}\n")
    assert resolve_config(ToyCfg, config_file=run_file).meta_batch_size == 3


def test_field_help_lists_nested_keys():
    helps = field_help(ToyCfg)
    assert helps["inner.lr"] == "inner step size"
    assert "meta_batch_size" in helps
