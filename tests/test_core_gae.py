"""GAE / returns against stable-baselines3, and the masked linear feature baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer

from metarl.core import discounted_returns, gae, linear_baseline_advantages, normalize_advantages
from metarl.core.baselines import LinearFeatureBaseline

GAMMA, LAM = 0.97, 0.9


def _sb3_reference(n_steps: int, n_envs: int, seed: int):  # noqa: ANN202
    """Fill an SB3 buffer with random data and episode boundaries; return inputs and outputs."""
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(n_steps, n_envs)).astype(np.float32)
    values = rng.normal(size=(n_steps, n_envs)).astype(np.float32)
    starts = (rng.random((n_steps, n_envs)) < 0.2).astype(np.float32)
    starts[0] = 1.0
    last_values = rng.normal(size=n_envs).astype(np.float32)
    dones = np.array([i % 2 == 0 for i in range(n_envs)])  # some columns end terminal
    buffer = RolloutBuffer(
        n_steps, spaces.Box(-1, 1, (1,)), spaces.Box(-1, 1, (1,)), "cpu", gae_lambda=LAM, gamma=GAMMA, n_envs=n_envs
    )
    for t in range(n_steps):
        buffer.add(
            np.zeros((n_envs, 1), np.float32),
            np.zeros((n_envs, 1), np.float32),
            rewards[t],
            starts[t],
            torch.as_tensor(values[t]),
            torch.zeros(n_envs),
        )
    buffer.compute_returns_and_advantage(torch.as_tensor(last_values), dones)
    return rewards, values, starts, last_values, dones, buffer.advantages.copy(), buffer.returns.copy()


@pytest.mark.parametrize("seed", [0, 1])
def test_gae_matches_stable_baselines3_rollout_buffer(seed: int) -> None:
    n_steps, n_envs = 40, 4
    rewards, values, starts, last_values, dones, sb3_adv, sb3_ret = _sb3_reference(n_steps, n_envs, seed)
    # Re-lay SB3's [time, env] stream as episode rows [1, episodes, time] with a mask.
    segments = []  # (env, start, end, terminated, bootstrap)
    for env in range(n_envs):
        bounds = [t for t in range(n_steps) if starts[t, env]] + [n_steps]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            tail = b == n_steps
            segments.append((env, a, b, bool(dones[env]) if tail else True, last_values[env] if tail else 0.0))
    assert len(segments) > n_envs, "test data should contain episode ends inside the buffer"
    width = max(b - a for _, a, b, _, _ in segments)
    shape = (1, len(segments), width)
    r, v, m = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape)
    boot, term = torch.zeros(1, len(segments)), torch.zeros(1, len(segments), dtype=torch.bool)
    for i, (env, a, b, terminated, bootstrap) in enumerate(segments):
        r[0, i, : b - a] = torch.as_tensor(rewards[a:b, env])
        v[0, i, : b - a] = torch.as_tensor(values[a:b, env])
        m[0, i, : b - a] = 1.0
        boot[0, i], term[0, i] = float(bootstrap), terminated
    # Garbage in padded steps must not leak into real ones.
    r = torch.where(m > 0, r, torch.full_like(r, float("nan")))
    v = torch.where(m > 0, v, torch.full_like(v, float("inf")))
    adv, ret = gae(r, v, m, gamma=GAMMA, gae_lambda=LAM, last_values=boot, terminated=term)
    for i, (env, a, b, _, _) in enumerate(segments):
        np.testing.assert_allclose(adv[0, i, : b - a].numpy(), sb3_adv[a:b, env], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ret[0, i, : b - a].numpy(), sb3_ret[a:b, env], rtol=1e-5, atol=1e-5)
        assert torch.all(adv[0, i, b - a :] == 0)


def test_discounted_returns_terminated_vs_truncated() -> None:
    rewards = torch.tensor([[[1.0, 2.0, 3.0, 0.0]]]).repeat(1, 2, 1)
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]]).repeat(1, 2, 1)
    last = torch.tensor([[10.0, 10.0]])
    terminated = torch.tensor([[True, False]])
    out = discounted_returns(rewards, mask, gamma=0.5, last_values=last, terminated=terminated)
    base = [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0, 0.0]
    torch.testing.assert_close(out[0, 0], torch.tensor(base))
    boot = torch.tensor([0.125, 0.25, 0.5, 0.0]) * 10
    torch.testing.assert_close(out[0, 1], torch.tensor(base) + boot)


def test_mask_with_holes_is_rejected() -> None:
    mask = torch.tensor([[[1.0, 0.0, 1.0]]])
    with pytest.raises(ValueError, match="prefix"):
        gae(torch.ones(1, 1, 3), torch.zeros(1, 1, 3), mask, gamma=0.9, gae_lambda=0.9)


def _garage_fit(obs: np.ndarray, returns: np.ndarray, reg: float = 1e-5) -> np.ndarray:
    """garage's LinearFeatureBaseline fit on a list of unpadded paths."""
    feats = []
    for o in obs:
        o = np.clip(o, -10, 10)
        al = np.arange(len(o)).reshape(-1, 1) / 100.0
        feats.append(np.concatenate([o, o**2, al, al**2, al**3, np.ones((len(o), 1))], axis=1))
    f = np.concatenate(feats)
    r = np.concatenate(returns)
    return np.linalg.lstsq(f.T @ f + reg * np.identity(f.shape[1]), f.T @ r, rcond=-1)[0]


