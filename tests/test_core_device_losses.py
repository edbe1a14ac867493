"""Device resolution and the policy-gradient losses."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from metarl.core import masked_mean, pg_loss, ppo_clip_loss, resolve_device, surrogate_loss
from metarl.core.losses import pointwise_kl


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="invalid device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="invalid device"):
        resolve_device("cuda:x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_resolve_device_cuda_unavailable_is_an_error() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_masked_mean_ignores_padding_per_task() -> None:
    x = torch.tensor([[[1.0, 2.0, float("inf")]], [[3.0, float("nan"), 100.0]]])
    mask = torch.tensor([[[1.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([1.5, 3.0]))


def test_pg_and_surrogate_share_gradient_at_old_policy() -> None:
    logp = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    adv = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.ones(2, 3, 4, dtype=torch.float64)
    (g_pg,) = torch.autograd.grad(pg_loss(logp, adv, mask).sum(), logp)
    (g_sur,) = torch.autograd.grad(surrogate_loss(logp, logp.detach(), adv, mask).sum(), logp)
    torch.testing.assert_close(g_pg, g_sur)


def test_ppo_clip_loss_by_hand() -> None:
    old = torch.zeros(1, 1, 4)
    new = torch.log(torch.tensor([[[1.5, 0.5, 1.1, 0.7]]]))
    adv = torch.tensor([[[1.0, 1.0, -1.0, -1.0]]])
    # min(r A, clip(r) A): [1.2, 0.5, -1.1, -0.8]
    expected = -torch.tensor([1.2, 0.5, -1.1, -0.8]).mean()
    torch.testing.assert_close(ppo_clip_loss(new, old, adv, torch.ones(1, 1, 4), clip=0.2)[0], expected)


def test_categorical_kl_matches_torch_and_works_in_vmap() -> None:
    logits_p, logits_q = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    ref = kl_divergence(Categorical(logits=logits_p), Categorical(logits=logits_q))
    ours = torch.vmap(lambda a, b: pointwise_kl(Categorical(logits=a), Categorical(logits=b)))(logits_p, logits_q)
    torch.testing.assert_close(ours, ref)
