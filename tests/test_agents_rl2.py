"""RL²: memory across the episodes of a trial, rollout == training log-probs, references."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from metarl.agents.rl2 import RL2, RL2Config
from metarl.agents.rl2_actor import RL2Actor, pack_trials
from metarl.envs import register
from metarl.envs.base import Task, TaskEnv, TaskFamily
from metarl.evaluation.references import reference_rows
from metarl.nn import RecurrentPolicy
from metarl.sampling import make_sampler
from metarl.sampling.episodes import trial_returns, trial_rounds


class CueEnv(TaskEnv):
    """Episode 1 of a trial shows a secret bit; later episodes pay 1 per step for guessing it blind.

    Actions 0/1 guess the bit, action 2 ends the episode (so episodes have random
    lengths when ``horizon > 1``). Only a policy that remembers episode 1 can earn
    more than chance in episode 2.
    """

    def __init__(self, task: Task, horizon: int) -> None:
        self.horizon = horizon
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.set_task(task)

    def _apply_task(self, task: Task) -> None:
        self.bit, self.resets = int(task.params["bit"]), 0

    def _obs(self) -> np.ndarray:
        cue = self.resets == 1
        return np.array([float(cue), (2.0 * self.bit - 1.0) if cue else 0.0], np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.resets, self.t = self.resets + 1, 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        reward = float(self.resets > 1 and int(action) == self.bit)
        return self._obs(), reward, int(action) == 2, self.t >= self.horizon, {}


class CueFamily(TaskFamily):
    description = "remember a bit shown in episode 1, guess it in episode 2"

    def __init__(self, horizon: int = 1, n: int = 2) -> None:
        self.horizon, self.trial_episodes = horizon, n
        self.name = f"cue?horizon={horizon}&n={n}"

    @property
    def observation_space(self) -> gym.Space:
        return gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    @property
    def action_space(self) -> gym.Space:
        return gym.spaces.Discrete(3)

    def sample(self, n, rng=None, split="train"):
        bits = np.random.default_rng(rng).integers(2, size=n)
        return self._tasks(split, [{"bit": int(b)} for b in bits])

    def make_env(self, task: Task) -> gym.Env:
        return CueEnv(task, self.horizon)


register("cue", CueFamily, overwrite=True)  # agents rebuild their sampler's family from its name


def agent(family: TaskFamily, policy: str = "gru", **kw: Any) -> RL2:
    torch.set_num_threads(1)
    cfg = RL2Config(policy=policy, hidden_size=16, snail_filters=8, snail_key_size=8, snail_value_size=8,
                    snail_embed=8, **kw)
    return RL2(cfg, family, seed=0)


class Recorder(RL2Actor):
    """Keeps the state each ``act`` call received, to look at the memory at episode starts."""

    def __init__(self, net) -> None:  # noqa: ANN001
        super().__init__(net)
        self.seen: list[tuple[Any, torch.Tensor]] = []

    def act(self, obs, state, episode_start, generator):  # noqa: ANN001, ANN201
        self.seen.append((state, episode_start.clone()))
        return super().act(obs, state, episode_start, generator)


def test_memory_is_carried_across_episodes_and_reset_between_trials() -> None:
    a = agent(CueFamily())
    tasks = a.family.sample(3, rng=0)
    recorder = Recorder(a.net)
    with make_sampler(a.family, "serial") as sampler:
        eps = sampler.sample(tasks, recorder, 4, episodes_per_trial=2, seed=1)  # 2 trials x 2 episodes per task
    (first, start0), (second, start1) = recorder.seen  # horizon 1: one step per episode
    assert bool(start0.all()) and bool(start1.all())
    fresh = a.net.initial_state(6)
    assert torch.equal(first.memory, fresh)  # a trial starts from a fresh memory ...
    assert not torch.allclose(second.memory, fresh)  # ... which episode 2 does not get: it is carried
    with torch.no_grad():
        episode1_obs = eps.observations[:, 0::2, 0].reshape(6, 2)  # slot = (task, trial), episode 0
        x = a.net.make_inputs(episode1_obs, torch.full((6,), -1), torch.zeros(6), torch.zeros(6))
        _, carried = a.net.step_features(x, fresh)
    torch.testing.assert_close(second.memory, carried, rtol=0, atol=0)
    assert torch.equal(second.prev_done, torch.ones(6))  # the network is told episode 1 ended
    assert torch.equal(second.prev_action, eps.actions[:, 0::2, 0].reshape(6))


@pytest.mark.parametrize("policy, options", [("gru", {}), ("lstm", {}), ("snail", {}),
                                             ("gru", {"transition_inputs": True, "torso": True}),
                                             ("snail", {"transition_inputs": True, "torso": True}),
                                             ("gru", {"transition_key": True, "torso": True}),
                                             ("lstm", {"transition_inputs": True, "transition_key": True}),
                                             ("gru", {"encoder_sizes": (8, 8), "torso": True})])
def test_training_recomputes_the_rollout_log_probs(policy: str, options: dict[str, Any]) -> None:
    """Trials with episodes of random lengths: packing + previous action/reward/done line up step by step."""
    a = agent(CueFamily(horizon=4, n=3), policy, **options)
    eps = a.collect(a.family.sample(4, rng=1), trials=3, episodes_per_trial=3, seed=2)
    assert len(set(eps.lengths.flatten().tolist())) > 1  # ragged episodes inside trials
    trials = pack_trials(a.net, eps, a.device)
    assert trials.n_steps == eps.n_steps
    with torch.no_grad():
        dist, _ = a.net.heads(a.net.features(trials.inputs)[0])
        again = dist.log_prob(trials.actions)
        real = trials.mask > 0
        torch.testing.assert_close(again[real], trials.log_probs[real], atol=1e-5, rtol=0)
        # The check can fail: feeding the *current* reward (an off-by-one) changes the log-probs.
        obs_dim = a.net.policy.obs_dim
        reward_col = obs_dim + 3  # after the observation and the one-hot previous action (3 actions)
        wrong = trials.inputs.clone()
        wrong[:, :, reward_col] = trials.rewards
        bad = a.net.heads(a.net.features(wrong)[0])[0].log_prob(trials.actions)
        assert (bad[real] - trials.log_probs[real]).abs().max() > 1e-3
        base = obs_dim + 3 + 2  # observation, one-hot previous action, previous reward, done
        obs, prev_action = trials.inputs[..., :obs_dim], trials.inputs[..., obs_dim:obs_dim + 3]
        if options.get("transition_inputs"):  # the previous observation too: the current one in its place fails
            wrong = trials.inputs.clone()
            wrong[:, :, base:base + obs_dim] = obs
            bad = a.net.heads(a.net.features(wrong)[0])[0].log_prob(trials.actions)
            assert (bad[real] - trials.log_probs[real]).abs().max() > 1e-3
        if options.get("transition_key"):  # the key is (previous obs, previous action): current obs fails
            wrong = trials.inputs.clone()
            key = (obs.unsqueeze(-1) * prev_action.unsqueeze(-2)).flatten(-2)
            wrong[:, :, -2 * key.shape[-1]:] = torch.cat([key, key * trials.inputs[..., reward_col:reward_col + 1]], -1)
            bad = a.net.heads(a.net.features(wrong)[0])[0].log_prob(trials.actions)
            assert (bad[real] - trials.log_probs[real]).abs().max() > 1e-3


def test_input_encoder_sits_between_the_inputs_and_the_cell() -> None:
    """encoder_sizes: a tanh MLP per step before the GRU; the cell then reads its width, and the
    features are the cell run on the encoded inputs (not on the raw ones)."""
    a = agent(CueFamily(horizon=3, n=3), "gru", encoder_sizes=(8, 5))
    policy = a.net.policy
    assert policy.encoder is not None and policy.rnn.input_size == 5
    assert [m.out_features for m in policy.encoder if isinstance(m, torch.nn.Linear)] == [8, 5]
    inputs = torch.randn(2, 4, policy.input_dim)
    with torch.no_grad():
        features, _ = policy.features(inputs)
        expected, _ = policy.rnn(policy.encoder(inputs))
        torch.testing.assert_close(features, expected, rtol=0, atol=0)
        step, _ = policy.step_features(inputs[:, 0], policy.initial_state(2))
        torch.testing.assert_close(step, features[:, 0], atol=1e-6, rtol=0)
    plain = agent(CueFamily(horizon=3, n=3), "gru")
    assert plain.net.policy.encoder is None and not any("encoder" in k for k in plain.net.state_dict())
    with pytest.raises(ValueError, match="encoder_sizes"):
        RecurrentPolicy(3, 2, discrete=True, encoder_sizes=(4, 0))


def test_state_std_head_starts_at_init_std_and_learns_a_per_step_noise() -> None:
    """state_std: the log-std is a layer on the features. It starts at log(init_std) everywhere (zero
    weights), so the first policy is the plain head's; rollouts and training still agree; and its
    weights are trained, so after an update the std differs from step to step."""
    from metarl.envs import make_family
    from metarl.nn import StateStdGaussianHead

    family = make_family("point-nav")
    torch.set_num_threads(1)
    a = RL2(RL2Config(hidden_size=16, meta_batch_size=2, trials_per_task=2, trial_episodes=2, state_std=True,
                      init_std=0.5, epochs=1, minibatches=1), family, seed=0)
    head = a.net.policy.head
    assert isinstance(head, StateStdGaussianHead) and not hasattr(head, "log_std")
    eps = a.collect(family.sample(2, rng=1), trials=2, episodes_per_trial=2, seed=2)
    trials = pack_trials(a.net, eps, a.device)
    real = trials.mask > 0
    with torch.no_grad():
        features = a.net.features(trials.inputs)[0]
        _, log_std = head(features)
        torch.testing.assert_close(log_std[real], torch.full_like(log_std[real], math.log(0.5)))
        again = a.net.heads(features)[0].log_prob(trials.actions)
        torch.testing.assert_close(again[real], trials.log_probs[real], atol=1e-5, rtol=0)
    a.update(eps)
    assert head.log_std_layer.weight.abs().max() > 0
    with torch.no_grad():
        _, log_std = head(a.net.features(trials.inputs)[0])
    assert float(log_std[real].std(dim=0).max()) > 1e-6  # per-step noise now, not one global std
    with pytest.raises(ValueError, match="state_std"):
        RecurrentPolicy(3, 2, discrete=True, state_std=True)


def test_tanh_head_bounds_the_mean_and_std_and_starts_at_init_std() -> None:
    """tanh_head: mean in [-1, 1] and std in [1/e, e] whatever the features; the first policy's noise is init_std;
    the deterministic action is the bounded mean; an init_std outside the range is refused."""
    from metarl.nn import StateStdGaussianHead

    head = StateStdGaussianHead(8, 3, init_std=0.6, tanh=True)
    with torch.no_grad():
        mean, log_std = head(torch.zeros(5, 8))
        torch.testing.assert_close(log_std, torch.full_like(log_std, math.log(0.6)))
        head.mean.weight.fill_(50.0)
        head.log_std_layer.weight.fill_(-50.0)
        big = torch.randn(64, 8) * 10
        mean, log_std = head(big)
    assert float(mean.abs().max()) <= 1.0 and float(log_std.min()) >= -1.0 and float(log_std.max()) <= 1.0
    assert float(mean.abs().max()) > 0.99 and float(log_std.min()) < -0.99  # the bounds are reached, not a clamp far off
    torch.testing.assert_close(head.sample((mean, log_std), deterministic=True), mean)
    with pytest.raises(ValueError, match="init_std=0.2"):
        StateStdGaussianHead(8, 3, init_std=0.2, tanh=True)
    plain = StateStdGaussianHead(8, 3, init_std=0.6)
    with torch.no_grad():
        plain.mean.weight.fill_(50.0)
        assert float(plain(big)[0].abs().max()) > 1.0  # without tanh the mean is unbounded


def test_network_options_that_do_not_apply_are_configuration_errors() -> None:
    """An encoder on SNAIL, or a state-dependent std on discrete actions, would be silently meaningless."""
    from metarl.runs import ConfigError

    with pytest.raises(ConfigError, match=r"encoder_sizes \[8\].*snail_embed"):
        agent(CueFamily(horizon=2, n=3), "snail", encoder_sizes=(8,))
    with pytest.raises(ConfigError, match="state_std=true needs a continuous"):
        agent(CueFamily(horizon=2, n=3), "gru", state_std=True)
    with pytest.raises(ConfigError, match="tanh_head=true .* set state_std=true"):
        agent(CueFamily(horizon=2, n=3), "gru", tanh_head=True)


def test_transition_key_on_continuous_spaces_is_the_bilinear_product() -> None:
    """Gaussian policies get vec(prev_obs prev_action^T) and its reward-weighted copy, and rollouts still line up."""
    from metarl.envs import make_family

    a = agent(make_family("point-nav?horizon=5"), "gru", transition_key=True)
    obs_dim, act_dim = a.net.policy.obs_dim, a.net.policy.action_dim
    eps = a.collect(a.family.sample(2, rng=1), trials=2, episodes_per_trial=2, seed=3)
    trials = pack_trials(a.net, eps, a.device)
    assert trials.inputs.shape[-1] == obs_dim + act_dim + 2 + 2 * obs_dim * act_dim
    obs, action = trials.inputs[..., :obs_dim], trials.inputs[..., obs_dim:obs_dim + act_dim]
    prev_obs = torch.cat([torch.zeros_like(obs[:, :1]), obs[:, :-1]], 1)  # trials are unpadded here (fixed horizon)
    key = trials.inputs[..., -2 * obs_dim * act_dim:-obs_dim * act_dim].reshape(*obs.shape[:2], obs_dim, act_dim)
    torch.testing.assert_close(key, prev_obs.unsqueeze(-1) * action.unsqueeze(-2))
    with torch.no_grad():
        again = a.net.heads(a.net.features(trials.inputs)[0])[0].log_prob(trials.actions)
    torch.testing.assert_close(again, trials.log_probs, atol=1e-5, rtol=0)


def test_step_per_segment_takes_one_adam_step_per_segment() -> None:
    """bptt=3 over 12-step trials: 4 Adam steps per minibatch with step_per_segment, 1 without; both learn
    from the same data, and without segments the option is a configuration error naming bptt.
    (Bandit trials have a fixed length, so no segment is all padding, which would take no step.)"""
    from metarl.envs import make_family
    from metarl.runs import ConfigError

    steps = {}
    for per_segment in (False, True):
        a = agent(make_family("bandit?k=2&n=12"), "gru", bptt=3, step_per_segment=per_segment, epochs=2,
                  minibatches=2, meta_batch_size=2, trials_per_task=2)
        before = {k: v.clone() for k, v in a.net.state_dict().items()}
        metrics = a.train_iteration(0)
        assert metrics["grad_norm"] > 0
        assert any(not torch.equal(before[k], v) for k, v in a.net.state_dict().items())
        steps[per_segment] = max(int(s["step"]) for s in a.optimizer.state_dict()["state"].values())
    assert steps == {False: 2 * 2, True: 2 * 2 * 4}
    with pytest.raises(ConfigError, match="bptt"):
        agent(CueFamily(horizon=4, n=3), "gru", step_per_segment=True)
    # a segment that is all padding (trials that ended early) has no gradient and takes no step
    a = agent(make_family("bandit?k=2&n=12"), "gru", bptt=3, step_per_segment=True)
    trials = pack_trials(a.net, a.collect(a.family.sample(2, rng=0), trials=1, episodes_per_trial=12, seed=1), a.device)
    trials = trials._replace(mask=torch.where(torch.arange(12) < 9, trials.mask, torch.zeros_like(trials.mask)))
    adv, returns, _ = a.advantages(trials)
    a.minibatch_step(trials, adv, returns)
    assert max(int(s["step"]) for s in a.optimizer.state_dict()["state"].values()) == 3


def test_reward_input_scale_scales_the_reward_input_only() -> None:
    """The memory sees r * scale; rewards, returns and every other input column stay as collected,
    and the rollout's log-probs are the training pass's (the actor builds its inputs the same way)."""
    from metarl.envs import make_family

    family = make_family("point-nav?horizon=5")
    plain, scaled = agent(family, "gru"), agent(family, "gru", reward_input_scale=0.1)
    scaled.net.load_state_dict(plain.net.state_dict())
    tasks = family.sample(2, rng=1)
    eps = plain.collect(tasks, trials=2, episodes_per_trial=2, seed=3)
    a, b = pack_trials(plain.net, eps, plain.device), pack_trials(scaled.net, eps, scaled.device)
    col = plain.net.policy.obs_dim + plain.net.policy.action_dim  # [obs, prev_action, prev_reward, done]
    assert a.inputs[..., col].abs().max() > 0
    torch.testing.assert_close(b.inputs[..., col], a.inputs[..., col] * 0.1)
    keep = [c for c in range(a.inputs.shape[-1]) if c != col]
    assert torch.equal(b.inputs[..., keep], a.inputs[..., keep]) and torch.equal(b.rewards, a.rewards)
    eps_scaled = scaled.collect(tasks, trials=2, episodes_per_trial=2, seed=3)
    trials = pack_trials(scaled.net, eps_scaled, scaled.device)
    with torch.no_grad():
        again = scaled.net.heads(scaled.net.features(trials.inputs)[0])[0].log_prob(trials.actions)
    torch.testing.assert_close(again, trials.log_probs, atol=1e-5, rtol=0)
    assert not torch.equal(eps_scaled.actions[:, :, 1:], eps.actions[:, :, 1:])  # the memory saw other rewards


def test_normalize_advantages_false_keeps_gae_in_return_units() -> None:
    """normalize_advantages=false: the advantages are GAE's in return units; true: standardized per trial."""
    from metarl.core import gae, normalize_advantages
    from metarl.envs import make_family

    family = make_family("point-nav?horizon=5")
    raw, norm = agent(family, "gru", normalize_advantages=False), agent(family, "gru")
    norm.net.load_state_dict(raw.net.state_dict())
    trials = pack_trials(raw.net, raw.collect(family.sample(2, rng=1), trials=2, episodes_per_trial=2, seed=3),
                         raw.device)
    adv_raw, returns, values = raw.advantages(trials)
    adv_norm, _, _ = norm.advantages(trials)
    expected, _ = gae(trials.rewards, values, trials.mask, gamma=0.99, gae_lambda=0.95)
    torch.testing.assert_close(adv_raw, expected)
    real = trials.mask > 0
    assert abs(float(adv_raw[real].mean())) > 0.5  # point-nav's negative rewards: raw GAE is not centred
    torch.testing.assert_close(adv_norm, normalize_advantages(expected, trials.mask))


