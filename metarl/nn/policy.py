"""The functional policy interface every policy implements.

``forward(*inputs)`` returns distribution parameters (tensors), never a
distribution object, so one module can be run with its own weights, with any
parameter dict through ``functional_call`` (adapted MAML weights, line-search
candidates), or ``vmap``-ed over a stack of per-task weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.func import functional_call

from metarl.nn.heads import DistParams, Head

Params = Mapping[str, Tensor]


class Policy(nn.Module):
    """Base class: subclasses set ``self.head`` and implement ``forward``."""

    head: Head

    @property
    def discrete(self) -> bool:
        return self.head.discrete

    def dist_params(self, params: Params | None, *inputs: Tensor) -> DistParams:
        """Distribution parameters with the module's own weights or with ``params``."""
        if params is None:
            return self(*inputs)
        return functional_call(self, dict(params), inputs)

    def dist_params_stacked(self, stacked: Params, *inputs: Tensor) -> DistParams:
        """One batched call for all tasks: ``stacked`` and ``inputs`` lead with tasks.

        The sampler calls this once per time step for every env of every task, so it
        must be a single ``vmap`` rather than a Python loop over tasks.
        """

        def one_task(p: Params, *x: Tensor) -> DistParams:
            return functional_call(self, dict(p), x)

        return torch.vmap(one_task)(dict(stacked), *inputs)

    def distribution(self, params: Params | None, *inputs: Tensor) -> Distribution:
        """Action distribution for ``inputs`` under ``params`` (``None``: own weights)."""
        return self.head.distribution(self.dist_params(params, *inputs))

    def distribution_stacked(self, stacked: Params, *inputs: Tensor) -> Distribution:
        """Distribution with batch shape ``[tasks, ...]`` from per-task parameters."""
        return self.head.distribution(self.dist_params_stacked(stacked, *inputs))

    def log_prob(self, params: Params | None, *inputs: Tensor, actions: Tensor) -> Tensor:
        """Log-likelihood of ``actions`` (sums over action dimensions)."""
        return self.distribution(params, *inputs).log_prob(actions)

    @torch.no_grad()
    def sample(
        self,
        params: Params | None,
        *inputs: Tensor,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Actions and their log-probs; ``generator`` makes sampling reproducible."""
        out = self.dist_params(params, *inputs)
        return self._sample_out(out, deterministic, generator)

    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        stacked_params: Params | None = None,
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Act for a whole meta-batch: obs ``[T, B, obs_dim]`` -> actions ``[T, B, ...]``.

        With ``stacked_params`` (leading ``T``) each task uses its own weights in one
        vmapped call; without, the module's own weights serve every row.
        """
        if stacked_params is None:
            out = self(obs)
        else:
            out = self.dist_params_stacked(stacked_params, obs)
        return self._sample_out(out, deterministic, generator)

    def _sample_out(self, out: DistParams, deterministic: bool, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        actions = self.head.sample(out, deterministic=deterministic, generator=generator)
        return actions, self.head.distribution(out).log_prob(actions)
