"""Episodes layout, trials, per-task params, seeding and checks, on the serial backend."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from metarl.core import task_params
from metarl.envs import make_family
from metarl.sampling import Episodes, SamplerConfigError, SamplerError, make_sampler
from tests.sampling_faulty_envs import spec, tasks_with
from tests.test_sampling_helpers import (
    CounterActor,
    RecurrentTestActor,
    constant_actor,
    random_actor,
    recurrent_policy,
)

TOY = spec(random_length=True)


@pytest.fixture(scope="module")
def toy():
    with make_sampler(TOY) as sampler:
        yield sampler


def test_layout_mask_lengths_and_routing(toy) -> None:
    tasks = toy.family.sample(3)
    ep = toy.sample(tasks, random_actor(3, toy.family.action_space, 3), 4, seed=1)
    T, E, H = 3, 4, 10
    assert ep.observations.shape == (T, E, H, 3) and ep.observations.dtype == torch.float32
    assert ep.actions.shape == (T, E, H, 2) and ep.rewards.shape == (T, E, H) and ep.log_probs.shape == (T, E, H)
    assert ep.agent_info["mean"].shape == (T, E, H, 2)
    assert ep.tasks == tuple(tasks)
    seeds = ep.observations[:, :, 0, 2].long()
    assert torch.equal(ep.lengths, 1 + seeds % H)  # each episode got its own reset seed
    assert len(set(seeds.flatten().tolist())) == T * E
    assert torch.equal(ep.mask.sum(-1).long(), ep.lengths)
    steps = torch.arange(H).expand(T, E, H)
    real = ep.mask.bool()
    assert torch.equal(ep.observations[..., 1][real], steps[real].float())  # obs fed at step t saw t steps
    assert torch.equal(ep.terminated, real & (steps == ep.lengths[..., None] - 1))
    assert not ep.truncated.any()
    assert (ep.rewards[~real] == 0).all() and (ep.observations[~real] == 0).all()
    assert torch.allclose(ep.returns, ep.rewards.sum(-1))
    assert torch.equal(ep.last_observations[..., 1], ep.lengths.float())  # obs after the last step
    goals = torch.tensor([t.params["goal"] for t in tasks])
    assert torch.equal(ep.observations[..., 0][real], goals[:, None, None].expand(T, E, H)[real])
    assert torch.allclose(ep.rewards[real], ep.actions[..., 0].clamp(-10, 10)[real])
    assert ep.n_steps == int(ep.lengths.sum()) and toy.steps_collected >= ep.n_steps


def test_per_task_params_reach_the_right_envs(toy) -> None:
    tasks = toy.family.sample(4)
    shuffled = [tasks[2], tasks[0], tasks[3], tasks[1]]
    constants = [0.5, -1.5, 2.5, 3.25]
    ep = toy.sample(shuffled, constant_actor(3, toy.family.action_space, constants), 3, seed=0)
    real = ep.mask.bool()
    for row, (task, c) in enumerate(zip(shuffled, constants, strict=True)):
        assert (ep.observations[row, ..., 0][real[row]] == task.params["goal"]).all()
        assert (ep.actions[row][real[row]] == c).all()
        assert (ep.rewards[row][real[row]] == c).all()


def test_trial_state_carries_across_episodes_and_resets_per_trial(toy) -> None:
    tasks = toy.family.sample(2)
    E = 3
    ep = toy.sample(tasks, CounterActor(), 6, episodes_per_trial=E, seed=3)
    assert ep.episodes_per_trial == E and ep.n_trials == 2
    for row in range(2):
        for trial in range(2):
            cols = range(trial * E, (trial + 1) * E)
            seq = torch.cat([ep.rewards[row, c, : ep.lengths[row, c]] for c in cols])
            assert torch.equal(seq, torch.arange(len(seq)).float() / 4), (row, trial)
            for k, c in enumerate(cols):
                n = int(ep.lengths[row, c])
                assert (ep.agent_info["episodes_seen"][row, c, :n] == k).all()
                assert ep.agent_info["episode_start"][row, c, 0] and not ep.agent_info["episode_start"][row, c, 1:n].any()


def test_gru_actor_matches_a_manual_unroll_over_the_trial(toy) -> None:
    torch.manual_seed(0)
    family = toy.family
    policy = recurrent_policy(3, family.action_space, hidden=8)
    ep = toy.sample(family.sample(2), RecurrentTestActor(policy, deterministic=True), 4, episodes_per_trial=2, seed=5)
    for row in range(2):
        for trial in range(2):
            h = policy.initial_state(1)
            prev = torch.zeros(1, 2 + 1 + 1)
            for c in (2 * trial, 2 * trial + 1):
                for t in range(int(ep.lengths[row, c])):
                    x = torch.cat([ep.observations[row, c, t][None], prev], -1)
                    dist, h = policy.step(x, h)
                    mean = dist.mean[0]
                    assert torch.allclose(ep.agent_info["mean"][row, c, t], mean, atol=1e-6), (row, c, t)
                    done = float(ep.terminated[row, c, t] or ep.truncated[row, c, t])
                    prev = torch.cat([ep.actions[row, c, t], ep.rewards[row, c, t, None], torch.tensor([done])])[None]


def test_per_task_params_act_as_each_task_own_policy(toy) -> None:
    """One vmapped call for all tasks gives each task row what its own parameters give (a loop over tasks)."""
    actor = random_actor(3, toy.family.action_space, 3)
    ep = toy.sample(toy.family.sample(3), actor, 4, seed=2)
    real = ep.mask.bool()
    for row in range(3):
        own = task_params(actor.params, row)
        mean, _ = actor.policy.dist_params(own, ep.observations[row])
        assert torch.allclose(ep.agent_info["mean"][row][real[row]], mean[real[row]], atol=1e-6), row
        log_probs = actor.policy.log_prob(own, ep.observations[row], actions=ep.actions[row])
        assert torch.allclose(ep.log_probs[row][real[row]], log_probs[real[row]], atol=1e-5), row
    assert not torch.allclose(ep.agent_info["mean"][0], ep.agent_info["mean"][1])  # the rows' params differ


def test_same_seed_same_batch_other_seed_differs(toy) -> None:
    tasks = toy.family.sample(2)
    actor = random_actor(3, toy.family.action_space, 2)
    a, b = toy.sample(tasks, actor, 3, seed=7), toy.sample(tasks, actor, 3, seed=7)
    c = toy.sample(tasks, actor, 3, seed=8)
    assert a.equal(b) and a.seed == 7
    assert not a.equal(c)


def test_collection_runs_on_one_torch_thread_and_restores_the_setting(toy) -> None:
    """Idle intra-op threads spin on the cores env stepping needs (metarl.core.device.torch_threads)."""
    seen: list[int] = []
    inner = random_actor(3, toy.family.action_space, 2)

    class Recording:
        def initial_state(self, n_tasks, n_slots):  # noqa: ANN001, ANN202
            return inner.initial_state(n_tasks, n_slots)

        def act(self, *args):  # noqa: ANN002, ANN202
            seen.append(torch.get_num_threads())
            return inner.act(*args)

        def observe(self, *args):  # noqa: ANN002, ANN202
            return inner.observe(*args)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        toy.sample(toy.family.sample(2), Recording(), 2, seed=1)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_success_is_any_step(toy) -> None:
    family = toy.family
    ep = toy.sample(tasks_with(family, 2, success_at=1, random_length=False), CounterActor(), 2, seed=0)
    assert ep.success.all()
    ep = toy.sample(tasks_with(family, 2, success_at=99), CounterActor(), 2, seed=0)
    assert not ep.success.any()


def test_nonfinite_observation_or_reward_stops_collection(toy) -> None:
    family = toy.family
    with pytest.raises(SamplerError) as err:
        toy.sample(tasks_with(family, 3, nan_at=4, fault_task=1, random_length=False), CounterActor(), 2, seed=0)
    msg = str(err.value)
    assert "non-finite" in msg and "goal': 2.0" in msg and "step 4" in msg and "task row 1" in msg
    with pytest.raises(SamplerError, match=r"non-finite.*step 2: reward=inf"):
        toy.sample(tasks_with(family, 2, inf_reward_at=2, random_length=False), CounterActor(), 1, seed=0)


def test_env_exception_names_task_step_and_traceback(toy) -> None:
    with pytest.raises(SamplerError) as err:
        toy.sample(tasks_with(toy.family, 2, fail_at=3, fault_task=0, random_length=False), CounterActor(), 1)
    msg = str(err.value)
    assert "serial sampler" in msg and "RuntimeError: injected failure at step 3" in msg
    assert "goal': 1.0" in msg and "step 3" in msg and "Traceback" in msg and "sampling_faulty_envs.py" in msg
    assert err.value.task is not None and err.value.remote_traceback


def test_pickle_and_to(toy) -> None:
    ep = toy.sample(toy.family.sample(2), random_actor(3, toy.family.action_space, 2), 2, seed=0)
    back = pickle.loads(pickle.dumps(ep))
    assert isinstance(back, Episodes) and back.equal(ep)
    assert ep.to("cpu") is ep
    meta = ep.to("meta")
    assert meta.rewards.device.type == "meta" and meta.agent_info["mean"].device.type == "meta"
    assert meta.observations.shape == ep.observations.shape


def test_discrete_bandit_trials_with_gru() -> None:
    family = make_family("bandit?k=3&n=5")
    with make_sampler(family) as sampler:
        ep = sampler.sample(family.sample(2, 0), RecurrentTestActor(recurrent_policy(1, family.action_space, 8)), 10,
                            episodes_per_trial=5, seed=0)
    assert ep.actions.shape == (2, 10, 1) and ep.actions.dtype == torch.int64
    assert set(ep.rewards.unique().tolist()) <= {0.0, 1.0} and (ep.lengths == 1).all()
    assert ep.agent_info["logits"].shape == (2, 10, 1, 3)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"backend": "process", "workers": 0}, r"workers=0 is invalid; allowed: an integer >= 1"),
    ({"backend": "serial", "workers": 2}, r"workers=2 with backend='serial'.*allowed"),
    ({"backend": "threads"}, r"backend='threads' is unknown; allowed: serial, process, ray"),
    ({"ray_address": "localhost:6379"}, r"ray_address='localhost:6379' given with backend='serial'"),
    ({"timeout": -1.0}, r"timeout=-1.0 is invalid"),
])
def test_bad_settings_fail_fast(kwargs, pattern) -> None:
    with pytest.raises(SamplerConfigError, match=pattern) as err:
        make_sampler(TOY, **kwargs)
    assert isinstance(err.value, ValueError)


def test_bad_requests_fail_fast(toy) -> None:
    other = make_family("point-nav").sample(1, 0)
    with pytest.raises(SamplerConfigError, match="episodes_per_task=3 is not a multiple of episodes_per_trial=2"):
        toy.sample(toy.family.sample(1), CounterActor(), 3, episodes_per_trial=2)
    with pytest.raises(SamplerConfigError, match="episodes_per_task=0 is invalid"):
        toy.sample(toy.family.sample(1), CounterActor(), 0)
    with pytest.raises(SamplerConfigError, match="not a task of family"):
        toy.sample(other, CounterActor(), 1)
    with pytest.raises(SamplerConfigError, match="tasks is empty"):
        toy.sample([], CounterActor(), 1)


def test_point_nav_reference_dynamics() -> None:
    """The sampler's output for a real family agrees with the family's documented dynamics."""
    family = make_family("point-nav")
    tasks = family.sample(2, 0)
    with make_sampler("point-nav") as sampler:
        ep = sampler.sample(tasks, constant_actor(2, family.action_space, [0.05, -0.3]), 1, seed=0)
    step = torch.tensor([0.05, -0.1])  # actions are clipped to the action space before env.step
    for row, task in enumerate(tasks):
        pos = step[row] * torch.arange(1, 101, dtype=torch.float32)[:, None].expand(100, 2)
        dist = (pos.double() - torch.tensor(task.params["goal"])).norm(dim=-1)
        assert torch.allclose(ep.rewards[row, 0], -dist.float(), atol=1e-5)
    assert ep.truncated[:, 0, -1].all() and np.isclose(float(ep.actions[1, 0, 0, 0]), -0.3)