def test_linear_baseline_fits_each_trial_and_leaves_the_value_head_untrained() -> None:
    """baseline=linear: GAE's values are the least-squares fit of each trial's returns on its own observation
    features (t counted over the whole trial), and PPO steps leave the value head's weights unchanged."""
    from metarl.core import LinearFeatureBaseline, discounted_returns, gae, normalize_advantages
    from metarl.envs import make_family

    family = make_family("point-nav?horizon=5")
    a = agent(family, "gru", baseline="linear")
    trials = pack_trials(a.net, a.collect(family.sample(2, rng=1), trials=2, episodes_per_trial=3, seed=3), a.device)
    values = a.linear_baseline_values(trials)
    returns = discounted_returns(trials.rewards, trials.mask, gamma=0.99)
    for row in range(trials.mask.shape[0]):  # one independent fit per trial, as if it were alone
        obs = trials.inputs[row:row + 1, :, :a.net.policy.obs_dim].unsqueeze(1)
        alone = LinearFeatureBaseline().fit_predict(obs, returns[row:row + 1, None], trials.mask[row:row + 1, None])
        torch.testing.assert_close(values[row], alone[0, 0])
    real = trials.mask > 0
    assert float(((values - returns)[real] ** 2).mean()) < 0.5 * float(((returns - returns[real].mean())[real] ** 2).mean())
    adv, _, old_values = a.advantages(trials)
    torch.testing.assert_close(old_values, values)
    torch.testing.assert_close(adv, normalize_advantages(gae(trials.rewards, values, trials.mask, gamma=0.99,
                                                                gae_lambda=0.95)[0], trials.mask))
    head = a.net.value.weight.detach().clone()
    policy = [p.detach().clone() for p in a.net.policy.parameters()]
    logged = a.minibatch_step(trials, adv, returns)
    assert torch.equal(a.net.value.weight, head)  # no value loss, so Adam never moves the head
    assert "value_loss" not in logged and "policy_loss" in logged
    assert any(not torch.equal(p, q) for p, q in zip(a.net.policy.parameters(), policy, strict=True))


