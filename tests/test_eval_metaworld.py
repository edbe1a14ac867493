"""``--protocol metaworld``: Meta-World's own evaluator drives metarl agents; test goals; manifests."""

from __future__ import annotations

import json
from pathlib import Path

import metaworld
import pytest
import torch
import yaml

from metarl.agents.maml_trpo import MAMLTRPO, MAMLTRPOConfig
from metarl.agents.rl2 import RL2, RL2Config
from metarl.envs import EnvSpecError, make_family
from metarl.errors import UsageError
from metarl.evaluation.manifest import check_comparable, manifest, mismatches
from metarl.evaluation.metaworld_eval import MetaWorldProtocol, eval_goals, evaluate_metaworld, make_eval_envs
from tests.cli_helpers import metarl

pytestmark = pytest.mark.timeout(600)

TINY = MetaWorldProtocol(meta_batch_size=2, goals_per_class=4, adaptation_episodes=2, evaluation_episodes=1,
                         max_episode_steps=25)


def _agent(kind: str):
    if kind == "maml-trpo":
        return MAMLTRPO(MAMLTRPOConfig(hidden_sizes=(16, 16)), "ml1-reach")
    if kind == "reptile-ppo":
        from metarl.agents.reptile_ppo import ReptilePPO, ReptilePPOConfig

        return ReptilePPO(ReptilePPOConfig(hidden_sizes=(16, 16), minibatch_size=25), "ml1-reach")
    return RL2(RL2Config(hidden_size=16), "ml1-reach")


@pytest.mark.parametrize("kind", ["maml-trpo", "reptile-ppo", "rl2"])
def test_metaworld_evaluator_drives_the_agent_end_to_end(kind: str, tmp_path: Path) -> None:
    agent = _agent(kind)
    calls = []
    session = agent.adaptation_session

    def counting(n: int, seed: int = 0):
        s = session(n, seed)
        adapt = s.adapt
        s.adapt = lambda episodes: (calls.append(episodes), adapt(episodes))[1]  # type: ignore[method-assign]
        return s

    agent.adaptation_session = counting  # type: ignore[method-assign]
    try:
        result = evaluate_metaworld(agent, TINY, out_dir=tmp_path, run="tiny")
    finally:
        agent.close()
    assert 0.0 <= result["mean_success"] <= 1.0 and result["mean_return"] > 0
    assert set(result["success_per_class"]) == {"reach-v3"}
    assert result["protocol"]["num_evals"] == 2 and result["protocol"]["goals_evaluated_per_class"] == 4
    assert result["manifest"]["reward_version"] == "v2" and result["manifest"]["metaworld"] == "3.1.1"
    # one adaptation per round, on the round's adaptation episodes: 2 envs x 2 episodes x 25 steps
    assert len(calls) == 2 and all(tuple(e.rewards.shape) == (2, 2, 25) for e in calls)
    assert all(bool((e.lengths == 25).all()) and float(e.rewards.abs().sum()) > 0 for e in calls)
    assert json.loads((tmp_path / "metaworld_protocol.json").read_text())["mean_success"] == result["mean_success"]
    assert "biased upward" in result["note"] and "--mw-meta-batch-size 1" in result["note"]  # 2 envs, 1 class


def _scored_actions(agent: RL2, protocol: MetaWorldProtocol) -> tuple[list[torch.Tensor], dict]:
    """The actions of every evaluation step (the actor's mean-action calls), and the result."""
    taken: list[torch.Tensor] = []
    session = agent.adaptation_session

    def recording(n: int, seed: int = 0):
        s = session(n, seed)
        act = s.actor.act

        def act_and_record(obs, state, start, generator):  # noqa: ANN001, ANN202 - the actor's signature
            out = act(obs, state, start, generator)
            if s.actor.deterministic:
                taken.append(out[0].clone())
            return out

        s.actor.act = act_and_record  # type: ignore[method-assign]
        return s

    agent.adaptation_session = recording  # type: ignore[method-assign]
    return taken, evaluate_metaworld(agent, protocol)


@pytest.mark.parametrize(("policy", "carry"), [("gru", False), ("gru", True), ("lstm", False)])
def test_rl2_scored_episodes_restart_from_the_adapted_memory(policy: str, carry: bool) -> None:
    """By default each scored episode starts from the memory at the end of adaptation (the reference RL²'s
    evaluation): a goal's reset is deterministic and so are mean actions, so its two scored episodes act
    identically. With mw_carry_memory the trial runs on, and the second episode acts on the first."""
    agent = RL2(RL2Config(policy=policy, hidden_size=16), "ml1-reach")
    protocol = MetaWorldProtocol(meta_batch_size=1, goals_per_class=1, adaptation_episodes=1, evaluation_episodes=2,
                                 max_episode_steps=20, restart_from_adapted=not carry)
    try:
        taken, result = _scored_actions(agent, protocol)
    finally:
        agent.close()
    assert len(taken) >= 40  # two full scored episodes (an untrained agent does not succeed in 20 steps)
    first, second = torch.stack(taken[:20]), torch.stack(taken[20:40])
    assert torch.equal(first, second) != carry
    expected = "carried over the trial" if carry else "restarted from adaptation"
    assert result["protocol"]["evaluation_memory"] == expected and result["protocol"]["restart_from_adapted"] != carry


