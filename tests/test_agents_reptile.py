"""Reptile-PPO and its joint multi-task PPO variant: batched inner PPO == per-task PPO, the exact outer step,
CLI train/checkpoint/resume, and reptile-ppo runs recorded with ``meta_update: joint``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metarl.agents import agent_class
from metarl.agents.reptile_ppo import (
    InnerPPO,
    JointPPO,
    PPOBatch,
    ReptilePPO,
    ReptilePPOConfig,
    annealed,
    reptile_step,
)
from metarl.api import load_agent, train
from metarl.core import adam_init
from metarl.nn import GaussianMLPPolicy, MLPValueFunction
from metarl.runs import ConfigError, TrainerConfig, load_checkpoint

TASKS, STEPS, OBS, ACT = 3, 40, 3, 2


def _modules() -> tuple[GaussianMLPPolicy, MLPValueFunction]:
    torch.manual_seed(0)
    return (GaussianMLPPolicy(OBS, ACT, (8,), init_std=0.7).double(), MLPValueFunction(OBS, (8,)).double())


def _problem() -> tuple[dict[str, torch.Tensor], PPOBatch]:
    """Three tasks with their own starting weights and data; task 2's returns are large so its
    gradient is clipped while the others are not (a global clip would then differ)."""
    policy, value_fn = _modules()
    g = torch.Generator().manual_seed(1)
    base = {**{f"policy.{k}": v.detach() for k, v in policy.named_parameters()},
            **{f"value.{k}": v.detach() for k, v in value_fn.named_parameters()}}
    params = {k: v + 0.1 * torch.randn(TASKS, *v.shape, generator=g, dtype=v.dtype) for k, v in base.items()}
    obs = torch.randn(TASKS, STEPS, OBS, generator=g, dtype=torch.float64)
    actions = torch.randn(TASKS, STEPS, ACT, generator=g, dtype=torch.float64)
    old = -2.0 + 0.3 * torch.randn(TASKS, STEPS, generator=g, dtype=torch.float64)
    adv = torch.randn(TASKS, STEPS, generator=g, dtype=torch.float64)
    returns = torch.randn(TASKS, STEPS, generator=g, dtype=torch.float64) * torch.tensor([[1.0], [0.1], [100.0]])
    mask = torch.ones(TASKS, STEPS, dtype=torch.float64)
    mask[0, 30:] = 0.0  # padding, as after an early termination
    return params, PPOBatch(obs, actions, old, adv, returns, mask)


def _reference_ppo(task: int, params: dict[str, torch.Tensor], batch: PPOBatch, cfg: ReptilePPOConfig,
                   seed: int) -> dict[str, torch.Tensor]:
    """One task's PPO written plainly: modules, torch.optim.Adam, clip_grad_norm_."""
    policy, value_fn = _modules()
    net = torch.nn.ModuleDict({"policy": policy, "value": value_fn})
    with torch.no_grad():
        for k, p in net.named_parameters():
            p.copy_(params[k][task])
    opt = torch.optim.Adam(net.parameters(), lr=cfg.inner_lr)
    g = torch.Generator().manual_seed(seed)
    obs, actions, old, adv, returns, mask = (x[task] for x in batch)
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(STEPS, generator=g)
        for start in range(0, STEPS, cfg.minibatch_size):
            i = order[start:start + cfg.minibatch_size]
            m, a = mask[i], adv[i]
            n = m.sum()
            mean = (a * m).sum() / n
            a = (a - mean) / ((((a - mean) * m) ** 2).sum() / n).sqrt().add(1e-8) * m
            mu, log_std = policy(obs[i])
            logp = torch.distributions.Normal(mu, log_std.exp()).log_prob(actions[i]).sum(-1)
            ratio = (logp - old[i]).exp()
            surr = torch.minimum(ratio * a, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a)
            loss = -(surr * m).sum() / n + cfg.vf_coef * (((value_fn(obs[i]) - returns[i]) ** 2) * m).sum() / n
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            opt.step()
    return {k: p.detach() for k, p in net.named_parameters()}


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_batched_inner_ppo_equals_each_task_alone(mode: str) -> None:
    cfg = ReptilePPOConfig(ppo_epochs=3, minibatch_size=16, inner_lr=3e-3, max_grad_norm=0.5, batched=mode)
    params, batch = _problem()
    inner = InnerPPO(*_modules(), cfg)
    new, _, stats = inner.update(params, adam_init(params), batch, torch.Generator().manual_seed(7))
    assert stats["grad_norm"] > cfg.max_grad_norm  # clipping was active (for task 2)
    for t in range(TASKS):
        ref = _reference_ppo(t, params, batch, cfg, seed=7)
        for k, v in ref.items():
            torch.testing.assert_close(new[k][t], v, atol=1e-5, rtol=0, msg=f"task {t} {k}")
        moved = max(float((v - params[k][t]).abs().max()) for k, v in ref.items())
        assert moved > 1e-3  # the comparison is not between two unchanged copies


