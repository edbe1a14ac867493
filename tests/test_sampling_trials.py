"""The trial layout helpers beside ``Episodes``: rounds (episode ``k`` of every trial) and per-trial returns."""

from __future__ import annotations

import pytest
import torch

from metarl.sampling import make_sampler
from metarl.sampling.episodes import tensor_fields, trial_returns, trial_rounds
from tests.sampling_faulty_envs import spec
from tests.test_sampling_helpers import CounterActor


@pytest.fixture(scope="module")
def toy():
    with make_sampler(spec(random_length=True)) as sampler:
        yield sampler


def test_trial_rounds_and_returns_read_the_trial_layout(toy) -> None:
    tasks = toy.family.sample(2)
    E = 3
    ep = toy.sample(tasks, CounterActor(), 6, episodes_per_trial=E, seed=3)
    rounds = trial_rounds(ep)
    assert len(rounds) == E
    for k, r in enumerate(rounds):  # round k: episode k of every trial, in trial order
        assert r.episodes_per_trial == 1 and r.n_episodes == ep.n_trials and r.tasks == ep.tasks
        for name in tensor_fields():
            assert torch.equal(getattr(r, name), getattr(ep, name)[:, k::E]), name
        assert r.agent_info.keys() == ep.agent_info.keys()
        assert (r.agent_info["episodes_seen"][r.mask.bool()] == k).all()  # k episodes of experience before it
    totals = trial_returns(ep)
    assert totals.shape == (2, ep.n_trials)
    torch.testing.assert_close(totals, ep.returns.view(2, ep.n_trials, E).sum(-1))
    torch.testing.assert_close(sum(r.returns for r in rounds), totals)


def test_a_batch_without_trials_is_one_round(toy) -> None:
    ep = toy.sample(toy.family.sample(2), CounterActor(), 4, seed=1)
    (only,) = trial_rounds(ep)
    assert only.equal(ep)
    torch.testing.assert_close(trial_returns(ep), ep.returns)
