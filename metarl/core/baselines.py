"""The MAML/garage linear feature baseline: a per-task least-squares value estimate.

It lives in :mod:`metarl.core` beside :mod:`~metarl.core.gae` and
:mod:`~metarl.core.advantages` because it is pure tensor math (no parameters, no
``nn.Module``); :mod:`metarl.nn` re-exports it next to the learned value function.
"""

from __future__ import annotations

import torch
from torch import Tensor


class LinearFeatureBaseline:
    """Per-task linear regression of returns on hand-made features (Duan et al. 2016).

    MAML re-fits the baseline on each task's fresh samples at every inner step, so it
    must be cheap and parameter-free between fits: a regularized least-squares
    solve. Features are ``[obs, obs², t/100, (t/100)², (t/100)³, 1]`` with ``t`` the
    step index inside the episode and ``obs`` clipped to [-10, 10] as in garage.
    Everything is batched over any leading dimensions (normally ``tasks``): one
    independent fit per task, with padded steps (``mask == 0``) ignored.
    """

    def __init__(self, reg_coeff: float = 1e-5, *, max_retries: int = 5) -> None:
        self.reg_coeff = reg_coeff
        self.max_retries = max_retries

    @staticmethod
    def features(obs: Tensor, mask: Tensor) -> Tensor:
        """Features ``[..., episodes, time, 2 * obs_dim + 4]``, zero on padded steps."""
        o = obs.clamp(-10.0, 10.0)
        length = obs.shape[-2]
        t = (torch.arange(length, device=obs.device, dtype=obs.dtype) / 100.0).unsqueeze(-1)
        t = t.expand(*obs.shape[:-1], 1)
        feats = torch.cat([o, o * o, t, t * t, t * t * t, torch.ones_like(t)], dim=-1)
        m = mask.unsqueeze(-1).to(obs.dtype)
        return torch.where(m > 0, feats * m, torch.zeros_like(feats))  # padding may hold NaN

    def fit(self, obs: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
        """Coefficients ``[..., n_features]`` fitted on ``returns [..., episodes, time]``.

        Solved in float64: the normal equations of squared observation features are
        badly conditioned in float32. Where a task's solution is not finite its
        regularization is multiplied by 10 and the solve retried (garage's rule).
        """
        feats = self.features(obs, mask).double().flatten(-3, -2)  # [..., N, F]
        target = torch.where(mask > 0, returns * mask, torch.zeros_like(returns))
        target = target.double().flatten(-2).unsqueeze(-1)  # [..., N, 1]
        gram = feats.transpose(-1, -2) @ feats
        rhs = feats.transpose(-1, -2) @ target
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        reg = torch.full(gram.shape[:-2], self.reg_coeff, dtype=gram.dtype, device=gram.device)
        coeffs = torch.full_like(rhs, float("nan"))
        for _ in range(self.max_retries):
            sol, info = torch.linalg.solve_ex(gram + reg[..., None, None] * eye, rhs)
            ok = (info == 0) & torch.isfinite(sol).all(dim=(-2, -1))
            todo = ~torch.isfinite(coeffs).all(dim=(-2, -1))
            coeffs = torch.where((ok & todo)[..., None, None], sol, coeffs)
            if torch.isfinite(coeffs).all():
                break
            reg = torch.where(ok, reg, reg * 10.0)
        return coeffs.squeeze(-1).to(obs.dtype)

    def predict(self, coeffs: Tensor, obs: Tensor, mask: Tensor) -> Tensor:
        """Values ``[..., episodes, time]`` (zero on padded steps)."""
        feats = self.features(obs, mask)
        return (feats @ coeffs.unsqueeze(-2).unsqueeze(-1).to(feats.dtype)).squeeze(-1)

    def fit_predict(self, obs: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
        """Fit on ``returns`` and predict on the same steps (MAML's usage)."""
        return self.predict(self.fit(obs, returns, mask), obs, mask)
