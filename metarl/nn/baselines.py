"""Learned value estimates: an MLP value function.

The parameter-free linear feature baseline is tensor math and lives in
:mod:`metarl.core.baselines` (re-exported by :mod:`metarl.nn`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from metarl.nn.mlp import mlp


class MLPValueFunction(nn.Module):
    """State-value network ``V(obs)``; works with ``functional_call`` and ``vmap`` too."""

    def __init__(
        self,
        obs_dim: int,
        hidden_sizes: Sequence[int] = (64, 64),
        *,
        activation: type[nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, 1, activation=activation)

    def forward(self, obs: Tensor) -> Tensor:
        """Values with the observation's leading shape (trailing 1 squeezed)."""
        return self.net(obs).squeeze(-1)
