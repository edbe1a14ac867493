"""Action-distribution heads shared by MLP, recurrent and SNAIL policies.

A head turns features into *distribution parameters* (plain tensors) and, in a
separate step, wraps them into a ``torch.distributions`` object. The split matters:
tensors can cross ``vmap`` boundaries and be cached (e.g. the "old" distribution of
a TRPO step), distribution objects cannot.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

DistParams = tuple[Tensor, ...]


class Head(nn.Module):
    """Interface: ``forward(features) -> DistParams``; ``distribution(DistParams)``."""

    discrete: bool

    def distribution(self, out: DistParams) -> Distribution:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(
        self, out: DistParams, *, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class GaussianHead(Head):
    """Diagonal Gaussian with a learned, state-independent log-std (as in TRPO/MAML).

    A state-independent std keeps exploration noise a slowly changing global knob,
    which is what the MAML and TRPO papers use for locomotion.
    """

    discrete = False

    def __init__(self, in_features: int, action_dim: int, *, init_std: float = 1.0) -> None:
        super().__init__()
        self.mean = nn.Linear(in_features, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))

    def forward(self, features: Tensor) -> DistParams:
        mean = self.mean(features)
        return mean, self.log_std.expand_as(mean)

    def distribution(self, out: DistParams) -> Distribution:
        mean, log_std = out
        # validate_args=False: validation does data-dependent checks that break vmap.
        return Independent(Normal(mean, log_std.exp(), validate_args=False), 1, validate_args=False)

    def sample(self, out: DistParams, *, deterministic: bool = False, generator: torch.Generator | None = None) -> Tensor:
        mean, log_std = out
        if deterministic:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + log_std.exp() * noise


class StateStdGaussianHead(GaussianHead):
    """Diagonal Gaussian whose log-std, like its mean, is a linear function of the features.

    Why for RL²: a trial first searches, then exploits what it found. A single global std must
    serve both; a state-dependent one lets the memory widen the noise while it is still looking
    for the task and narrow it once it has found it. The Meta-World+ reference RL² uses this
    head (its ``std_type=MLP_HEAD``). The log-std's bias starts at ``log(init_std)`` and its
    weights at zero, so the initial policy's noise is exactly that of :class:`GaussianHead`;
    it is clamped to ``[log 1e-6, 2]`` (the reference's floor) so a runaway output cannot make
    the density degenerate.

    With ``tanh`` both outputs go through tanh, as the reference's ``activate_head=True`` does: the mean
    lies in [-1, 1] (Meta-World's action box) and the std in [1/e, e], so the noise can never collapse
    below 0.37 however confident the memory becomes (without it, on ML1 reach the entropy fell from 2.75
    to -0.8 in 3M steps). The log-std bias then starts at ``atanh(log(init_std))``, the same initial noise.
    """

    LOG_STD_BOUNDS = (math.log(1e-6), 2.0)

    def __init__(self, in_features: int, action_dim: int, *, init_std: float = 1.0, tanh: bool = False) -> None:
        super().__init__(in_features, action_dim, init_std=init_std)
        if tanh and not abs(math.log(init_std)) < 1.0:
            raise ValueError(f"a tanh head's std lies in (1/e, e); init_std={init_std} is outside it")
        del self.log_std  # replaced by a layer on the features
        self.tanh = tanh
        self.log_std_layer = nn.Linear(in_features, action_dim)
        nn.init.zeros_(self.log_std_layer.weight)
        nn.init.constant_(self.log_std_layer.bias, math.atanh(math.log(init_std)) if tanh else math.log(init_std))

    def forward(self, features: Tensor) -> DistParams:
        if self.tanh:
            return torch.tanh(self.mean(features)), torch.tanh(self.log_std_layer(features))
        return self.mean(features), self.log_std_layer(features).clamp(*self.LOG_STD_BOUNDS)


class CategoricalHead(Head):
    """Categorical over ``n_actions`` discrete actions (logits from a linear layer)."""

    discrete = True

    def __init__(self, in_features: int, n_actions: int) -> None:
        super().__init__()
        self.logits = nn.Linear(in_features, n_actions)

    def forward(self, features: Tensor) -> DistParams:
        return (self.logits(features),)

    def distribution(self, out: DistParams) -> Distribution:
        return Categorical(logits=out[0], validate_args=False)

    def sample(self, out: DistParams, *, deterministic: bool = False, generator: torch.Generator | None = None) -> Tensor:
        logits = out[0]
        if deterministic:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits, dim=-1).reshape(-1, logits.shape[-1])
        return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1])


def make_head(in_features: int, action_dim: int, *, discrete: bool, init_std: float = 1.0,
              state_std: bool = False, tanh_head: bool = False) -> Head:
    """Gaussian head for continuous actions (state-dependent std with ``state_std``, both outputs through
    tanh with ``tanh_head``), categorical for discrete ones (where ``state_std`` means nothing and is refused)."""
    if tanh_head and not state_std:
        raise ValueError("tanh_head bounds the state-dependent head; it needs state_std")
    if discrete:
        if state_std:
            raise ValueError("state_std applies to Gaussian (continuous-action) heads; this action space is discrete")
        return CategoricalHead(in_features, action_dim)
    if state_std:
        return StateStdGaussianHead(in_features, action_dim, init_std=init_std, tanh=tanh_head)
    return GaussianHead(in_features, action_dim, init_std=init_std)
