"""MAML-TRPO's agent-level options beyond the CLI: the relative inner advantages and their checkpointed state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from metarl.api import load_agent, train
from metarl.sampling import Episodes

TINY = ["meta_batch_size=3", "episodes_per_task=2", "hidden_sizes=[16]", "trainer.stdout=false",
        "trainer.progress=false", "trainer.tensorboard=false"]


def ended_early(episodes: Episodes, at: int) -> Episodes:
    """``episodes`` with each task's first episode ending (terminated) after ``at`` steps, as if it
    reached its goal: what makes per-episode and per-step weighting differ."""
    horizon = episodes.mask.shape[-1]
    lengths = episodes.lengths.clone()
    lengths[:, 0] = at
    steps = torch.arange(horizon)
    last = steps == lengths[..., None] - 1
    short = (lengths < horizon)[..., None]
    return dataclasses.replace(episodes, mask=(steps < lengths[..., None]).float(), lengths=lengths,
                               terminated=last & short, truncated=last & ~short)


def test_relative_inner_advantages_keep_their_typical_spread_through_resume(tmp_path: Path) -> None:
    """MAML-TRPO's ``inner_advantages=relative``: the running typical spread is learned in training,
    saved in the checkpoint (so 2 + 1 iterations equal 3) and used by meta-test adaptation."""
    rel = [*TINY, "inner_advantages=relative"]
    agent = train("maml-trpo", "point-nav", overrides=[*rel, "trainer.iterations=3"], seed=4, run_dir=tmp_path / "a").agent
    assert agent.typical_spread is not None and agent.typical_spread > 0
    train("maml-trpo", "point-nav", overrides=[*rel, "trainer.iterations=2"], seed=4, run_dir=tmp_path / "b")
    resumed = train("maml-trpo", overrides=["trainer.iterations=3"], resume=tmp_path / "b").agent
    assert resumed.typical_spread == agent.typical_spread
    for k, v in agent.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k]), k

    loaded = load_agent(tmp_path / "a")
    tasks = loaded.family.sample(2, rng=0, split="test")
    episodes = loaded.collect(tasks, loaded.initial_params(2), 2, seed=0)
    start = loaded.initial_params(2)
    adapted = loaded.adapt(start, episodes)
    loaded.typical_spread *= 4.0  # with power 1 the step is linear in the reference spread
    larger = loaded.adapt(loaded.initial_params(2), episodes)
    loaded.close()
    for k in adapted:
        torch.testing.assert_close(larger[k] - start[k], 4 * (adapted[k] - start[k]), rtol=1e-4, atol=1e-7)


def test_meta_test_step_weighting_changes_only_the_meta_test_inner_step(tmp_path: Path) -> None:
    """``test_step_weighting=step`` on a run trained with per-episode weighting: the adaptation
    session takes the every-step inner step, training's own ``adapt`` keeps the per-episode one, and
    the two differ once episodes end at different times (here: one episode per task cut short)."""
    train("maml-trpo", "point-nav", overrides=[*TINY, "trainer.iterations=1", "step_weighting=episode",
                                       "test_step_weighting=step"], seed=2, run_dir=tmp_path / "r")
    agent = load_agent(tmp_path / "r")
    tasks = agent.family.sample(2, rng=0, split="test")
    episodes = ended_early(agent.collect(tasks, agent.initial_params(2), 4, seed=3), at=30)
    session = agent.adaptation_session(2)
    session.adapt(episodes)
    every_step = agent.adapt(agent.initial_params(2), episodes, weighting="step")
    per_episode = agent.adapt(agent.initial_params(2), episodes)
    agent.close()
    for k in every_step:
        assert torch.equal(session.params[k], every_step[k]), k
    assert any(not torch.allclose(per_episode[k], every_step[k]) for k in every_step)