def test_linear_baseline_matches_garage_per_task_and_ignores_padding() -> None:
    g = torch.Generator().manual_seed(0)
    tasks, eps, horizon, dim = 3, 4, 12, 2
    obs = torch.randn(tasks, eps, horizon, dim, generator=g, dtype=torch.float64) * 3
    returns = torch.randn(tasks, eps, horizon, generator=g, dtype=torch.float64)
    lengths = torch.randint(3, horizon + 1, (tasks, eps), generator=g)
    mask = (torch.arange(horizon) < lengths.unsqueeze(-1)).double()
    baseline = LinearFeatureBaseline()
    coeffs = baseline.fit(obs, returns, mask)
    assert coeffs.shape == (tasks, 2 * dim + 4)
    for t in range(tasks):
        paths_o = [obs[t, e, : lengths[t, e]].numpy() for e in range(eps)]
        paths_r = [returns[t, e, : lengths[t, e]].numpy() for e in range(eps)]
        np.testing.assert_allclose(coeffs[t].numpy(), _garage_fit(paths_o, paths_r), rtol=1e-6, atol=1e-8)
    # Padding content is irrelevant; predictions are zero there.
    noisy_obs = torch.where(mask.unsqueeze(-1) > 0, obs, torch.full_like(obs, float("nan")))
    noisy_ret = torch.where(mask > 0, returns, torch.full_like(returns, -5.0))
    torch.testing.assert_close(baseline.fit(noisy_obs, noisy_ret, mask), coeffs)
    pred = baseline.predict(coeffs, obs, mask)
    assert torch.all(pred[mask == 0] == 0)


def test_linear_baseline_advantages_are_normalized_per_task() -> None:
    g = torch.Generator().manual_seed(3)
    obs = torch.randn(2, 3, 10, 2, generator=g)
    rewards = torch.randn(2, 3, 10, generator=g) * torch.tensor([1.0, 100.0]).view(2, 1, 1)
    mask = torch.ones(2, 3, 10)
    mask[1, 2, 6:] = 0.0
    adv = linear_baseline_advantages(obs, rewards, mask, gamma=0.99, gae_lambda=0.95)
    for t in range(2):
        real = adv[t][mask[t] > 0]
        assert abs(real.mean().item()) < 1e-5
        assert abs(real.std(unbiased=False).item() - 1.0) < 1e-4
    assert torch.all(adv[mask == 0] == 0)
    torch.testing.assert_close(normalize_advantages(adv, mask), adv, atol=1e-5, rtol=0)


