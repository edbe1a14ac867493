"""The device rollout loop (``backend="tensor"``) against the gymnasium loop, and its own guarantees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from metarl.evaluation.actors import UniformActor
from metarl.sampling import SamplerConfigError, make_sampler
from metarl.sampling.actor import ActorOutput
from metarl.sampling.tensor import TensorSampler


class GoalSeeker:
    """Deterministic: heads for each task's goal at a task-specific speed, so episodes end at different steps."""

    def __init__(self, tasks: list[Any]) -> None:
        self.goals = torch.tensor([t.params["goal"] for t in tasks], dtype=torch.float32)
        self.speed = torch.linspace(0.02, 0.6, len(tasks))
        self.starts: list[torch.Tensor] = []

    def initial_state(self, n_tasks: int, n_slots: int) -> None:
        return None

    def act(self, obs: torch.Tensor, state: Any, episode_start: torch.Tensor, generator: torch.Generator) -> ActorOutput:
        self.starts.append(episode_start.clone())
        step = (self.goals[:, None] - obs) * self.speed[:, None, None]
        return ActorOutput(step, torch.zeros(obs.shape[:2]), state, {"speed": self.speed[:, None].expand(obs.shape[:2])})

    def observe(self, state: Any, actions: torch.Tensor, rewards: torch.Tensor, dones: torch.Tensor) -> Any:
        return state


@pytest.mark.parametrize("spec", ["point-nav", "point-nav?goal_test=box"])
def test_point_nav_episodes_are_identical_on_both_paths(spec: str) -> None:
    """Point-nav is deterministic given the actions, so a deterministic actor gives the same Episodes
    on the gymnasium and tensor paths, bit for bit, with episodes ending at different steps."""
    with make_sampler(spec, "serial") as serial, make_sampler(spec, "tensor") as tensor:
        assert isinstance(tensor, TensorSampler) and not isinstance(serial, TensorSampler)
        tasks = serial.family.sample(12, rng=4)
        ref = serial.sample(tasks, GoalSeeker(tasks), 3, seed=0)
        out = tensor.sample(tasks, GoalSeeker(tasks), 3, seed=0)
    assert out.equal(ref)
    assert torch.equal(out.agent_info["speed"], ref.agent_info["speed"])
    lengths = ref.lengths.unique()
    assert len(lengths) > 3 and lengths.min() < 100 and lengths.max() == 100  # early ends and full episodes


def test_episode_starts_and_trials_follow_the_layout() -> None:
    """Trials of ``n`` pulls: every row starts an episode at every step; episodes of a trial are contiguous."""
    with make_sampler("bandit?k=5&n=10", "tensor") as sampler:
        tasks = sampler.family.sample(3, rng=0)
        actor = UniformActor(sampler.family.action_space)
        eps = sampler.sample(tasks, actor, 20, episodes_per_trial=10, seed=1)
    assert tuple(eps.rewards.shape) == (3, 20, 1) and eps.n_trials == 2
    assert torch.all(eps.lengths == 1) and torch.all(eps.terminated[..., 0])
    assert torch.equal(eps.returns, eps.rewards[..., 0])


def test_a_seed_fixes_the_episodes_and_another_changes_them() -> None:
    for spec in ("bandit?k=5&n=10", "tabular-mdp?n=10"):
        with make_sampler(spec, "tensor") as sampler:
            tasks = sampler.family.sample(4, rng=0)
            actor = UniformActor(sampler.family.action_space)
            n = sampler.family.trial_episodes
            a = sampler.sample(tasks, actor, 2 * n, episodes_per_trial=n, seed=5)
            b = sampler.sample(tasks, actor, 2 * n, episodes_per_trial=n, seed=5)
            c = sampler.sample(tasks, actor, 2 * n, episodes_per_trial=n, seed=6)
        assert a.equal(b), spec
        assert not torch.equal(a.rewards, c.rewards), spec


def test_tensor_and_gymnasium_bandits_agree_in_distribution() -> None:
    """Uniform pulls on the same bandits: the per-task mean reward of both paths is the mean arm
    probability, within 5 standard errors."""
    results = {}
    for backend in ("serial", "tensor"):
        with make_sampler("bandit?k=5&n=100", backend) as sampler:
            tasks = sampler.family.sample(6, rng=2)
            eps = sampler.sample(tasks, UniformActor(sampler.family.action_space), 2000, episodes_per_trial=100, seed=3)
            results[backend] = eps.returns.double().mean(1)
    expected = torch.tensor([np.mean(t.params["probs"]) for t in tasks], dtype=torch.float64)
    for backend, means in results.items():
        assert torch.all((means - expected).abs() < 5 * 0.5 / 2000**0.5), backend


def test_tabular_start_states_are_redrawn_every_episode() -> None:
    with make_sampler("tabular-mdp?n=10", "tensor") as sampler:
        tasks = sampler.family.sample(50, rng=0)
        eps = sampler.sample(tasks, UniformActor(sampler.family.action_space), 10, episodes_per_trial=10, seed=0)
    starts = eps.observations[:, :, 0].argmax(-1)  # [tasks, episodes]
    assert tuple(eps.observations.shape) == (50, 10, 10, 10) and torch.all(eps.lengths == 10)
    freq = torch.bincount(starts.flatten(), minlength=10).double() / starts.numel()
    assert torch.all((freq - 0.1).abs() < 5 * (0.09 / starts.numel()) ** 0.5)
    assert torch.all(eps.truncated[..., -1]) and not eps.terminated.any()


def test_passes_over_trials_keep_the_layout() -> None:
    with make_sampler("point-nav", "tensor", max_envs=8) as sampler:
        tasks = sampler.family.sample(4, rng=1)
        eps = sampler.sample(tasks, GoalSeeker(tasks), 5, seed=0)
    with make_sampler("point-nav", "serial") as serial:
        ref = serial.sample(tasks, GoalSeeker(tasks), 5, seed=0)
    assert eps.equal(ref)  # a deterministic actor: passes change nothing


def test_backend_choice_and_its_errors() -> None:
    with make_sampler("point-nav", "auto") as s:
        assert isinstance(s, TensorSampler) and "tensor (cpu)" in repr(s)
    with make_sampler("halfcheetah-vel", "auto") as s:
        assert not isinstance(s, TensorSampler)
    with pytest.raises(SamplerConfigError, match=r"'halfcheetah-vel' has no tensor env; allowed"):
        make_sampler("halfcheetah-vel", "tensor")
    with pytest.raises(SamplerConfigError, match=r"workers=2 with backend='tensor'.*allowed"):
        make_sampler("point-nav", "tensor", workers=2)
    with pytest.raises(SamplerConfigError, match=r"backend='gpu' is unknown; allowed: .*tensor, auto"):
        make_sampler("point-nav", "gpu")