def _tiny(*extra: str) -> list[str]:
    return ["meta_batch_size=2", "episodes_per_update=2", "inner_updates=2", "ppo_epochs=2", "minibatch_size=64",
            "hidden_sizes=[8]", "trainer.stdout=false", "trainer.progress=false", "trainer.tensorboard=false", *extra]


def test_outer_step_moves_theta_by_eps_times_mean_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ReptilePPOConfig(meta_batch_size=4, outer_lr=0.6, outer_lr_final=0.1, anneal_iterations=10,
                           hidden_sizes=(8,), trainer=TrainerConfig(iterations=10))
    agent = ReptilePPO(cfg, "point-nav", seed=0)
    theta = agent.meta_params()
    g = torch.Generator().manual_seed(3)
    adapted = {k: v + torch.randn(4, *v.shape, generator=g) for k, v in theta.items()}
    monkeypatch.setattr(agent, "inner_loop", lambda *a, **k: (adapted, None, {}, 0))
    metrics = agent.train_iteration(4)
    eps = 0.6 + (0.1 - 0.6) * 4 / 10
    assert metrics["outer_lr"] == pytest.approx(eps)
    for k, v in agent.meta_params().items():
        expected = theta[k] + eps * (adapted[k].mean(0) - theta[k])
        torch.testing.assert_close(v, expected, atol=1e-6, rtol=0, msg=k)
        assert not torch.allclose(v, theta[k])
    assert annealed(0.6, None, 9, 10) == 0.6 and annealed(0.6, 0.1, 20, 10) == pytest.approx(0.1)
    one = {"w": torch.tensor([1.0, 2.0])}
    assert torch.equal(reptile_step(one, {"w": torch.tensor([[3.0, 2.0], [5.0, 6.0]])}, 0.5)["w"],
                       torch.tensor([2.5, 3.0]))
    agent.close()


def _net(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).state["agent"]["net"]


