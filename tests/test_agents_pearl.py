"""PEARL's pieces against closed forms and independent computations, and the agent's task batching and resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from metarl.agents.pearl import PEARL, PEARLConfig
from metarl.api import load_agent, train
from metarl.core.sac import actor_loss, critic_loss, polyak_update_, soft_target, temperature_loss
from metarl.nn.context_encoder import ContextEncoder, kl_to_standard_normal, product_of_gaussians
from metarl.nn.sac import TanhGaussianActor
from metarl.runs import ConfigError, TrainerConfig
from metarl.runs.config import from_dict
from metarl.sampling.replay import TaskReplay, Transitions

SMALL = ["train_tasks=4", "initial_episodes=1", "tasks_per_iteration=2", "prior_episodes=1",
         "extra_posterior_episodes=1", "gradient_steps=5", "meta_batch_size=3", "batch_size=16", "context_size=8",
         "hidden_sizes=[16]", "encoder_hidden_sizes=[16]", "trainer.stdout=false", "trainer.progress=false",
         "trainer.tensorboard=false"]


def test_encoder_posterior_ignores_the_order_of_the_context() -> None:
    torch.manual_seed(0)
    enc = ContextEncoder(5, 3, (16,)).double()
    context = torch.randn(2, 7, 5, dtype=torch.float64)
    shuffled = context[:, torch.randperm(7)]
    for a, b in zip(enc.posterior(context), enc.posterior(shuffled), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_product_of_gaussians_is_the_normalized_product_of_densities() -> None:
    """The product of N(mu_n, var_n) over n is proportional to N(mu, var): the log-density difference is
    the same constant at every point."""
    g = torch.Generator().manual_seed(1)
    mu_n = torch.randn(4, 2, generator=g, dtype=torch.float64)
    var_n = torch.rand(4, 2, generator=g, dtype=torch.float64) + 0.1
    mu, var = product_of_gaussians(mu_n, var_n)
    xs = torch.randn(6, 2, generator=g, dtype=torch.float64)
    product = Normal(mu_n, var_n.sqrt()).log_prob(xs[:, None]).sum(1)  # [6, 2]
    diff = product - Normal(mu, var.sqrt()).log_prob(xs)
    torch.testing.assert_close(diff, diff[:1].expand_as(diff), rtol=0, atol=1e-10)
    # two factors by hand, and padding carries no evidence
    m2, v2 = product_of_gaussians(mu_n[:2], var_n[:2])
    torch.testing.assert_close(v2, var_n[0] * var_n[1] / (var_n[0] + var_n[1]))
    torch.testing.assert_close(m2, (mu_n[0] * var_n[1] + mu_n[1] * var_n[0]) / (var_n[0] + var_n[1]))
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    for a, b in zip(product_of_gaussians(mu_n, var_n, mask), (m2, v2), strict=True):
        torch.testing.assert_close(a, b)
    empty_mu, empty_var = product_of_gaussians(mu_n, var_n, torch.zeros(4, dtype=torch.float64))
    assert torch.all(empty_mu == 0) and torch.all(empty_var == 1)  # no context: the prior


def test_kl_term_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(2)
    mu, var = torch.randn(3, 5, generator=g), torch.rand(3, 5, generator=g) + 0.05
    expected = kl_divergence(Normal(mu, var.sqrt()), Normal(torch.zeros(5), torch.ones(5))).sum(-1)
    torch.testing.assert_close(kl_to_standard_normal(mu, var), expected)


def test_sac_losses_match_a_computation_written_out() -> None:
    g = torch.Generator().manual_seed(3)
    r, q1n, q2n, logp_n = (torch.randn(2, 8, generator=g, dtype=torch.float64) for _ in range(4))
    done = torch.rand(2, 8, generator=g) < 0.3
    target = soft_target(r, done, q1n, q2n, logp_n, alpha=0.2, discount=0.9, reward_scale=5.0)
    for i in range(2):
        for j in range(8):
            soft_v = min(q1n[i, j].item(), q2n[i, j].item()) - 0.2 * logp_n[i, j].item()
            expected = 5.0 * r[i, j].item() + (0.0 if done[i, j] else 0.9 * soft_v)
            assert target[i, j].item() == pytest.approx(expected, abs=1e-12)
    q1, q2, logp = (torch.randn(2, 8, generator=g, dtype=torch.float64) for _ in range(3))
    mse = sum((q1[i, j] - target[i, j]) ** 2 + 0 * q2[i, j] for i in range(2) for j in range(8)) / 16
    mse2 = sum((q2[i, j] - target[i, j]) ** 2 for i in range(2) for j in range(8)) / 16
    assert critic_loss(q1, q2, target).item() == pytest.approx((mse + mse2).item(), abs=1e-12)
    act = sum(0.2 * logp[i, j] - min(q1[i, j], q2[i, j]) for i in range(2) for j in range(8)) / 16
    assert actor_loss(q1, q2, logp, 0.2).item() == pytest.approx(act.item(), abs=1e-12)
    log_alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(temperature_loss(log_alpha, logp, target_entropy=-2.0), log_alpha)
    assert grad.item() == pytest.approx(-(logp + -2.0).mean().item(), abs=1e-12)  # alpha rises when entropy is low
    a, b = [torch.ones(3)], [torch.zeros(3)]
    polyak_update_(a, b, 0.25)
    assert torch.allclose(a[0], torch.full((3,), 0.75))


def test_tanh_gaussian_log_prob_is_the_change_of_variables() -> None:
    """log pi(a) = log N(u; mean, std) - sum log(h (1 - tanh(u)^2)) for a = c + h tanh(u), written out naively."""
    torch.manual_seed(4)
    actor = TanhGaussianActor(3, [-0.1, -2.0], [0.1, 1.0], (8,)).double()
    x = torch.randn(50, 3, dtype=torch.float64)
    noise = torch.randn(50, 2, dtype=torch.float64)
    action, logp = actor.sample(x, noise=noise)
    mean, log_std = actor(x)
    u = mean + log_std.exp() * noise
    expected = Normal(mean, log_std.exp()).log_prob(u).sum(-1) - torch.log(actor.half_range * (1 - torch.tanh(u) ** 2)).sum(-1)
    torch.testing.assert_close(logp, expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(action, actor.center + actor.half_range * torch.tanh(u))
    assert torch.all(action[:, 0].abs() <= 0.1) and torch.all((action[:, 1] >= -2.0) & (action[:, 1] <= 1.0))


def _agent() -> PEARL:
    cfg = PEARLConfig(train_tasks=4, meta_batch_size=3, batch_size=16, context_size=8, hidden_sizes=(16,),
                      encoder_hidden_sizes=(16,), trainer=TrainerConfig(iterations=1))
    return PEARL(cfg, "point-nav", seed=0)


def test_auto_alpha_targets_an_entropy_the_action_box_can_hold() -> None:
    """-action_dim is SAC's target for actions in [-1, 1]; in point-nav's [-0.1, 0.1]^2 box the same target is
    -2 + 2 log 0.1, below the box's largest entropy log 0.04 (uniform), so the temperature can settle."""
    agent = _agent()
    assert agent.target_entropy == pytest.approx(-2.0 + 2.0 * math.log(0.1), abs=1e-6)
    assert agent.target_entropy < math.log(0.2 * 0.2)


