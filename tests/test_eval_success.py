"""One definition of success for agents and baselines, learned from the envs (no ``has_success`` flag needed)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from metarl import demo
from metarl.api import load_agent, train
from metarl.envs import make_family
from metarl.evaluation.actors import FunctionActor, UniformActor
from metarl.evaluation.baselines import _ppo_env, _task_actions, ppo_scratch_baseline, random_baseline
from metarl.evaluation.metrics import read_progress
from metarl.evaluation.protocol import evaluate_agent
from metarl.sampling import make_sampler
from metarl.sampling.stepper import success_flags
from tests.eval_success_envs import PATH, spec

REPORTS, SILENT, DECLARED = spec(), spec(report=False), spec(declared=True)
TINY = ["meta_batch_size=2", "episodes_per_task=4", "hidden_sizes=[8]", "trainer.iterations=1", "eval.every=1",
        "eval.tasks=2", "eval.rounds=1", "eval.episodes_per_round=4", "trainer.stdout=false", "trainer.progress=false"]


def test_the_step_rule_is_truthiness() -> None:
    assert success_flags([0, 0.0, False, np.float32(0)]).tolist() == [False] * 4
    assert success_flags([1, 2.5, True, -1.0, np.bool_(True)]).tolist() == [True] * 5
    with pytest.raises((TypeError, ValueError)):
        success_flags(["yes"])


BACKENDS = ["serial", "process"] + (["ray"] if importlib.util.find_spec("ray") else [])


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_sampler_learns_from_the_envs_whether_they_report_success(backend: str) -> None:
    """The per-slot flag crosses every backend: shared memory (process), returned outputs (ray), in place (serial)."""
    if backend == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        got = {}
        for name in (REPORTS, SILENT):
            family = make_family(name)
            tasks = family.sample(2)
            # one Ray actor: a closed sampler's actors free their CPU only a moment later
            with make_sampler(name, backend, workers={"serial": None, "process": 2, "ray": 1}[backend]) as sampler:
                got[name] = sampler.sample(tasks, UniformActor(family.action_space), 8, seed=3)
            with make_sampler(name) as serial:
                assert got[name].equal(serial.sample(tasks, UniformActor(family.action_space), 8, seed=3))
    finally:
        if backend == "ray":
            ray.shutdown()
    assert got[REPORTS].reports_success and not got[SILENT].reports_success
    rates = got[REPORTS].success_values()
    assert torch.equal(rates, got[REPORTS].success.double()) and 0 < float(rates.mean()) < 1
    assert torch.isnan(got[SILENT].success_values()).all()


def test_a_declared_family_reports_zero_not_nan_when_no_step_carries_the_key() -> None:
    family = make_family(DECLARED)
    with make_sampler(DECLARED) as sampler:
        episodes = sampler.sample(family.sample(2), UniformActor(family.action_space), 4, seed=0)
    assert episodes.reports_success and float(episodes.success_values().mean()) == 0.0


@pytest.mark.parametrize("name", [REPORTS, SILENT])
def test_agent_and_random_baseline_agree_on_whether_there_is_success(name: str, tmp_path, monkeypatch) -> None:
    """A plug-in family without ``has_success``: the agent's curves, its training log and the baseline's alike."""
    monkeypatch.setenv("METARL_PLUGINS", "tests.eval_success_envs")  # the run's recorded family is a plug-in
    outcome = train("maml-trpo", name, overrides=TINY, run_dir=tmp_path / "run")
    assert outcome.result.exit_code == 0
    progress = read_progress(outcome.run_dir)
    reports = name == REPORTS
    for key in ("train/success", "train/pre_success", "train/post_success", "adapt/round_0/success",
                "adapt/round_1/success"):
        assert progress.has(key) == reports, key
    agent = load_agent(outcome.run_dir)
    _, _, rows = evaluate_agent(agent, run="run", out_dir=tmp_path / "eval", n_tasks=2, rounds=1,
                                episodes_per_round=40, seeds=[0], baselines=["random"], progress=False)
    agent.close()
    by_method = {m: [r.success_rate for r in rows if r.method == m] for m in ("maml-trpo", "random")}
    assert all(len(v) == 4 for v in by_method.values())  # 2 tasks x rounds 0, 1
    for rates in by_method.values():
        if reports:
            assert all(0.0 <= s <= 1.0 for s in rates)
        else:
            assert all(math.isnan(s) for s in rates)
    if reports:  # random play succeeds with 1 - 0.5**3; 40 episodes a row
        assert all(abs(s - 0.875) < 4 * math.sqrt(0.875 * 0.125 / 40) for s in by_method["random"])


@pytest.mark.parametrize("name", [REPORTS, SILENT])
def test_ppo_scratch_and_a_scripted_actor_use_the_same_rule(name: str) -> None:
    family = make_family(name)
    tasks = family.sample(1, split="test")
    ppo = ppo_scratch_baseline(family, tasks, [0, 64], episodes_per_round=4, seed=0, progress=False,
                               ppo_kwargs={"n_epochs": 1, "policy_kwargs": {"net_arch": [8]}})
    rnd = random_baseline(family, tasks, rounds=1, episodes_per_round=4, seed=0)
    with make_sampler(name) as sampler:  # always heads: every episode succeeds where the envs say so
        heads = sampler.sample(tasks, FunctionActor(lambda obs: np.ones(len(obs), np.int64)), 2, seed=0)
    if name == REPORTS:
        assert all(0.0 <= r.success_rate <= 1.0 for r in ppo + rnd) and heads.success_values().tolist() == [[1.0, 1.0]]
    else:
        assert all(math.isnan(r.success_rate) for r in ppo + rnd) and torch.isnan(heads.success_values()).all()


def test_the_demo_tour_prints_sampler_episodes(capsys, monkeypatch) -> None:
    """``metarl demo``'s random episodes are the sampler's, with the same seed, return and success rule."""
    monkeypatch.setattr(demo, "TOUR", (REPORTS, SILENT))
    demo.tour(seed=5)
    rows = {line.split()[0]: line.split()[1:4] for line in capsys.readouterr().out.splitlines()
            if line.startswith(PATH)}
    for name in (REPORTS, SILENT):
        family = make_family(name)
        with make_sampler(name) as sampler:
            direct = sampler.sample(family.sample(1, rng=5, split="test"), UniformActor(family.action_space), 1, seed=5)
        got_name, episodes = demo.random_episode(name, seed=5)
        assert got_name == family.name and episodes.equal(direct)
        success = float(direct.success_values()[0, 0])
        assert (name == REPORTS) == (success in (0.0, 1.0)) and (name == SILENT) == math.isnan(success)
        assert rows[family.name] == [f"{float(direct.returns[0, 0]):.2f}", str(int(direct.lengths[0, 0])),
                                     "-" if math.isnan(success) else f"{success:.0f}"]


def test_ppo_scratch_actions_reach_the_task_through_its_training_wrappers() -> None:
    family = make_family("point-nav")
    env = _ppo_env(family, family.sample(1)[0])
    low, high = family.action_space.low, family.action_space.high
    assert not (np.allclose(low, -1) and np.allclose(high, 1))  # so the rescaling is really exercised
    to_task = _task_actions(env)
    np.testing.assert_allclose(to_task(np.stack([-np.ones_like(low), np.ones_like(low)])), np.stack([low, high]),
                               rtol=1e-6)


def test_training_success_is_also_logged_per_class_where_a_family_has_classes() -> None:
    """``train/success/<class>`` on Meta-World's real ML10 tasks; nothing extra for one class or none."""
    from dataclasses import replace

    from metarl.agents.base import episode_stats

    coins = make_family(REPORTS)
    with make_sampler(coins) as sampler:
        episodes = sampler.sample(coins.sample(3, rng=0), UniformActor(coins.action_space), 2, seed=0)
    ml10 = make_family("ml10")
    a, b = ml10.sample(3, rng=1)[:2]  # two classes
    a2 = next(t for t in ml10.sample(20, rng=1) if ml10.task_class(t) == ml10.task_class(a) and t != a)
    success = torch.tensor([[True, False], [True, True], [False, False]])
    batch = replace(episodes, tasks=(a, a2, b), success=success)
    stats = episode_stats(batch, "pre_", family=ml10)
    assert stats["pre_success"] == pytest.approx(0.5)
    assert stats[f"train/pre_success/{ml10.task_class(a)}"] == pytest.approx(0.75)
    assert stats[f"train/pre_success/{ml10.task_class(b)}"] == 0.0
    assert len(stats) == 4  # return, success and the two classes
    one_class = make_family("ml1-reach")
    same = replace(episodes, tasks=tuple(one_class.sample(3, rng=0)), success=success)
    assert set(episode_stats(same, family=one_class)) == {"return", "success"}
    assert set(episode_stats(batch, family=coins)) == {"return", "success"}  # a family without classes
    assert set(episode_stats(batch)) == {"return", "success"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("agent", ["rl2", "maml-trpo"])
def test_agents_log_training_success_per_ml10_class(agent: str, tmp_path) -> None:
    small = (["trial_episodes=1", "hidden_size=8", "encoder_sizes=[]", "epochs=1"] if agent == "rl2"
             else ["episodes_per_task=1", "hidden_sizes=[8]"])
    overrides = ["meta_batch_size=2", "trainer.iterations=1", "eval.every=0", "sampling.backend=serial",
                 "trainer.stdout=false", "trainer.progress=false", *small]
    outcome = train(agent, "ml10", overrides=overrides, run_dir=tmp_path / "run")
    assert outcome.result.exit_code == 0
    progress = read_progress(outcome.run_dir)
    classes = ["drawer-close-v3", "peg-insert-side-v3"]  # the two tasks of ml10's first meta-batch of 2
    keys = ([f"train/success/{c}" for c in classes] if agent == "rl2" else
            [f"train/{when}_success/{c}" for when in ("pre", "post") for c in classes])
    for key in keys:
        assert progress.has(key), key