def test_cli_trains_checkpoints_and_resume_equals_straight(tmp_path: Path) -> None:
    sets = _tiny("outer_lr_final=0.1", "anneal_iterations=4")
    straight = train("reptile-ppo", "point-nav", overrides=[*sets, "trainer.iterations=4"], seed=5,
                     run_dir=tmp_path / "straight")
    straight.agent.close()

    def cli(*args: str) -> None:
        out = subprocess.run([sys.executable, "-m", "metarl.cli", "train", *args], capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stderr

    flags = [f for s in sets for f in ("--set", s)]
    cli("reptile-ppo", "--env", "point-nav", "--seed", "5", "--iterations", "2", "--run-dir", "split", *flags)
    assert load_checkpoint(tmp_path / "split").iteration == 2
    header = (tmp_path / "split/progress.csv").read_text().splitlines()[0]
    assert "train/inner_1_return" in header and "time/env_steps" in header
    cli("--resume", "split", "--iterations", "4")
    a, b = _net(tmp_path / "straight"), _net(tmp_path / "split")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_joint_mode_resumes_its_outer_adam_and_meta_test_rounds(tmp_path: Path) -> None:
    sets = _tiny()
    straight = train("joint-ppo", "point-nav", overrides=[*sets, "trainer.iterations=3"], seed=2, run_dir=tmp_path / "a")
    train("joint-ppo", "point-nav", overrides=[*sets, "trainer.iterations=1"], seed=2, run_dir=tmp_path / "b").agent.close()
    train("joint-ppo", overrides=["trainer.iterations=3"], resume=tmp_path / "b").agent.close()
    steps = load_checkpoint(tmp_path / "b").state["agent"]["outer_opt"]["step"]
    assert steps == 3 * 2 * 2 * 4  # iterations x updates x epochs x minibatches
    for k, v in _net(tmp_path / "a").items():
        assert torch.equal(v, _net(tmp_path / "b")[k]), k
    agent = load_agent(tmp_path / "b")
    tasks = agent.family.sample(2, rng=0, split="test")
    rounds = agent.meta_test(tasks, rounds=2, episodes_per_round=2, seed=0)
    again = agent.meta_test(tasks, rounds=2, episodes_per_round=2, seed=0)
    assert len(rounds) == 3 and rounds[0].returns.shape == (2, 2)
    assert all(x.equal(y) for x, y in zip(rounds, again, strict=True))  # meta-test is seeded, not from training
    assert not torch.equal(rounds[0].actions, rounds[2].actions)
    straight.agent.close()
    agent.close()


def test_a_reptile_ppo_run_recorded_with_meta_update_joint_is_joint_ppo_under_its_recorded_name(tmp_path: Path) -> None:
    """Runs from before joint-ppo say ``agent: reptile-ppo`` and ``meta_update: joint``: they train, resume
    and load as the JointPPO they are, bit for bit a joint-ppo run, and keep writing reptile-ppo checkpoints."""
    assert agent_class("joint-ppo") is JointPPO and issubclass(JointPPO, ReptilePPO)
    sets = _tiny()
    new = train("joint-ppo", "point-nav", overrides=[*sets, "trainer.iterations=2"], seed=2, run_dir=tmp_path / "new")
    new.agent.close()
    old = train("reptile-ppo", "point-nav", overrides=[*sets, "meta_update=joint", "trainer.iterations=1"], seed=2,
                run_dir=tmp_path / "old")
    old.agent.close()
    assert type(old.agent) is JointPPO and old.agent.name == "reptile-ppo"
    train("reptile-ppo", overrides=["trainer.iterations=2"], resume=tmp_path / "old").agent.close()
    assert load_checkpoint(tmp_path / "old").agent == "reptile-ppo" and load_checkpoint(tmp_path / "new").agent == "joint-ppo"
    a, b = load_checkpoint(tmp_path / "new").state["agent"], load_checkpoint(tmp_path / "old").state["agent"]
    assert a["outer_opt"]["step"] == b["outer_opt"]["step"] == 2 * 2 * 2 * 4
    for k, v in a["net"].items():
        assert torch.equal(v, b["net"][k]), k
    agent = load_agent(tmp_path / "old")
    assert type(agent) is JointPPO and agent.name == "reptile-ppo" and agent.outer_opt is not None
    agent.close()
    with pytest.raises(ConfigError, match="meta_update"):
        train("joint-ppo", "point-nav", overrides=[*sets, "meta_update=reptile"], run_dir=tmp_path / "bad")
    plain = ReptilePPO(ReptilePPOConfig(hidden_sizes=(8,)), "point-nav", seed=0)
    assert type(plain) is ReptilePPO and plain.name == "reptile-ppo"
    plain.close()


def test_init_from_starts_theta_at_the_source_run_and_rejects_a_mismatch(tmp_path: Path) -> None:
    """Pretrain jointly, then meta-train: the Reptile run starts exactly where the joint run ended."""
    joint = train("joint-ppo", "point-nav", overrides=[*_tiny(), "trainer.iterations=1"], seed=3,
                  run_dir=tmp_path / "joint")
    joint.agent.close()
    cfg = ReptilePPOConfig(hidden_sizes=(8,), init_from=str(tmp_path / "joint"))
    agent = ReptilePPO(cfg, "point-nav", seed=0)
    source = _net(tmp_path / "joint")
    assert all(torch.equal(v, source[k]) for k, v in agent.net.state_dict().items())
    fresh = ReptilePPO(ReptilePPOConfig(hidden_sizes=(8,)), "point-nav", seed=0)
    assert not all(torch.equal(v, source[k]) for k, v in fresh.net.state_dict().items())
    agent.close()
    fresh.close()
    with pytest.raises(ConfigError, match=r"init_from=.*joint.*hidden_sizes \[16\]"):
        ReptilePPO(ReptilePPOConfig(hidden_sizes=(16,), init_from=str(tmp_path / "joint")), "point-nav", seed=0)


def test_a_warm_started_run_resumes_and_loads_without_its_source(tmp_path: Path) -> None:
    """The checkpoint supersedes init_from, so deleting the source run must not break resume or evaluate."""
    import shutil

    train("joint-ppo", "point-nav", overrides=[*_tiny(), "trainer.iterations=1"], seed=3,
          run_dir=tmp_path / "joint").agent.close()
    sets = _tiny(f"init_from={tmp_path / 'joint'}")
    train("reptile-ppo", "point-nav", overrides=[*sets, "trainer.iterations=2"], seed=4,
          run_dir=tmp_path / "straight").agent.close()
    train("reptile-ppo", "point-nav", overrides=[*sets, "trainer.iterations=1"], seed=4,
          run_dir=tmp_path / "split").agent.close()
    shutil.rmtree(tmp_path / "joint")
    train("reptile-ppo", overrides=["trainer.iterations=2"], resume=tmp_path / "split").agent.close()
    a, b = _net(tmp_path / "straight"), _net(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)
    agent = load_agent(tmp_path / "split")
    assert all(torch.equal(v, b[k]) for k, v in agent.net.state_dict().items())
    agent.close()


def test_a_missing_init_from_names_the_key_and_leaves_no_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"init_from='.*nowhere'.*no checkpoint"):
        train("reptile-ppo", "point-nav", overrides=_tiny(f"init_from={tmp_path / 'nowhere'}"), run_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