def test_truncated_bptt_keeps_the_forward_pass() -> None:
    """Segments continue the memory, so TBPTT changes gradients, never the recomputed log-probs."""
    a = agent(CueFamily(horizon=4, n=3), "lstm", bptt=3)
    eps = a.collect(a.family.sample(2, rng=1), trials=2, episodes_per_trial=3, seed=2)
    trials = pack_trials(a.net, eps, a.device)
    with torch.no_grad():
        whole = a.net.features(trials.inputs)[0]
        first, state = a.net.features(trials.inputs[:, :3])
        rest, _ = a.net.features(trials.inputs[:, 3:], state)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, atol=1e-6, rtol=0)
    a.train_iteration(0)  # the segmented update runs


def test_short_training_earns_the_memory_only_reward() -> None:
    a = agent(CueFamily(), "gru", meta_batch_size=32, trials_per_task=4, lr=0.01, ent_coef=0.0)
    tasks = a.family.sample(40, rng=123, split="test")
    before = trial_rounds(a.collect(tasks, 4, 2, seed=0))[1].returns.mean()
    for it in range(40):
        a.train_iteration(it)
    rounds = a.meta_test(tasks, rounds=1, episodes_per_round=4, seed=0)
    assert float(before) < 0.6
    assert float(rounds[1].returns.mean()) > 0.9  # chance (no memory) is 1/3 to 1/2


