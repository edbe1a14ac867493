"""PEARL's probabilistic context encoder: transitions -> a Gaussian belief over the latent task variable.

Rakelly et al. 2019, section 4.1: each context transition ``c_n = (s, a, r, s')`` is mapped by a
shared network to a Gaussian factor ``Psi(z | c_n) = N(mu_n, sigma_n^2)``, and the posterior is
their normalized product, ``q(z | c_1..N) ∝ prod_n Psi(z | c_n)``. A product of Gaussians is a
Gaussian whose precision is the sum of the factors' precisions and whose mean is the
precision-weighted mean of theirs. So the belief sharpens with every transition, and it does not
depend on the order the transitions come in (the permutation invariance that matching and
prototypical networks get from averaging).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from metarl.nn.mlp import mlp

__all__ = ["ContextEncoder", "kl_to_standard_normal", "product_of_gaussians", "sample_latent"]

#: Smallest factor variance: PEARL's clamp, which keeps a confident factor from dividing by zero.
MIN_VARIANCE = 1e-7


def product_of_gaussians(mu: Tensor, var: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean and variance of the normalized product of the Gaussian factors along dim ``-2``.

    ``mu``, ``var``: ``[..., N, L]`` (``N`` factors of an ``L``-dim diagonal Gaussian); ``mask``
    ``[..., N]`` (1 for a real transition, 0 for padding). The product's precision is the sum of
    the precisions. With no real factor the result is the standard normal prior.
    """
    precision = 1.0 / var.clamp(min=MIN_VARIANCE)
    if mask is not None:
        precision = precision * mask.unsqueeze(-1).to(precision.dtype)
    total = precision.sum(-2)
    empty = total <= 0
    post_var = torch.where(empty, torch.ones_like(total), 1.0 / total.clamp(min=1e-30))
    post_mu = torch.where(empty, torch.zeros_like(total), post_var * (precision * mu).sum(-2))
    return post_mu, post_var


def sample_latent(mu: Tensor, var: Tensor, generator: torch.Generator) -> Tensor:
    """``z ~ N(mu, var)`` by reparameterization (gradients flow to ``mu`` and ``var``).

    The noise is drawn on the generator's device and moved to ``mu``'s, so a seed fixes ``z``
    whatever device the encoder runs on.
    """
    noise = torch.randn(mu.shape, generator=generator, device=generator.device, dtype=mu.dtype)
    return mu + var.sqrt() * noise.to(mu.device)


def kl_to_standard_normal(mu: Tensor, var: Tensor) -> Tensor:
    """``KL(N(mu, var) || N(0, I))`` summed over the last dim: the paper's information bottleneck term."""
    return 0.5 * (var + mu**2 - 1.0 - var.log()).sum(-1)


class ContextEncoder(nn.Module):
    """Maps context transitions ``[..., N, context_dim]`` to the posterior over ``z`` (``latent_dim``)."""

    def __init__(self, context_dim: int, latent_dim: int, hidden_sizes: Sequence[int] = (200, 200, 200)) -> None:
        super().__init__()
        self.context_dim, self.latent_dim = context_dim, latent_dim
        self.net = mlp(context_dim, hidden_sizes, 2 * latent_dim, activation=nn.ReLU)

    def factors(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """Each transition's factor ``(mu_n, sigma_n^2)``, ``[..., N, L]`` each."""
        out = self.net(context)
        mu, raw = out[..., : self.latent_dim], out[..., self.latent_dim:]
        return mu, F.softplus(raw).clamp(min=MIN_VARIANCE)

    def posterior(self, context: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``q(z | context)``: mean and variance ``[..., L]``."""
        return product_of_gaussians(*self.factors(context), mask)
