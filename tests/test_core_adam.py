"""Functional Adam on stacked parameters == one torch.optim.Adam per task."""

from __future__ import annotations

import pytest
import torch

from metarl.core import NonFiniteError, adam_init, adam_step, clip_grad_norm_per_task

TASKS = 4
SHAPES = {"w": (3, 5), "b": (5,)}


def _grads(step: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    scale = torch.tensor([0.01, 1.0, 10.0, 100.0], dtype=torch.float64)  # clipping hits some tasks only
    return {
        k: torch.randn(TASKS, *s, generator=g, dtype=torch.float64) * scale.view(-1, *([1] * len(s))) for k, s in SHAPES.items()
    }


@pytest.mark.parametrize("max_grad_norm", [None, 1.0])
def test_functional_adam_equals_per_task_torch_adam(max_grad_norm: float | None) -> None:
    g = torch.Generator().manual_seed(0)
    init = {k: torch.randn(TASKS, *s, generator=g, dtype=torch.float64) for k, s in SHAPES.items()}
    refs = [{k: torch.nn.Parameter(v[i].clone()) for k, v in init.items()} for i in range(TASKS)]
    opts = [torch.optim.Adam(list(r.values()), lr=0.01) for r in refs]
    params, state = dict(init), adam_init(init)
    for step in range(5):
        grads = _grads(step)
        params, state, norms = adam_step(params, grads, state, lr=0.01, max_grad_norm=max_grad_norm)
        for i in range(TASKS):
            for k, p in refs[i].items():
                p.grad = grads[k][i].clone()
            ref_norm = torch.nn.utils.clip_grad_norm_(
                list(refs[i].values()), max_grad_norm if max_grad_norm is not None else float("inf")
            )
            torch.testing.assert_close(norms[i], ref_norm)
            opts[i].step()
    for i in range(TASKS):
        for k, p in refs[i].items():
            torch.testing.assert_close(params[k][i], p.detach(), atol=1e-12, rtol=0)
    assert state.step == 5


def test_clipping_is_per_task_not_global() -> None:
    grads = {"w": torch.stack([torch.full((2,), 0.1), torch.full((2,), 100.0)])}
    clipped, norms = clip_grad_norm_per_task(grads, 1.0)
    torch.testing.assert_close(clipped["w"][0], grads["w"][0])  # small task untouched
    assert clipped["w"][1].norm().item() == pytest.approx(1.0, rel=1e-5)
    assert norms.shape == (2,)


def test_non_finite_gradient_raises_and_changes_nothing() -> None:
    params = {k: torch.zeros(TASKS, *s) for k, s in SHAPES.items()}
    state = adam_init(params)
    grads = {k: torch.ones(TASKS, *s) for k, s in SHAPES.items()}
    grads["b"][2, 1] = float("inf")
    with pytest.raises(NonFiniteError, match=r"gradient 'b' in task index\(es\) \[2\]"):
        adam_step(params, grads, state, lr=0.1)
    assert state.step == 0
    assert all(torch.equal(v, torch.zeros_like(v)) for v in params.values())
    assert all(torch.equal(v, torch.zeros_like(v)) for v in state.exp_avg.values())