def test_meta_test_rounds_are_the_episodes_of_one_trial() -> None:
    a = agent(CueFamily(horizon=2, n=3))
    tasks = a.family.sample(2, rng=0)
    rounds = a.meta_test(tasks, rounds=2, episodes_per_round=3, seed=5)
    whole = a.collect(tasks, 3, 3, seed=5)
    assert len(rounds) == 3 and all(r.returns.shape == (2, 3) for r in rounds)
    for k, r in enumerate(rounds):
        assert torch.equal(r.returns, whole.returns[:, k::3]) and torch.equal(r.actions, whole.actions[:, k::3])
    torch.testing.assert_close(sum(r.returns for r in rounds), trial_returns(whole))


def test_rl2_curves_count_one_trials_experience() -> None:
    """3 parallel trials of 2-step episodes: before episode k a trial has seen 2k steps, not 3 x 2k."""
    from metarl.evaluation.protocol import agent_rows

    a = agent(CueFamily(horizon=2, n=3))
    tasks = a.family.sample(2, rng=0)
    rows = agent_rows(a, tasks, method="rl2", run="r", split="test", seed=5, rounds=2, episodes_per_round=3)
    lengths = [r.lengths.double() for r in a.meta_test(tasks, rounds=2, episodes_per_round=3, seed=5)]
    for r in rows:  # episodes may end early, so a trial's mean length, not a fixed 2 per episode
        expected = sum(int(lengths[j][r.task].mean().round()) for j in range(r.round))
        assert r.env_steps == expected <= 2 * r.round
    assert max(r.env_steps for r in rows) > 0


