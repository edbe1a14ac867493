"""Conjugate gradient and the all-or-nothing TRPO step."""

from __future__ import annotations

import pytest
import torch

from metarl.core import (
    MamlObjective,
    NonFiniteError,
    TaskBatch,
    conjugate_gradient,
    fisher_vector_product,
    module_params,
    trpo_step,
)
from metarl.nn import GaussianMLPPolicy


def test_conjugate_gradient_solves_spd_system() -> None:
    g = torch.Generator().manual_seed(0)
    n = 25
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    spd = a @ a.T + n * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: spd @ v, b, iters=n, residual_tol=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(spd, b), atol=1e-9, rtol=0)


def test_fisher_vector_product_equals_kl_hessian() -> None:
    g = torch.Generator().manual_seed(1)
    m = torch.randn(4, 4, generator=g, dtype=torch.float64)
    h = m @ m.T + torch.eye(4, dtype=torch.float64)
    p = {"w": torch.zeros(4, dtype=torch.float64, requires_grad=True)}
    kl = 0.5 * p["w"] @ h @ p["w"] + (p["w"] ** 3).sum()  # Hessian at 0 is h
    v = torch.randn(4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fisher_vector_product(kl, p, damping=0.1)(v), h @ v + 0.1 * v)


def _params(n: int = 20) -> dict[str, torch.Tensor]:
    return {"a": torch.zeros(n // 2, dtype=torch.float64), "b": torch.zeros(n // 2, dtype=torch.float64)}


def _flat(p: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([p["a"], p["b"]])


def test_trpo_backtracks_until_kl_bound_holds() -> None:
    params = _params()

    def loss_and_kl(p):  # noqa: ANN001, ANN202
        d = _flat(p)
        quad = 0.5 * (d**2).sum()
        return -(d * torch.arange(1.0, 21.0, dtype=d.dtype)).sum(), quad + 1e3 * quad**2  # KL model is too optimistic

    new, info = trpo_step(params, loss_and_kl, max_kl=0.01)
    assert info.accepted and info.backtracks > 0
    loss, kl = loss_and_kl(new)
    assert kl.item() <= 0.01 and info.kl <= 0.01
    assert loss.item() < info.loss_before


def test_trpo_rejects_step_that_worsens_surrogate_and_leaves_params() -> None:
    params = _params()
    before = {k: v.clone() for k, v in params.items()}

    def loss_and_kl(p):  # noqa: ANN001, ANN202
        d = _flat(p)
        return -d.sum() + 1e6 * (d**2).sum(), 0.5 * (d**2).sum()  # linear model lies at every step size

    new, info = trpo_step(params, loss_and_kl, max_kl=0.01, max_backtracks=10)
    assert not info.accepted and "line search failed" in info.reason
    for k in params:
        assert torch.equal(new[k], before[k]) and torch.equal(params[k], before[k])
    assert info.loss_after == info.loss_before


def test_trpo_raises_on_non_finite_loss_and_keeps_params() -> None:
    params = _params()
    before = {k: v.clone() for k, v in params.items()}

    def loss_and_kl(p):  # noqa: ANN001, ANN202
        d = _flat(p)
        return (d * float("nan")).sum(), 0.5 * (d**2).sum()

    with pytest.raises(NonFiniteError, match="TRPO surrogate loss"):
        trpo_step(params, loss_and_kl)
    for k in params:
        assert torch.equal(params[k], before[k])


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_maml_trpo_step_respects_kl_and_improves(mode: str) -> None:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, (8,)).double()
    g = torch.Generator().manual_seed(5)

    def batch() -> TaskBatch:
        shape = (4, 3, 10)
        return TaskBatch(
            torch.randn(*shape, 3, generator=g, dtype=torch.float64),
            torch.randn(*shape, 2, generator=g, dtype=torch.float64),
            torch.randn(*shape, generator=g, dtype=torch.float64),
            torch.ones(shape, dtype=torch.float64),
        )

    pre, post = batch(), batch()
    meta = module_params(policy, detach=True)
    objective = MamlObjective(policy, meta, [pre], post, inner_lr=0.1, batched=mode)
    new, info = trpo_step(meta, objective, max_kl=0.005)
    assert info.accepted
    with torch.no_grad():
        loss_new, kl_new = objective(new)
        loss_old, kl_old = objective(meta)
    assert kl_old.item() == pytest.approx(0.0, abs=1e-12)
    assert 0.0 < kl_new.item() <= 0.005
    assert loss_new.item() < loss_old.item()


@pytest.mark.parametrize("how", ["nan", "raise"])
def test_trpo_backtracks_past_non_finite_candidates(how: str) -> None:
    weights = torch.arange(1.0, 21.0, dtype=torch.float64)

    def loss_and_kl(p):  # noqa: ANN001, ANN202
        d = _flat(p)
        loss = -(d * weights).sum()
        if d.detach().abs().max() > 0.01:  # overlong steps overflow
            if how == "raise":
                raise NonFiniteError("non-finite post-adaptation surrogate loss in task index(es) [0]")
            loss = loss * float("nan")
        return loss, 0.5 * (d**2).sum()

    new, info = trpo_step(_params(), loss_and_kl, max_kl=0.01)
    assert info.accepted and info.backtracks >= 5
    assert _flat(new).abs().max() <= 0.01