def test_evaluated_goals_are_the_benchmarks_test_goals() -> None:
    family = make_family("ml1-push?seed=3")
    protocol = MetaWorldProtocol(meta_batch_size=4, goals_per_class=8)
    envs = make_eval_envs(family, protocol)
    try:
        goals = eval_goals(envs)
    finally:
        envs.close()
    bench = metaworld.ML1("push-v3", seed=3)
    seen = sorted(t.data for per_env in goals for t in per_env)
    assert len(goals) == 4 and all(len(g) == 2 for g in goals)
    assert seen == sorted(t.data for t in bench.test_tasks[:8])  # the first 8 test goals, each once
    assert not set(seen) & {t.data for t in bench.train_tasks}  # and none of the train goals
    assert seen == sorted(t.params["data"] for t in family.all_tasks("test")[:8])  # what metarl calls test


def test_protocol_numbers_are_checked() -> None:
    ml10 = make_family("ml10")
    with pytest.raises(EnvSpecError, match="meta_batch_size=12 must be a multiple of the 5 test classes"):
        make_eval_envs(ml10, MetaWorldProtocol(meta_batch_size=12))
    with pytest.raises(EnvSpecError, match="needs a Meta-World family"):
        make_eval_envs(make_family("point-nav"), MetaWorldProtocol())
    assert MetaWorldProtocol().rounds(5) == 10 and MetaWorldProtocol().rounds(1) == 2  # every goal once


def test_reward_version_reaches_the_envs_and_the_manifest() -> None:
    v1 = make_family("ml1-reach?reward_version=v1")
    assert v1.name == "ml1-reach?reward_version=v1"
    assert v1.make_env(v1.sample(1, 0)[0]).unwrapped.reward_function_version == "v1"
    assert manifest(v1)["reward_version"] == "v1" and manifest(make_family("ml1-reach"))["reward_version"] == "v2"
    assert mismatches(manifest(v1), manifest(make_family("ml1-reach"))) == ["reward_version: v1 vs v2"]
    assert mismatches({"reward_version": "v1"}, {}) == []  # a run from before manifests is not a difference
    with pytest.raises(EnvSpecError, match="reward_version='v3'; allowed: v2, v1"):
        make_family("ml1-reach?reward_version=v3")


def _fake_run(path: Path, reward_version: str) -> Path:
    path.mkdir()
    doc = {"run": {"agent": "maml-trpo", "env": "ml1-reach", "seed": 0,
                   "manifest": {"metaworld": "3.1.1", "benchmark": "ml1-reach", "reward_version": reward_version}},
           "config": {}}
    (path / "config.yaml").write_text(yaml.safe_dump(doc))
    (path / "progress.csv").write_text("time/iteration,time/total_env_steps,train/return\n0,100,1.0\n1,200,2.0\n")
    return path


def test_mixed_manifests_are_refused_unless_allowed(tmp_path: Path) -> None:
    a, b = _fake_run(tmp_path / "a", "v2"), _fake_run(tmp_path / "b", "v1")
    with pytest.raises(UsageError, match="reward_version: v2 vs v1"):
        check_comparable([a, b])
    check_comparable([a, b], allow_mixed=True)
    refused = metarl("plot", str(a), str(b), "--out", str(tmp_path / "p"), cwd=tmp_path)
    assert refused.code == 2 and "reward_version: v2 vs v1" in refused.err and "--allow-mixed" in refused.err
    allowed = metarl("plot", str(a), str(b), "--out", str(tmp_path / "p"), "--allow-mixed", cwd=tmp_path)
    assert allowed.code == 0, allowed.err
    assert (tmp_path / "p" / "training.png").is_file()


@pytest.mark.slow
def test_full_default_protocol_on_an_untrained_agent(tmp_path: Path) -> None:
    """Meta-World+'s numbers as they are: 20 envs, 10 adaptation and 3 evaluation episodes of 500 steps."""
    with MAMLTRPO(MAMLTRPOConfig(hidden_sizes=(16, 16)), "ml1-reach") as agent:
        result = evaluate_metaworld(agent, MetaWorldProtocol(), out_dir=tmp_path)
    assert result["protocol"]["goals_evaluated_per_class"] == 40 and 0.0 <= result["mean_success"] <= 1.0


def test_training_logs_the_metaworld_protocol_against_env_steps(tmp_path: Path) -> None:
    import csv

    run = tmp_path / "run"
    sets = ["meta_batch_size=2", "episodes_per_task=1", "hidden_sizes=[8, 8]", "eval.every=1",
            "eval.protocol=metaworld", "eval.mw_meta_batch_size=2", "eval.mw_goals_per_class=2",
            "eval.mw_adaptation_episodes=1", "eval.mw_evaluation_episodes=1", "eval.mw_max_episode_steps=10",
            "trainer.stdout=false", "sampling.backend=serial", "sampling.workers=null"]
    done = metarl("train", "maml-trpo", "--env", "ml1-reach", "--run-dir", str(run), "--iterations", "1",
                  "--no-progress", *[a for s in sets for a in ("--set", s)], cwd=tmp_path)
    assert done.code == 0, done.err
    row = next(csv.DictReader((run / "progress.csv").open()))
    assert 0.0 <= float(row["eval/metaworld/success"]) <= 1.0 and float(row["time/total_env_steps"]) == 2000
    assert float(row["eval/metaworld/return"]) > 0