def test_random_baseline_beside_rl2_counts_one_trials_steps() -> None:
    from metarl.evaluation.baselines import random_baseline

    family = CueFamily(horizon=2, n=3)
    tasks = family.sample(2, rng=0)
    summed = random_baseline(family, tasks, rounds=2, episodes_per_round=3, seed=5)
    per_trial = random_baseline(family, tasks, rounds=2, episodes_per_round=3, seed=5, parallel_trials=True)
    assert [r.return_mean for r in per_trial] == [r.return_mean for r in summed]
    for s, p in zip(summed, per_trial, strict=True):
        assert p.env_steps <= 2 * p.round and p.env_steps * 3 - 3 * p.round <= s.env_steps <= p.env_steps * 3 + 3 * p.round
    assert max(p.env_steps for p in per_trial) > 0


def test_bandit_references_beat_random_on_the_same_tasks() -> None:
    from metarl.envs import make_family

    family = make_family("bandit?k=5&n=50")
    tasks = family.sample(30, rng=0, split="test")
    scores = {m: reference_rows(family, tasks, m, rounds=49, episodes_per_round=2, seed=0)[0]
              for m in ("random", "ucb1", "thompson")}
    assert scores["thompson"] > scores["random"] + 5 and scores["ucb1"] > scores["random"] + 3
    _, rows = reference_rows(family, tasks, "ucb1", rounds=49, episodes_per_round=2, seed=0)
    assert len(rows) == 30 * 50 and {r.round for r in rows} == set(range(50))


