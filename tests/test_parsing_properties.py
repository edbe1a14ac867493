"""Property tests of the two parsers every user input goes through: configs and family specs.

Whatever the text, the outcome is a value or the project's :class:`~metarl.errors.UsageError`
(which the CLI turns into one line and exit 2), never another exception and never a traceback.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarl.agents import AGENTS, agent_class
from metarl.envs.plugins import check_recorded_spec
from metarl.envs.registry import make_family, parse_spec
from metarl.errors import UsageError
from metarl.runs.config import from_dict, load_yaml, parse_overrides, resolve_config

CONFIGS = [agent_class(name).Config for name in sorted(AGENTS)]
KEYS = ["inner_lr", "meta_batch_size", "hidden_sizes", "trainer.iterations", "sampling.backend", "sampling.workers",
        "eval.every", "policy", "outer_lr_final", "anneal_iterations", "trainer", "trainer.iterations.x", "", "."]
YAMLISH = st.one_of(
    st.text(max_size=20),
    st.sampled_from([".inf", "-.inf", ".nan", "1e309", "-1", "0", "1e-3", "[1, 2]", "[", "{a: 1}", "null", "~",
                     "true", "yes", "'quoted'", "!!python/object:os.system", "&a [*a]", "0x10", "1_000", "2.5"]),
)
VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8)),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("cls", CONFIGS, ids=sorted(AGENTS))
@SETTINGS
@given(key=st.one_of(st.sampled_from(KEYS), st.text(max_size=12)), raw=YAMLISH)
def test_any_override_parses_or_is_a_usage_error(cls, key, raw):
    try:
        cfg = resolve_config(cls, overrides=[f"{key}={raw}"])
    except UsageError:
        return
    assert isinstance(cfg, cls)


@pytest.mark.parametrize("cls", CONFIGS, ids=sorted(AGENTS))
@SETTINGS
@given(data=st.dictionaries(st.sampled_from(KEYS[:-2] + ["trainer", "eval", "sampling", "junk"]), VALUES, max_size=4))
def test_any_mapping_builds_or_is_a_usage_error(cls, data):
    try:
        cfg = from_dict(cls, data)
    except UsageError:
        return
    assert isinstance(cfg, cls)


@SETTINGS
@given(items=st.lists(st.text(max_size=16), max_size=3))
def test_any_override_list_parses_or_is_a_usage_error(items):
    try:
        parse_overrides(CONFIGS[0], items)
    except UsageError:
        pass


@SETTINGS
@given(text=st.text(max_size=60))
def test_any_yaml_file_loads_or_is_a_usage_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("yaml") / "c.yaml"
    path.write_text(text)
    try:
        data = load_yaml(path)
    except UsageError:
        return
    assert isinstance(data, dict)


PARAM = st.one_of(st.sampled_from(["k", "n", "horizon", "goal_range", "g", "seed", "nope", "low", "high", ""]),
                  st.text(alphabet=string.ascii_letters + "_", max_size=6))
QUERY = st.one_of(
    st.lists(st.tuples(PARAM, YAMLISH), max_size=3).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv)),
    st.text(alphabet=string.ascii_letters + string.digits + "=&?.|-_:[]{}!*' ", max_size=24),
)
#: Cheap families only: a spec for a MuJoCo or Meta-World family would build a simulator per example.
NAMES = st.one_of(st.sampled_from(["point-nav", "bandit", "tabular-mdp", "gym:Pendulum-v1", "gym:CartPole-v1",
                                   "gym:NoSuchEnv-v0", "point", "ml1", "ml1-", "gym:", ""]),
                  st.text(alphabet=string.ascii_lowercase + "-_/", max_size=10))


@SETTINGS
@given(name=NAMES, query=QUERY)
def test_any_spec_parses_or_is_a_usage_error(name, query):
    spec = f"{name}?{query}" if query else name
    try:
        parse_spec(spec)
        family = make_family(spec)
    except UsageError:
        return
    assert family.horizon >= 1


@SETTINGS
@given(spec=st.text(max_size=40), plugins=st.lists(st.text(max_size=8), max_size=2))
def test_any_recorded_spec_is_accepted_or_refused_without_importing(spec, plugins):
    """The check of a run directory's spec never imports what it was given (only vouched names)."""
    try:
        check_recorded_spec(spec, source="config.yaml", recorded_plugins=plugins)
    except UsageError:
        pass
