"""Feed-forward (memoryless) policies used by MAML and Reptile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar

from torch import Tensor, nn

from metarl.nn.heads import CategoricalHead, DistParams, GaussianHead
from metarl.nn.policy import Policy


def mlp(
    in_features: int,
    hidden_sizes: Sequence[int],
    out_features: int | None = None,
    *,
    activation: type[nn.Module] = nn.Tanh,
) -> nn.Sequential:
    """Hidden layers with ``activation`` and, if ``out_features``, a final linear layer.

    Tanh is the default because the MAML/TRPO reference setups use it; ReLU-style
    activations have a zero second derivative that makes second-order MAML degenerate.
    """
    layers: list[nn.Module] = []
    size = in_features
    for hidden in hidden_sizes:
        layers += [nn.Linear(size, hidden), activation()]
        size = hidden
    if out_features is not None:
        layers.append(nn.Linear(size, out_features))
    return nn.Sequential(*layers)


WeightInit = Literal["torch", "xavier"]
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def init_linear_(module: ModuleT, scheme: WeightInit) -> ModuleT:
    """Re-initialize every ``nn.Linear`` of ``module`` in place; returns it.

    ``"torch"`` keeps PyTorch's default (weights and biases U(+-1/sqrt(fan_in))). ``"xavier"`` is
    the MAML reference code's choice: Xavier-uniform weights and zero biases, so a tanh policy's
    mean is exactly 0 at the origin and odd in the input. For MAML this matters: a random offset of
    the mean at initialization is something the inner step must undo on every task.
    """
    if scheme == "torch":
        return module
    if scheme != "xavier":
        raise ValueError(f"weight init {scheme!r} is unknown; allowed: torch, xavier")
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return module


class _MLPPolicy(Policy):
    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int], activation: type[nn.Module]) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.body = mlp(obs_dim, hidden_sizes, activation=activation)
        self.feature_dim = hidden_sizes[-1] if hidden_sizes else obs_dim

    def forward(self, obs: Tensor) -> DistParams:
        return self.head(self.body(obs))


class GaussianMLPPolicy(_MLPPolicy):
    """Continuous actions: MLP mean, learned state-independent log-std."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (64, 64),
        *,
        activation: type[nn.Module] = nn.Tanh,
        init_std: float = 1.0,
    ) -> None:
        super().__init__(obs_dim, hidden_sizes, activation)
        self.action_dim = action_dim
        self.head = GaussianHead(self.feature_dim, action_dim, init_std=init_std)


class CategoricalMLPPolicy(_MLPPolicy):
    """Discrete actions: MLP logits."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: Sequence[int] = (64, 64),
        *,
        activation: type[nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__(obs_dim, hidden_sizes, activation)
        self.action_dim = n_actions
        self.head = CategoricalHead(self.feature_dim, n_actions)
