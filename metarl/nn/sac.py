"""Soft actor-critic networks: a tanh-squashed Gaussian actor and a Q-function (Haarnoja et al. 2018).

The on-policy agents' Gaussian policies (:mod:`metarl.nn.mlp`) sample unbounded actions and let the
sampler clip them. SAC differentiates through the sampled action (the reparameterization trick),
so its actor squashes a Gaussian with ``tanh`` and corrects the log-density for the squashing.
It then rescales to the action space's bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from metarl.nn.mlp import mlp

__all__ = ["QNetwork", "TanhGaussianActor"]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class TanhGaussianActor(nn.Module):
    """``pi(a | x)``: ``a = low + (tanh(u) + 1) / 2 * (high - low)``, ``u ~ N(mean(x), std(x)^2)``."""

    def __init__(self, in_dim: int, action_low: Sequence[float], action_high: Sequence[float],
                 hidden_sizes: Sequence[int] = (300, 300, 300)) -> None:
        super().__init__()
        act_dim = len(action_low)
        self.net = mlp(in_dim, hidden_sizes, 2 * act_dim, activation=nn.ReLU)
        low = torch.as_tensor(action_low, dtype=torch.float32)
        high = torch.as_tensor(action_high, dtype=torch.float32)
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("half_range", (high - low) / 2)
        self.act_dim = act_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-squash mean and log-std ``[..., act_dim]`` each (log-std clamped as in SAC)."""
        out = self.net(x)
        mean, log_std = out[..., : self.act_dim], out[..., self.act_dim:]
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, x: Tensor, *, deterministic: bool = False, generator: torch.Generator | None = None,
               noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """An action in the space's bounds and its log-density (``[...]``), differentiable in the weights.

        ``noise``: the standard normal draw to use (``[..., act_dim]``), else one from ``generator``.
        """
        mean, log_std = self(x)
        if deterministic:
            u = mean
        else:
            if noise is None:
                noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            u = mean + log_std.exp() * noise
        gauss = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2), in the stable form 2 (log 2 - u - softplus(-2u)), plus the rescaling's log-Jacobian
        squash = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1) + self.half_range.log().sum()
        action = self.center + self.half_range * torch.tanh(u)
        return action, gauss - squash


class QNetwork(nn.Module):
    """``Q(x, a)``: one scalar per row."""

    def __init__(self, in_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (300, 300, 300)) -> None:
        super().__init__()
        self.net = mlp(in_dim + act_dim, hidden_sizes, 1, activation=nn.ReLU)

    def forward(self, x: Tensor, action: Tensor) -> Tensor:
        return self.net(torch.cat([x, action], dim=-1)).squeeze(-1)
