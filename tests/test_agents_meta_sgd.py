"""Meta-SGD: the learned per-parameter step size in the inner step, its meta-gradient, and its checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metarl.agents.meta_sgd import MetaSGD, MetaSGDConfig
from metarl.api import load_agent, train
from metarl.core import MamlObjective, TaskBatch, adapt, module_params, replicate_params, step_size_key
from metarl.core.losses import surrogate_loss
from metarl.nn import GaussianMLPPolicy

TINY = ["meta_batch_size=3", "episodes_per_task=2", "hidden_sizes=[16]", "trainer.stdout=false",
        "trainer.progress=false", "trainer.tensorboard=false"]


def _batch(g: torch.Generator) -> TaskBatch:
    shape = (3, 2, 6)
    return TaskBatch(torch.randn(*shape, 4, generator=g, dtype=torch.float64),
                     torch.randn(*shape, 2, generator=g, dtype=torch.float64),
                     torch.randn(*shape, generator=g, dtype=torch.float64), torch.ones(shape, dtype=torch.float64))


def test_uniform_step_sizes_take_mamls_step() -> None:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(4, 2, (8,)).double()
    pre = _batch(torch.Generator().manual_seed(1))
    stacked = replicate_params(module_params(policy, detach=True), 3)
    sizes = {k: torch.full_like(v[0], 0.25) for k, v in stacked.items()}
    fixed = adapt(policy, stacked, pre, lr=0.25)
    learned = adapt(policy, stacked, pre, lr=sizes)
    for k in fixed:
        torch.testing.assert_close(learned[k], fixed[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="step sizes for"):
        adapt(policy, stacked, pre, lr={k: v for k, v in list(sizes.items())[1:]})


def test_step_size_gradient_is_minus_inner_gradient_times_outer_gradient() -> None:
    """d L(theta - alpha o g) / d alpha = -g o dL/dtheta', task by task: the chain rule of Meta-SGD's update."""
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(4, 2, (8,)).double()
    g = torch.Generator().manual_seed(2)
    pre, post = _batch(g), _batch(g)
    weights = module_params(policy, detach=True)
    alpha = {k: 0.05 + 0.1 * torch.rand(v.shape, generator=g, dtype=torch.float64) for k, v in weights.items()}
    meta = {**weights, **{step_size_key(k): v for k, v in alpha.items()}}
    objective = MamlObjective(policy, meta, [pre], post, inner_lr=0.1, learned_lr=True, batched="loop")
    leaves = {k: v.clone().requires_grad_() for k, v in meta.items()}
    loss, _ = objective(leaves)
    grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))

    expected = {k: torch.zeros_like(v) for k, v in weights.items()}
    for t in range(3):
        p = {k: v.clone().requires_grad_() for k, v in weights.items()}
        inner = objective.policy.distribution(p, pre.obs[t]).log_prob(pre.actions[t])
        inner_loss = -(inner * pre.advantages[t]).mean()
        g_in = dict(zip(p, torch.autograd.grad(inner_loss, list(p.values())), strict=True))
        q = {k: (weights[k] - alpha[k] * g_in[k]).requires_grad_() for k in weights}
        lp = objective.policy.distribution(q, post.obs[t]).log_prob(post.actions[t])
        outer = surrogate_loss(lp, objective.old_log_probs[t], post.advantages[t], post.mask[t]) / 3
        g_out = dict(zip(q, torch.autograd.grad(outer, list(q.values())), strict=True))
        for k in weights:
            expected[k] -= g_in[k] * g_out[k]
    for k in weights:
        torch.testing.assert_close(grads[step_size_key(k)], expected[k], rtol=1e-8, atol=1e-12)
    assert any(grads[step_size_key(k)].abs().max() > 1e-6 for k in weights)


def test_training_moves_the_step_sizes_and_resume_equals_straight(tmp_path: Path) -> None:
    straight = train("meta-sgd", "point-nav", overrides=[*TINY, "trainer.iterations=3"], seed=4, run_dir=tmp_path / "a")
    agent = straight.agent
    assert isinstance(agent, MetaSGD) and isinstance(agent.config, MetaSGDConfig)
    flat = torch.cat([a.reshape(-1) for a in agent.alpha.values()])
    assert (flat - agent.config.inner_lr).abs().max() > 1e-4  # alpha was meta-learned, not left at its start
    assert len(agent.alpha) == len(dict(agent.policy.named_parameters()))

    train("meta-sgd", "point-nav", overrides=[*TINY, "trainer.iterations=2"], seed=4, run_dir=tmp_path / "b")
    resumed = train("meta-sgd", overrides=["trainer.iterations=3"], resume=tmp_path / "b").agent
    for k, v in agent.alpha.items():
        assert torch.equal(v, resumed.alpha[k]), k
    for k, v in agent.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k]), k


def test_meta_test_adapts_with_the_learned_step_sizes(tmp_path: Path) -> None:
    train("meta-sgd", "point-nav", overrides=[*TINY, "trainer.iterations=1"], seed=0, run_dir=tmp_path / "r")
    agent = load_agent(tmp_path / "r")
    tasks = agent.family.sample(2, rng=0, split="test")
    episodes = agent.collect(tasks, agent.initial_params(2), 2, seed=0)
    adapted = agent.adapt(agent.initial_params(2), episodes)
    agent.alpha = {k: 2 * v for k, v in agent.alpha.items()}
    doubled = agent.adapt(agent.initial_params(2), episodes)
    start = agent.initial_params(2)
    agent.close()
    for k in adapted:
        torch.testing.assert_close(doubled[k] - start[k], 2 * (adapted[k] - start[k]), rtol=1e-5, atol=1e-7)

