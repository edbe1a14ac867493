"""Tensor envs against their gymnasium twins: deterministic parts exactly, stochastic parts in distribution.

Deterministic parts (point-nav dynamics, clipping, reward and termination; a bandit pull's and a
tabular step's outcome given the step's random draws) must agree bit for bit with the gymnasium
env on the same inputs. The draws are checked with enough samples that a wrong probability fails:
each bound below is about 5 standard errors.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from metarl.envs import make_family
from metarl.envs.tabular import mdp_tables
from metarl.envs.tensor_env import categorical_from_uniform

CPU = torch.device("cpu")


@pytest.mark.parametrize("spec", ["point-nav", "point-nav?goal_test=box"])
def test_point_nav_steps_exactly_like_the_gymnasium_env(spec: str) -> None:
    family = make_family(spec)
    tasks = family.sample(40, rng=3)
    envs = [family.make_env(t) for t in tasks]
    tensor = family.make_tensor_env(tasks, CPU)
    g = torch.Generator().manual_seed(0)
    obs = tensor.reset(torch.ones(40, dtype=torch.bool), g)
    ref = np.stack([e.reset(seed=0)[0] for e in envs])
    assert np.array_equal(obs.numpy(), ref)
    goals = torch.tensor([t.params["goal"] for t in tasks])
    rng = np.random.default_rng(1)
    ended = np.zeros(40, bool)
    for step in range(100):
        # heading for the goal plus noise, and some actions outside the bounds (clipping is tested too)
        toward = (goals - obs).numpy() * rng.uniform(0.2, 1.5, (40, 1))
        actions = toward + rng.normal(0, 0.03, (40, 2)) * (step % 3 == 0)
        actions[1::2] = rng.normal(0, 0.12, (20, 2))  # half the rows wander (and rarely reach the goal)
        actions = actions.astype(np.float32)
        actions = np.clip(actions, -0.1, 0.1) if step % 2 else actions
        out = tensor.step(torch.from_numpy(actions), g)
        for i, env in enumerate(envs):
            if ended[i]:
                continue
            o, r, term, _, _ = env.step(actions[i])
            assert np.array_equal(out.obs[i].numpy(), o), (i, step)
            assert out.reward[i].item() == np.float32(r), (i, step)
            assert bool(out.terminated[i]) == term, (i, step)
            ended[i] = term
        obs = out.obs
    assert 5 <= ended.sum() < 40  # the check covered episodes that reached their goal and ones that did not


def test_bandit_outcome_matches_the_gymnasium_pull_given_its_uniform() -> None:
    family = make_family("bandit?k=5&n=10")
    tasks = family.sample(30, rng=0)
    tensor = family.make_tensor_env(tasks, CPU)
    envs = [family.make_env(t) for t in tasks]
    rng = np.random.default_rng(2)
    for i, env in enumerate(envs):
        env.reset(seed=i)
        for _ in range(20):
            arm = int(rng.integers(5))
            u = copy.deepcopy(env.np_random).random()  # the draw BanditEnv.step makes
            _, reward, *_ = env.step(arm)
            actions = torch.full((30,), arm)
            assert tensor.outcome(actions, torch.full((30,), u, dtype=torch.float64))[i].item() == reward


def test_bandit_arms_pay_their_probabilities() -> None:
    family = make_family("bandit?k=5&n=10")
    tasks = family.sample(4, rng=1)
    n = 50_000
    tensor = family.make_tensor_env([t for t in tasks for _ in range(n // 4)], CPU)
    probs = torch.tensor([t.params["probs"] for t in tasks], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for arm in range(5):
        rewards = tensor.step(torch.full((n,), arm), g).reward.view(4, n // 4).double()
        p = probs[:, arm]
        bound = 5 * (p * (1 - p) / (n // 4)).sqrt() + 1e-3
        assert torch.all((rewards.mean(1) - p).abs() < bound), arm


def test_tabular_outcome_matches_the_gymnasium_step_given_its_draws() -> None:
    family = make_family("tabular-mdp?n=10")
    tasks = family.sample(8, rng=0)
    tensor = family.make_tensor_env(tasks, CPU)
    envs = [family.make_env(t) for t in tasks]
    for i, env in enumerate(envs):
        env.reset(seed=10 + i)
        rng = np.random.default_rng(i)
        for _ in range(50):
            s, a = env._s, int(rng.integers(family.actions))
            twin = copy.deepcopy(env.np_random)
            noise, u = twin.normal(), twin.random()  # TabularMDPEnv.step's draws, in its order
            obs, reward, *_ = env.step(a)
            state = torch.full((8,), s)
            r, nxt = tensor.outcome(state, torch.full((8,), a), torch.full((8,), noise, dtype=torch.float64),
                                    torch.full((8,), u, dtype=torch.float64))
            assert r[i].item() == np.float32(reward)
            assert nxt[i].item() == env._s == int(np.argmax(obs))


def test_tabular_transitions_rewards_and_starts_have_the_drawn_distributions() -> None:
    family = make_family("tabular-mdp?n=10")
    task = family.sample(1, rng=5)[0]
    transitions, mean_rewards = mdp_tables(task.params["mdp_seed"], family.states, family.actions)
    n = 40_000
    tensor = family.make_tensor_env([task] * n, CPU)
    g = torch.Generator().manual_seed(1)
    starts = tensor.reset(torch.ones(n, dtype=torch.bool), g).argmax(-1)
    freq = torch.bincount(starts, minlength=family.states).double() / n
    assert torch.all((freq - 0.1).abs() < 5 * (0.1 * 0.9 / n) ** 0.5)
    for s, a in [(0, 0), (3, 2), (9, 4)]:
        tensor.state = torch.full((n,), s)
        out = tensor.step(torch.full((n,), a), g)
        freq = torch.bincount(out.obs.argmax(-1), minlength=family.states).double() / n
        p = torch.as_tensor(transitions[s, a])
        assert torch.all((freq - p).abs() < 5 * (p * (1 - p) / n).sqrt() + 1e-3), (s, a)
        rewards = out.reward.double()
        assert abs(rewards.mean().item() - mean_rewards[s, a]) < 5 / n**0.5
        assert abs(rewards.std().item() - 1.0) < 0.03


def test_inverse_cdf_is_numpys_choice_rule() -> None:
    """``Generator.choice(K, p=p)`` draws one uniform and maps it as :func:`categorical_from_uniform` does."""
    probs = np.random.default_rng(0).dirichlet(np.ones(7), size=300)
    for seed, p in enumerate(probs):
        g = np.random.default_rng(seed)
        state = copy.deepcopy(g.bit_generator.state)
        u = g.random()
        g.bit_generator.state = state
        expected = g.choice(len(p), p=p)
        got = categorical_from_uniform(torch.as_tensor(p)[None], torch.tensor([u], dtype=torch.float64))
        assert got.item() == expected, seed


def test_a_family_without_a_tensor_env_says_so() -> None:
    family = make_family("halfcheetah-vel")
    assert not family.has_tensor_env and make_family("point-nav").has_tensor_env
    with pytest.raises(NotImplementedError, match="no tensor env"):
        family.make_tensor_env(family.sample(1, rng=0), CPU)


def test_the_plug_in_example_rolls_out_identically_on_both_paths() -> None:
    """``examples/my_tensor_tasks.py``: a plug-in's tensor env against its own gymnasium env, through the sampler."""
    from examples.my_tensor_tasks import make_family as make_walk
    from metarl.agents.base import PolicyActor
    from metarl.nn import GaussianMLPPolicy
    from metarl.sampling import make_sampler
    from metarl.sampling.tensor import TensorSampler

    family = make_walk(target_range=2.0)
    torch.manual_seed(0)
    actor = PolicyActor(GaussianMLPPolicy(1, 1, (8,)), deterministic=True)
    tasks = family.sample(6, rng=0)
    with make_sampler(family, "serial") as serial, make_sampler(family, "auto") as auto:
        assert isinstance(auto, TensorSampler)
        assert auto.sample(tasks, actor, 3, seed=0).equal(serial.sample(tasks, actor, 3, seed=0))
