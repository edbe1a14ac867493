"""Conjugate gradient for the TRPO natural-gradient direction."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    *,
    iters: int = 10,
    residual_tol: float = 1e-10,
    with_product: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A``.

    TRPO only has ``A`` (the Fisher matrix) as a product ``v -> A v``, and a few
    iterations give a good enough direction, so the matrix is never formed. ``with_product``
    also returns ``A x``, accumulated from the products the iterations already computed
    (``x = sum alpha_k p_k``), which spares TRPO one more product for the step's curvature.
    """
    x = torch.zeros_like(b)
    ax = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr <= residual_tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        ax = ax + alpha * ap
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return (x, ax) if with_product else x
