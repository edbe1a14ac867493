"""MLP policies: functional use, one vmapped call for all tasks, value functions."""

from __future__ import annotations

import pytest
import torch

from metarl.core import module_params, replicate_params, stack_params
from metarl.nn import CategoricalMLPPolicy, GaussianMLPPolicy, MLPValueFunction


def _per_task_params(policy: torch.nn.Module, tasks: int) -> dict[str, torch.Tensor]:
    base = module_params(policy, detach=True)
    return stack_params([{k: v + 0.1 * (i + 1) * torch.randn_like(v) for k, v in base.items()} for i in range(tasks)])


@pytest.mark.parametrize("discrete", [False, True])
def test_stacked_act_equals_per_task_calls(discrete: bool) -> None:
    torch.manual_seed(0)
    policy = CategoricalMLPPolicy(4, 3) if discrete else GaussianMLPPolicy(4, 2)
    tasks, batch = 3, 7
    stacked = _per_task_params(policy, tasks)
    obs = torch.randn(tasks, batch, 4)
    actions, log_probs = policy.act(obs, stacked, generator=torch.Generator().manual_seed(1))
    assert actions.shape == ((tasks, batch) if discrete else (tasks, batch, 2))
    assert log_probs.shape == (tasks, batch)
    dist = policy.distribution_stacked(stacked, obs)
    for i in range(tasks):
        own = policy.distribution({k: v[i] for k, v in stacked.items()}, obs[i])
        torch.testing.assert_close(own.log_prob(actions[i]), log_probs[i])
        torch.testing.assert_close(dist.log_prob(actions)[i], log_probs[i])
    # Reproducible with a generator, different without the same seed.
    again, _ = policy.act(obs, stacked, generator=torch.Generator().manual_seed(1))
    assert torch.equal(actions, again)


def test_functional_call_with_own_params_matches_module() -> None:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, init_std=0.5)
    obs = torch.randn(5, 3)
    a = torch.randn(5, 2)
    torch.testing.assert_close(policy.log_prob(module_params(policy), obs, actions=a), policy.log_prob(None, obs, actions=a))
    std = policy.distribution(None, obs).base_dist.scale
    torch.testing.assert_close(std, torch.full((5, 2), 0.5))  # state-independent


def test_deterministic_actions_and_shared_params() -> None:
    torch.manual_seed(0)
    policy = CategoricalMLPPolicy(3, 4)
    obs = torch.randn(2, 6, 3)
    greedy, _ = policy.act(obs, deterministic=True)
    torch.testing.assert_close(greedy, policy(obs)[0].argmax(-1))
    shared, _ = policy.act(obs, replicate_params(module_params(policy, detach=True), 2), deterministic=True)
    assert torch.equal(greedy, shared)


def test_gaussian_sample_statistics() -> None:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 1, init_std=2.0)
    obs = torch.zeros(1, 20000, 2)
    actions, _ = policy.act(obs, generator=torch.Generator().manual_seed(0))
    mean = policy(obs)[0]
    assert (actions - mean).std().item() == pytest.approx(2.0, rel=0.05)


def test_mlp_value_function_shapes_and_vmap() -> None:
    torch.manual_seed(0)
    vf = MLPValueFunction(3, (16,))
    obs = torch.randn(2, 4, 5, 3)
    assert vf(obs).shape == (2, 4, 5)
    stacked = replicate_params(module_params(vf, detach=True), 2)
    out = torch.vmap(lambda p, o: torch.func.functional_call(vf, p, (o,)))(stacked, obs)
    torch.testing.assert_close(out, vf(obs))