def test_mdp_references_learn_within_the_trial_and_count_only_seen_moves() -> None:
    from metarl.envs import make_family
    from metarl.evaluation.references import GreedyMDPActor, available
    from metarl.sampling import make_sampler

    family = make_family("tabular-mdp?n=5")
    assert available(family) == ["random", "greedy", "psrl"]
    tasks = family.sample(20, rng=0, split="test")
    scores = {m: reference_rows(family, tasks, m, rounds=4, episodes_per_round=2, seed=0)[0]
              for m in ("random", "greedy", "psrl")}
    assert scores["greedy"] > scores["random"] + 15 and scores["psrl"] > scores["random"] + 8
    assert reference_rows(family, tasks, "psrl", rounds=4, episodes_per_round=2, seed=0)[0] == scores["psrl"]
    with pytest.raises(ValueError, match="allowed: random, greedy, psrl"):
        reference_rows(family, tasks, "ucb1", rounds=4, episodes_per_round=2, seed=0)

    actor, seen = GreedyMDPActor(family), {}

    class Spy:  # keeps the final posterior of the trial
        def initial_state(self, t, s):
            return actor.initial_state(t, s)

        def act(self, *args):
            return actor.act(*args)

        def observe(self, *args):
            seen["state"] = actor.observe(*args)
            return seen["state"]

    with make_sampler(family, "serial") as sampler:
        sampler.sample(tasks[:3], Spy(), 5, episodes_per_trial=5, seed=1)
    state = seen["state"]
    steps = 5 * family.horizon
    assert (state["visits"].sum(axis=(1, 2)) == steps - 1).all()  # the sampler skips the last step's observe
    # every move but each episode's last (its successor is never observed) is counted
    assert (state["moves"].sum(axis=(1, 2, 3)) == steps - 5).all()


