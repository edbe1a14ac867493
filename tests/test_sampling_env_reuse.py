"""Envs are kept by class across meta-batches, and big batches run in passes under ``max_envs``."""

from __future__ import annotations

import pytest
import torch

from metarl.envs import make_family
from metarl.envs.env_batch import GymEnvBatch
from metarl.sampling import SamplerConfigError, make_sampler
from tests.test_sampling_helpers import random_actor

pytestmark = pytest.mark.timeout(600)


def _reuse(tasks_n: int, episodes: int) -> None:
    family = make_family("ml10")
    actor = random_actor(39, family.action_space, tasks_n)
    with make_sampler("ml10", max_episode_steps=5) as reused:
        first, second = family.sample(tasks_n, 1), family.sample(tasks_n, 2)
        assert first != second
        assert [t.params["env_name"] for t in first] == [t.params["env_name"] for t in second]  # rows keep classes
        reused.sample(first, actor, episodes, seed=0)
        got = reused.sample(second, actor, episodes, seed=4)
        batch = reused.backend.stepper.batch
        assert isinstance(batch, GymEnvBatch)
        assert batch.builds == tasks_n * episodes  # one env per (class, slot): none built for the second batch
    with make_sampler("ml10", max_episode_steps=5) as fresh:  # one fresh env per task
        want = fresh.sample(second, actor, episodes, seed=4)
    assert got.equal(want)


def test_meta_batches_reuse_envs_per_class_and_slot_with_identical_episodes() -> None:
    _reuse(20, 2)


@pytest.mark.slow
def test_ml10_meta_batch_of_20_tasks_by_10_episodes_reuses_envs() -> None:
    _reuse(20, 10)


def test_idle_envs_are_kept_by_class_and_bounded() -> None:
    family = make_family("ml10")
    batch = GymEnvBatch(family)
    tasks = family.sample(10, 0)
    batch.configure(tasks)
    batch.configure(tasks[:2])  # 8 envs go idle, kept for later (the bound is 2 idle envs here: closes 6)
    assert batch.builds == 10 and sum(len(v) for v in batch.idle.values()) == 2
    batch.configure(tasks)
    assert batch.builds == 16  # 2 idle envs reused, 6 rebuilt
    batch.close()


def test_max_envs_collects_in_passes_with_the_same_env_seeds() -> None:
    spec = "halfcheetah-vel?horizon=6"
    family = make_family(spec)
    tasks = family.sample(3, 0)
    actor = random_actor(17, family.action_space, 3)
    with make_sampler(spec) as whole, make_sampler(spec, max_envs=6) as passes:
        a = whole.sample(tasks, actor, 5, seed=3)
        b = passes.sample(tasks, actor, 5, seed=3)
        assert b.observations.shape == a.observations.shape == (3, 5, 6, 17)
        assert torch.equal(a.observations[:, :, 0], b.observations[:, :, 0])  # episode j of task i: same reset seed
        assert torch.equal(a.lengths, b.lengths) and not torch.equal(a.actions, b.actions)  # noise drawn per pass
        again = passes.sample(tasks, actor, 5, seed=3)
        assert again.equal(b)  # reproducible for a given max_envs
    with make_sampler(spec, max_envs=2) as too_small, pytest.raises(SamplerConfigError, match="max_envs=2 is less"):
        too_small.sample(tasks, actor, 5, seed=3)
    with pytest.raises(SamplerConfigError, match="max_envs=0 is invalid"):
        make_sampler(spec, max_envs=0)