def test_centering_only_keeps_each_tasks_spread() -> None:
    """``scale=False`` (MAML's ``inner_advantages: center``): zero mean per task, spreads untouched."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 8, generator=g, dtype=torch.float64) * torch.tensor([0.1, 10.0], dtype=torch.float64).view(2, 1, 1)
    mask = torch.ones(2, 3, 8, dtype=torch.float64)
    mask[0, 1, 5:] = 0.0
    centered = normalize_advantages(x, mask, scale=False)
    for t in range(2):
        real = x[t][mask[t] > 0]
        torch.testing.assert_close(centered[t][mask[t] > 0], real - real.mean())
    assert torch.all(centered[mask == 0] == 0)
    spread = [centered[t][mask[t] > 0].std().item() for t in range(2)]
    assert spread[1] > 50 * spread[0]  # a task with little to gain keeps small advantages


def test_episode_weights_give_the_reference_per_episode_means():
    """``"episode"`` weighting (mask scaled by mean length / own length) reproduces the MAML reference
    code's ``weighted_mean`` (per-episode time means, then the mean over episodes) and its
    ``weighted_normalize``, computed here episode by episode; padding stays exactly 0."""
    from metarl.core.advantages import normalize_advantages
    from metarl.core.losses import masked_mean

    g = torch.Generator().manual_seed(5)
    lengths = torch.tensor([[10, 3, 7, 1], [10, 10, 10, 10]])
    mask = (torch.arange(10) < lengths[..., None]).double()
    x = torch.randn(2, 4, 10, generator=g, dtype=torch.float64) * 3 + 1
    x = torch.where(mask > 0, x, torch.full_like(x, 7.0))  # junk in the padding must not leak
    steps = mask.sum(-1, keepdim=True)
    weights = mask * steps.mean(dim=(-2, -1), keepdim=True) / steps
    for i in range(2):
        per_episode = [x[i, j, : lengths[i, j]] for j in range(4)]
        mean = torch.stack([e.mean() for e in per_episode]).mean()
        std = torch.stack([((e - mean) ** 2).mean() for e in per_episode]).mean().sqrt()
        torch.testing.assert_close(masked_mean(x, weights)[i], mean)
        normalized = normalize_advantages(x, weights)[i]
        for j, e in enumerate(per_episode):
            torch.testing.assert_close(normalized[j, : lengths[i, j]], (e - mean) / (std + 1e-8))
            assert torch.all(normalized[j, lengths[i, j]:] == 0)
    # with a 0/1 mask the weighting changes nothing
    torch.testing.assert_close(normalize_advantages(x[1:], weights[1:]), normalize_advantages(x[1:], mask[1:]))


def test_relative_advantages_scale_each_task_by_its_spread_ratio() -> None:
    """``inner_advantages: relative``: normalized, times ``(reference / spread) ** power`` per task;
    power 0 is plain normalization, and scaling rewards and reference alike changes nothing."""
    from metarl.core.advantages import advantage_spread, relative_advantages

    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, 9, generator=g, dtype=torch.float64) * torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64).view(3, 1, 1)
    mask = torch.ones(3, 4, 9, dtype=torch.float64)
    mask[2, 3, 4:] = 0.0
    centered = normalize_advantages(x, mask, scale=False)
    spread = advantage_spread(centered, mask).flatten()
    torch.testing.assert_close(relative_advantages(centered, mask, 1.3, power=0.0), normalize_advantages(x, mask))
    out = relative_advantages(centered, mask, 2.0, power=1.0)
    out_spread = advantage_spread(out, mask).flatten()
    torch.testing.assert_close(out_spread, 2.0 / spread, rtol=1e-6, atol=0)
    assert out_spread[0] > out_spread[1] > out_spread[2]  # the widest-spread task takes the smallest step
    torch.testing.assert_close(relative_advantages(10 * centered, mask, 20.0, power=0.5),
                               relative_advantages(centered, mask, 2.0, power=0.5))
    assert torch.all(out[mask == 0] == 0)