def test_value_warmup_refits_the_head_without_touching_the_policy() -> None:
    a = agent(CueFamily(horizon=2, n=3), "gru", value_warmup=1)
    before = {k: v.clone() for k, v in a.net.policy.state_dict().items()}
    metrics = a.train_iteration(0)
    assert all(torch.equal(v, a.net.policy.state_dict()[k]) for k, v in before.items())
    assert "value_refit_loss" in metrics and "policy_loss" not in metrics
    eps = a.collect(a.family.sample(8, rng=3), 2, 3, seed=4)
    trials = pack_trials(a.net, eps, a.device)
    _, returns, _ = a.advantages(trials)
    a.refit_value_head(trials, returns)
    _, _, values = a.advantages(trials)  # values after the refit, on the batch it was fit to
    real = trials.mask > 0
    assert float(((values - returns)[real] ** 2).mean()) < float(((returns[real] - returns[real].mean()) ** 2).mean())


def test_return_normalization_preserves_values_and_normalizes_targets() -> None:
    a = agent(CueFamily(horizon=2, n=3), "gru")
    features = torch.randn(5, a.net.value.in_features)
    before = a.net.denormalize(a.net.heads(features)[1]).detach()
    returns = torch.randn(200, dtype=torch.float64).float() * 30 + 50
    a.net.update_return_stats(returns, momentum=0.9)  # first batch: statistics set outright
    assert float(a.net.return_mean) == pytest.approx(float(returns.mean()), rel=1e-4)
    assert float(a.net.return_std) == pytest.approx(float(returns.std(unbiased=False)), rel=1e-3)
    a.net.update_return_stats(returns / 10, momentum=0.9)  # early batches: a plain running average
    assert float(a.net.return_mean) == pytest.approx(0.55 * float(returns.mean()), rel=1e-4)
    for _ in range(20):
        a.net.update_return_stats(returns / 10, momentum=0.9)  # later ones: the momentum average
    mean = float(a.net.return_mean)
    a.net.update_return_stats(returns, momentum=0.9)
    assert float(a.net.return_mean) == pytest.approx(0.9 * mean + 0.1 * float(returns.mean()), rel=1e-4)
    after = a.net.denormalize(a.net.heads(features)[1]).detach()
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert float(a.net.normalize(a.net.return_mean + a.net.return_std)) == pytest.approx(1.0)


def test_checkpoints_saved_before_return_normalization_still_load() -> None:
    a = agent(CueFamily(horizon=2, n=3), "gru")
    a.net.update_return_stats(torch.tensor([1.0, 5.0]), momentum=0.9)
    old = {k: v for k, v in a.net.state_dict().items() if not k.startswith("return_")}
    b = agent(CueFamily(horizon=2, n=3), "gru")
    b.net.load_compatible(old)
    assert float(b.net.return_mean) == 0.0 and float(b.net.return_std) == 1.0
    with pytest.raises(RuntimeError, match="value.bias"):
        b.net.load_compatible({k: v for k, v in old.items() if k != "value.bias"})


def test_paired_difference_matches_per_task_totals() -> None:
    from metarl.evaluation.curves import CurveRow
    from metarl.evaluation.references import paired_difference

    def rows(method: str, totals: list[float]) -> list[CurveRow]:
        return [CurveRow(method=method, run="r", family="bandit", split="test", seed=0, task=t, round=k, env_steps=k,
                         episodes=1, return_mean=total / 2, success_rate=float("nan"))
                for t, total in enumerate(totals) for k in range(2)]

    a, b = rows("rl2", [3.0, 5.0, 10.0]), rows("thompson", [1.0, 4.0, 6.0])
    out = paired_difference(a, "rl2", b, "thompson")
    diffs = np.array([2.0, 1.0, 4.0])
    assert out["mean"] == pytest.approx(diffs.mean()) and out["tasks"] == 3
    assert out["stderr"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))
    with pytest.raises(ValueError, match="share 0 scored tasks"):
        paired_difference(a, "rl2", b, "ucb1")


