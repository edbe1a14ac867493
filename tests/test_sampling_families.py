"""Built-in MuJoCo and Meta-World families through the sampler: identical across backends, Meta-World specifics."""

from __future__ import annotations

import pytest
import torch

from metarl.envs import make_family
from metarl.sampling import make_sampler
from tests.test_sampling_helpers import random_actor

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("spec", ["halfcheetah-vel", "ml1-reach"])
def test_serial_and_process_agree_on_real_envs(spec: str) -> None:
    family = make_family(spec)
    tasks = family.sample(2, 0)
    actor = random_actor(family.observation_space.shape[0], family.action_space, 2)
    with make_sampler(spec, max_episode_steps=40) as s:
        want = s.sample(tasks, actor, 2, seed=3)
    with make_sampler(spec, backend="process", workers=2, max_episode_steps=40) as p:
        got = p.sample(tasks, actor, 2, seed=3)
    assert want.equal(got)
    assert want.rewards.shape == (2, 2, 40) and want.truncated[..., -1].all() and (want.lengths == 40).all()
    assert want.observations.dtype == torch.float32
    assert not torch.equal(want.rewards[0], want.rewards[1])  # tasks differ


def test_metaworld_full_episode_success_and_horizon() -> None:
    family = make_family("ml1-reach")
    tasks = family.sample(1, 0)
    with make_sampler(family) as s:
        ep = s.sample(tasks, random_actor(39, family.action_space, 1), 2, episodes_per_trial=2, seed=0)
    assert ep.observations.shape == (1, 2, 500, 39)
    assert (ep.lengths == 500).all() and ep.truncated[..., -1].all() and not ep.terminated.any()
    assert ep.success.dtype == torch.bool  # per-episode: any step's info["success"]