def test_normalized_actions_act_in_the_env_units_and_learn_in_the_unit_box() -> None:
    """With normalized_actions the actor works in [-1, 1]^2 and the map to point-nav's [-0.1, 0.1]^2 box
    happens on the way to the env: the env gets the same action, with the same log-density in its units,
    as an actor that squashes into the box itself with the same weights; the networks see the buffers'
    env-unit actions divided by the half-range, and the temperature aims at SAC's own -action_dim."""
    cfg = PEARLConfig(train_tasks=4, meta_batch_size=3, batch_size=16, context_size=8, hidden_sizes=(16,),
                      encoder_hidden_sizes=(16,), normalized_actions=True, trainer=TrainerConfig(iterations=1))
    agent = PEARL(cfg, "point-nav", seed=0)
    assert agent.target_entropy == pytest.approx(-2.0)
    in_box = TanhGaussianActor(2 + cfg.latent_dim, [-0.1, -0.1], [0.1, 0.1], (16,))
    in_box.net.load_state_dict(agent.actor.net.state_dict())
    g = torch.Generator().manual_seed(3)
    obs, z = torch.randn(3, 4, 2, generator=g), torch.randn(3, cfg.latent_dim, generator=g)
    out = agent.latent_actor(z).act(obs, None, torch.ones(3, 4, dtype=torch.bool), torch.Generator().manual_seed(1))
    x = torch.cat([obs, z[:, None, :].expand(3, 4, -1)], dim=-1)
    expected, expected_logp = in_box.sample(x, noise=torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(out.actions, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out.log_probs, expected_logp, rtol=1e-5, atol=1e-5)
    assert torch.all(out.actions.abs() <= 0.1) and float(out.actions.abs().max()) > 0.01
    env_actions = torch.rand(5, 2, generator=g) * 0.2 - 0.1
    t = Transitions(torch.randn(5, 2, generator=g), env_actions, torch.randn(5, generator=g),
                    torch.randn(5, 2, generator=g), torch.zeros(5, dtype=torch.bool))
    torch.testing.assert_close(agent.context_of(t)[:, 2:4], env_actions / 0.1)
    agent.close()


def test_task_batched_losses_equal_the_per_task_loop() -> None:
    """One batched computation over [tasks * batch] rows = each task's own losses combined as the authors'
    code combines them (critic and actor: the mean over tasks; KL: the sum), gradients of every network
    included (to 1e-5), on a fixed batch with fixed draws."""
    agent = _agent()
    g = torch.Generator().manual_seed(5)
    T, B, N, A = 3, 16, 8, 2
    context = torch.randn(T, N, 2 + A + 1, generator=g)
    batch = Transitions(torch.randn(T, B, 2, generator=g), torch.rand(T, B, A, generator=g) * 0.2 - 0.1,
                        torch.randn(T, B, generator=g), torch.randn(T, B, 2, generator=g),
                        torch.rand(T, B, generator=g) < 0.1)
    noise = {"z": torch.randn(T, agent.config.latent_dim, generator=g),
             "next_action": torch.randn(T, B, A, generator=g), "action": torch.randn(T, B, A, generator=g)}
    critic_params = [*agent.encoder.parameters(), *agent.q1.parameters(), *agent.q2.parameters()]
    actor_params = list(agent.actor.parameters())

    def run(rows: slice) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        out = agent.losses(context[rows], Transitions(*(x[rows] for x in batch)), {k: v[rows] for k, v in noise.items()})
        critic = [*torch.autograd.grad(out["critic_loss"], critic_params, retain_graph=True, allow_unused=True),
                  *torch.autograd.grad(out["actor_loss"], actor_params, retain_graph=True)]
        kl = torch.autograd.grad(out["kl"], critic_params, allow_unused=True)
        zero = [torch.zeros_like(p) for p in critic_params]
        return out, critic, [z if g_ is None else g_ for g_, z in zip(kl, zero, strict=True)]

    batched, grads, kl_grads = run(slice(None))
    loop = [run(slice(i, i + 1)) for i in range(T)]
    for key in ("critic_loss", "actor_loss", "log_prob"):  # means over tasks
        torch.testing.assert_close(batched[key], torch.stack([o[key] for o, _, _ in loop]).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched["kl"], torch.stack([o["kl"] for o, _, _ in loop]).sum(), rtol=1e-5, atol=1e-6)
    w = agent.config.kl_weight
    torch.testing.assert_close(batched["encoder_loss"], batched["critic_loss"] + w * batched["kl"])
    for k, grad in enumerate(grads):
        torch.testing.assert_close(grad, torch.stack([gr[k] for _, gr, _ in loop]).mean(0), rtol=1e-5, atol=1e-6)
    for k, grad in enumerate(kl_grads):
        torch.testing.assert_close(grad, torch.stack([gr[k] for _, _, gr in loop]).sum(0), rtol=1e-5, atol=1e-6)
    n_enc = len(list(agent.encoder.parameters()))
    assert any(float(gr.abs().max()) > 0 for gr in grads[:n_enc])  # the critic's gradient reaches the encoder
    agent.close()


def test_training_fills_per_task_buffers_and_two_plus_two_equals_four(tmp_path: Path) -> None:
    straight = train("pearl", "point-nav", overrides=[*SMALL, "trainer.iterations=4"], seed=1, run_dir=tmp_path / "a")
    agent = straight.agent
    assert isinstance(agent, PEARL)
    assert all(agent.replay.size[i] > 0 for i in range(4)) and len(agent.replay) > len(agent.context)
    train("pearl", "point-nav", overrides=[*SMALL, "trainer.iterations=2"], seed=1, run_dir=tmp_path / "b")
    resumed = train("pearl", overrides=["trainer.iterations=4"], resume=tmp_path / "b").agent
    for name in ("encoder", "actor", "q1", "q2_target"):
        for k, v in getattr(agent, name).state_dict().items():
            assert torch.equal(v, getattr(resumed, name).state_dict()[k]), (name, k)
    assert resumed.replay.size == agent.replay.size


def test_resume_with_a_new_lr_updates_every_optimizer(tmp_path: Path) -> None:
    train("pearl", "point-nav", overrides=[*SMALL, "trainer.iterations=1"], seed=1, run_dir=tmp_path / "r")
    resumed = train("pearl", overrides=["trainer.iterations=2", "lr=0.0001"], resume=tmp_path / "r").agent
    assert isinstance(resumed, PEARL)
    for name in ("critic_optimizer", "actor_optimizer", "alpha_optimizer"):
        optimizer = getattr(resumed, name)
        assert [g["lr"] for g in optimizer.param_groups] == [0.0001], name
    for name in ("critic_optimizer", "actor_optimizer"):  # (the temperature may be fixed: no moments)
        assert getattr(resumed, name).state_dict()["state"], name  # the moments came back from the checkpoint


def test_meta_test_starts_from_the_prior_and_sharpens_with_context(tmp_path: Path) -> None:
    train("pearl", "point-nav", overrides=[*SMALL, "trainer.iterations=1"], seed=0, run_dir=tmp_path / "r")
    agent = load_agent(tmp_path / "r")
    assert isinstance(agent, PEARL)
    session = agent.adaptation_session(3, seed=0)
    tasks = agent.family.sample(3, rng=0, split="test")
    episodes = agent.sampler.sample(tasks, session.actor, 2, seed=0)
    prior_z = session.z.clone()
    session.adapt(episodes)
    mu, var = session.posterior_moments()
    assert torch.all(var < 1.0)  # evidence shrinks the variance below the prior's
    assert not torch.equal(prior_z, session.z)
    agent.close()


def test_replay_ring_keeps_the_newest_and_samples_by_seed() -> None:
    buf = TaskReplay(2, capacity=5)

    def steps(lo: int, n: int) -> Transitions:
        v = torch.arange(lo, lo + n, dtype=torch.float32)
        return Transitions(v[:, None], v[:, None], v, v[:, None], torch.zeros(n, dtype=torch.bool))

    buf.add(0, steps(0, 3))
    buf.add(0, steps(3, 4))  # 7 in, capacity 5: 2..6 kept
    assert buf.size == [5, 0] and sorted(buf.data[0].rewards.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    buf.add(1, steps(100, 2))
    a = buf.sample([0, 1], 50, torch.Generator().manual_seed(0))
    b = buf.sample([0, 1], 50, torch.Generator().manual_seed(0))
    assert tuple(a.rewards.shape) == (2, 50) and torch.equal(a.rewards, b.rewards)
    assert set(a.rewards[1].tolist()) == {100.0, 101.0} and set(a.rewards[0].tolist()) <= {2.0, 3.0, 4.0, 5.0, 6.0}
    restored = TaskReplay(2, capacity=5)
    restored.load_state_dict(buf.state_dict())
    assert torch.equal(restored.sample([0, 1], 50, torch.Generator().manual_seed(0)).rewards, a.rewards)
    with pytest.raises(ValueError, match="empty"):
        TaskReplay(3, 5).sample([2], 4, torch.Generator())
    assert math.isfinite(float(a.obs.sum()))


def test_next_obs_in_context_appends_s_prime_and_reaches_the_meta_test_posterior() -> None:
    """use_next_obs_in_context: each context row is (s, a, r, s'), the encoder is sized for it, and the
    meta-test session feeds the same rows (so its posterior moves when only s' differs)."""
    cfg = PEARLConfig(train_tasks=4, meta_batch_size=3, batch_size=16, context_size=8, hidden_sizes=(16,),
                      encoder_hidden_sizes=(16,), use_next_obs_in_context=True, trainer=TrainerConfig(iterations=1))
    agent = PEARL(cfg, "point-nav", seed=0)
    g = torch.Generator().manual_seed(2)
    t = Transitions(torch.randn(5, 2, generator=g), torch.rand(5, 2, generator=g) * 0.2 - 0.1,
                    torch.randn(5, generator=g), torch.randn(5, 2, generator=g), torch.zeros(5, dtype=torch.bool))
    row = agent.context_of(t)
    assert row.shape == (5, 2 + 2 + 1 + 2)
    torch.testing.assert_close(row[:, -2:], t.next_obs)
    torch.testing.assert_close(row[:, :5], torch.cat([t.obs, t.actions, t.rewards[:, None]], dim=-1))
    mu_a, _ = agent.encoder.posterior(row[None])
    mu_b, _ = agent.encoder.posterior(agent.context_of(t._replace(next_obs=t.next_obs + 1.0))[None])
    assert not torch.allclose(mu_a, mu_b)
    agent.close()


def test_latent_per_episode_draws_one_z_per_episode() -> None:
    """latent_per_episode='episode' collects one episode per z (the authors' sampler): the same number of
    episodes and steps go to the buffers as with one draw per call, and the episodes differ from the
    per-call schedule's (other z per episode), while 'call' stays the committed runs' schedule."""
    def gathered(schedule: str) -> tuple[int, object, PEARL]:
        cfg = PEARLConfig(train_tasks=4, meta_batch_size=3, batch_size=16, context_size=8, hidden_sizes=(16,),
                          encoder_hidden_sizes=(16,), latent_per_episode=schedule, trainer=TrainerConfig(iterations=1))
        agent = PEARL(cfg, "point-nav", seed=0)
        steps, eps = agent._gather([0, 2], 3, prior=True, to_context=True)
        return steps, eps, agent

    steps_e, eps_e, agent_e = gathered("episode")
    steps_c, eps_c, agent_c = gathered("call")
    assert eps_e.n_episodes == eps_c.n_episodes == 3 and eps_e.n_tasks == 2
    assert steps_e == int(eps_e.lengths.sum()) == agent_e.replay.size[0] + agent_e.replay.size[2]
    assert agent_e.context.size == agent_e.replay.size
    assert not torch.equal(eps_e.actions, eps_c.actions)
    with pytest.raises(ConfigError, match="latent_per_episode.*'trajectory'.*choose one of"):
        from_dict(PEARLConfig, {"latent_per_episode": "trajectory"})
    agent_e.close()
    agent_c.close()


def test_context_episodes_trains_on_whole_episodes_as_the_meta_test_sees_them(tmp_path: Path) -> None:
    """context_episodes=k: a gradient step's context is a task's first j whole episodes (j in 1..k), the
    posterior collection conditions on every episode so far, padding changes nothing, the episode ends
    survive a checkpoint (2 + 2 = 4), and k above the episodes that reach the encoder buffer is an error."""
    over = [*SMALL, "posterior_episodes=1", "context_episodes=2"]
    run = train("pearl", "point-nav", overrides=[*over, "trainer.iterations=4"], seed=2, run_dir=tmp_path / "a")
    agent = run.agent
    assert isinstance(agent, PEARL)
    for i in range(4):  # the ends are cumulative episode lengths that account for the whole buffer
        ends = agent.context_ends[i]
        assert ends and ends[-1] == agent.context.size[i] and all(b > a for a, b in zip([0, *ends], ends))
    ids = [0, 1, 2, 3]
    drawn = set()
    for _ in range(20):
        context, mask = agent.episode_context(ids, draw=True)
        for k, i in enumerate(ids):
            n = int(mask[k].sum())
            assert n in agent.context_ends[i][:2]  # one or two whole leading episodes, never more
            assert torch.all(mask[k, :n] == 1) and torch.all(context[k, n:] == 0)
            drawn.add(agent.context_ends[i].index(n))
    assert drawn == {0, 1}
    full, full_mask = agent.episode_context(ids, draw=False)
    assert [int(m.sum()) for m in full_mask] == [agent.context_ends[i][-1] for i in ids]
    # padding is no evidence: the masked posterior of a padded context equals the unpadded one
    n0 = int(full_mask[0].sum())
    mu_pad, var_pad = agent.encoder.posterior(full[:1], full_mask[:1])
    mu, var = agent.encoder.posterior(full[:1, :n0])
    torch.testing.assert_close(mu_pad, mu)
    torch.testing.assert_close(var_pad, var)

    train("pearl", "point-nav", overrides=[*over, "trainer.iterations=2"], seed=2, run_dir=tmp_path / "b")
    resumed = train("pearl", overrides=["trainer.iterations=4"], resume=tmp_path / "b").agent
    assert resumed.context_ends == agent.context_ends
    for k, v in agent.encoder.state_dict().items():
        assert torch.equal(v, resumed.encoder.state_dict()[k]), k
    with pytest.raises(ConfigError, match="context_episodes=3.*allowed: context_episodes <="):
        PEARL(from_dict(PEARLConfig, {"prior_episodes": 1, "posterior_episodes": 1, "context_episodes": 3,
                                      "train_tasks": 4, "meta_batch_size": 3}), "point-nav", seed=0)