def test_overlapping_segments_carry_the_state_from_stride_steps_in() -> None:
    """bptt_stride < bptt: each segment's features equal the whole trial's over the same steps, the next
    segment starting from the state ``stride`` steps in; steps per epoch count the overlapping segments."""
    from metarl.envs import make_family
    from metarl.runs import ConfigError

    a = agent(make_family("bandit?k=2&n=12"), "gru", bptt=5, bptt_stride=3, step_per_segment=True, epochs=1,
              minibatches=1, meta_batch_size=2)
    trials = pack_trials(a.net, a.collect(a.family.sample(2, rng=0), trials=1, episodes_per_trial=12, seed=1), a.device)
    with torch.no_grad():
        whole = a.net.features(trials.inputs)[0]
        state = None
        for start in range(0, 12, 3):  # segments [0, 5), [3, 8), [6, 11), [9, 12)
            features, state = a._segment_features(trials.inputs[:, start:start + 5], state, 3)
            torch.testing.assert_close(features, whole[:, start:start + 5], atol=1e-6, rtol=0)
    a.train_iteration(0)
    assert max(int(s["step"]) for s in a.optimizer.state_dict()["state"].values()) == 4
    for bad, match in (({"bptt_stride": 3}, "set bptt"), ({"bptt": 2, "bptt_stride": 3}, "longer than bptt=2")):
        with pytest.raises(ConfigError, match=match):
            agent(CueFamily(horizon=4, n=3), "gru", **bad)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_xavier_init_is_the_reference_s_gate_by_gate(cell: str) -> None:
    """weight_init=xavier: orthogonal recurrent kernel per gate, zero biases, Xavier-bounded input kernels, and
    the state-dependent log-std keeps its init_std bias; SNAIL refuses it."""
    from metarl.envs import make_family
    from metarl.runs import ConfigError

    family = make_family("point-nav?horizon=5")
    a = agent(family, cell, weight_init="xavier", encoder_sizes=(12,), state_std=True, tanh_head=True,
              init_std=math.exp(0.5))
    rnn, h = a.net.policy.rnn, 16
    w_ih = rnn.weight_ih_l0.detach()
    for gate in rnn.weight_hh_l0.detach().chunk(3 if cell == "gru" else 4):
        torch.testing.assert_close(gate @ gate.T, torch.eye(h), atol=1e-5, rtol=0)
    bound = math.sqrt(6 / (12 + h))  # Xavier-uniform's bound for one [h, 12] gate block
    assert 0.8 * bound < float(w_ih.abs().max()) <= bound
    assert all(float(p.detach().abs().max()) == 0 for n, p in rnn.named_parameters() if n.startswith("bias"))
    assert float(a.net.policy.encoder[0].bias.abs().max()) == 0
    head = a.net.policy.head.log_std_layer
    torch.testing.assert_close(head.bias, torch.full_like(head.bias, math.atanh(0.5)))
    assert float(head.weight.abs().max()) > 0  # state-dependent from the start, as the reference's head
    plain = agent(family, cell)
    assert float(plain.net.policy.rnn.bias_hh_l0.abs().max()) > 0  # the default keeps PyTorch's init
    with pytest.raises(ConfigError, match="weight_init=xavier.*SNAIL"):
        agent(CueFamily(horizon=2, n=3), "snail", weight_init="xavier")


def test_memory_baseline_inputs_and_adam_eps() -> None:
    """baseline_inputs=memory regresses on [obs, prev action, scaled prev reward, done]; adam_eps reaches Adam."""
    from metarl.core import LinearFeatureBaseline, discounted_returns
    from metarl.envs import make_family
    from metarl.runs import ConfigError

    family = make_family("point-nav?horizon=5")
    a = agent(family, "gru", baseline="linear", baseline_inputs="memory", reward_input_scale=0.1, adam_eps=1e-5)
    assert a.optimizer.param_groups[0]["eps"] == 1e-5
    trials = pack_trials(a.net, a.collect(family.sample(2, rng=1), trials=1, episodes_per_trial=3, seed=3), a.device)
    values = a.linear_baseline_values(trials)
    returns = discounted_returns(trials.rewards, trials.mask, gamma=0.99)
    width = a.net.policy.obs_dim + a.net.policy.action_dim + 2
    expected = LinearFeatureBaseline().fit_predict(trials.inputs[..., :width].unsqueeze(1), returns.unsqueeze(1),
                                                   trials.mask.unsqueeze(1))[:, 0]
    torch.testing.assert_close(values, expected)
    obs_only = agent(family, "gru", baseline="linear")
    obs_only.net.load_state_dict(a.net.state_dict())
    assert not torch.allclose(obs_only.linear_baseline_values(trials), values)
    with pytest.raises(ConfigError, match="baseline_inputs=memory.*baseline=linear"):
        agent(family, "gru", baseline_inputs="memory")
