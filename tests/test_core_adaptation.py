"""Inner-loop adaptation and the MAML meta-gradient: batched == loop, exact derivatives."""

from __future__ import annotations

import pytest
import torch

from metarl.core import (
    MamlObjective,
    NonFiniteError,
    TaskBatch,
    adapt,
    inner_step,
    module_params,
    replicate_params,
    resolve_batched,
    task_grads,
)
from metarl.core.losses import ppo_clip_loss, surrogate_loss
from metarl.nn import CategoricalMLPPolicy, GaussianMLPPolicy

T, E, L, OBS = 3, 2, 6, 3


def _batch(discrete: bool, seed: int, act_dim: int = 2) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, E, L, OBS, generator=g, dtype=torch.float64)
    if discrete:
        actions = torch.randint(0, act_dim, (T, E, L), generator=g)
    else:
        actions = torch.randn(T, E, L, act_dim, generator=g, dtype=torch.float64)
    advantages = torch.randn(T, E, L, generator=g, dtype=torch.float64)
    mask = torch.ones(T, E, L, dtype=torch.float64)
    mask[0, 1, 4:] = 0.0  # unequal episode lengths
    mask[2, 0, 2:] = 0.0
    return TaskBatch(obs, actions, advantages, mask)


def _policy(discrete: bool, hidden: tuple[int, ...] = (8,)) -> torch.nn.Module:
    torch.manual_seed(0)
    policy = CategoricalMLPPolicy(OBS, 3, hidden) if discrete else GaussianMLPPolicy(OBS, 2, hidden, init_std=0.7)
    return policy.double()


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_path_equals_per_task_loop(discrete: bool, first_order: bool) -> None:
    policy = _policy(discrete)
    act = 3 if discrete else 2
    pre = [_batch(discrete, 1, act), _batch(discrete, 2, act)]  # two inner steps
    post = _batch(discrete, 3, act)
    meta = module_params(policy, detach=True)
    results = {}
    for mode in ("vmap", "loop"):
        obj = MamlObjective(policy, meta, pre, post, inner_lr=0.3, first_order=first_order, batched=mode)
        params = {k: v.clone().requires_grad_() for k, v in meta.items()}
        adapted = obj.adapted_params(params)
        losses, kls = obj.task_terms(params)
        grads = torch.autograd.grad(losses.mean(), list(params.values()))
        _, inner_losses = inner_step(policy, replicate_params(meta, T), pre[0], lr=0.3, batched=mode)
        results[mode] = (adapted, losses, grads, inner_losses)
    (a_v, l_v, g_v, i_v), (a_l, l_l, g_l, i_l) = results["vmap"], results["loop"]
    for k in a_v:
        torch.testing.assert_close(a_v[k], a_l[k], atol=1e-5, rtol=0)
        assert not torch.allclose(a_v[k], replicate_params(meta, T)[k]), "adaptation must move parameters"
    torch.testing.assert_close(l_v, l_l, atol=1e-5, rtol=0)
    torch.testing.assert_close(i_v, i_l, atol=1e-5, rtol=0)
    for gv, gl in zip(g_v, g_l, strict=True):
        torch.testing.assert_close(gv, gl, atol=1e-5, rtol=0)
        assert gv.abs().max() > 0


def test_loop_path_matches_independent_reference() -> None:
    """Guards against both paths sharing a bug: one task done by hand with a module copy."""
    policy = _policy(False)
    batch = _batch(False, 7)
    adapted = adapt(policy, replicate_params(module_params(policy, detach=True), T), batch, lr=0.5, batched="loop")
    for i in range(T):
        clone = _policy(False)
        dist = clone.distribution(None, batch.obs[i])
        m = batch.mask[i]
        loss = -(dist.log_prob(batch.actions[i]) * batch.advantages[i] * m).sum() / m.sum()
        loss.backward()
        for name, p in clone.named_parameters():
            torch.testing.assert_close(adapted[name][i], p.detach() - 0.5 * p.grad, atol=1e-10, rtol=0)


def _post_loss_fn(policy, post: TaskBatch, old_logp: torch.Tensor):  # noqa: ANN001, ANN202
    def loss_of_adapted(adapted: dict) -> torch.Tensor:
        logp = policy.distribution_stacked(adapted, post.obs).log_prob(post.actions)
        return surrogate_loss(logp, old_logp, post.advantages, post.mask).mean()

    return loss_of_adapted


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_second_order_meta_gradient_matches_finite_differences(mode: str) -> None:
    policy = _policy(False, hidden=(3,))
    pre, post = _batch(False, 11), _batch(False, 12)
    meta = module_params(policy, detach=True)
    obj = MamlObjective(policy, meta, [pre], post, inner_lr=0.5, batched=mode)
    analytic = obj.meta_gradient(meta)
    eps = 1e-6
    for name, value in meta.items():
        numeric = torch.zeros_like(value)
        for idx in range(value.numel()):
            for sign in (1.0, -1.0):
                shifted = dict(meta)
                bumped = value.clone().reshape(-1)
                bumped[idx] += sign * eps
                shifted[name] = bumped.view_as(value)
                with torch.no_grad():
                    numeric.view(-1)[idx] += sign * obj(shifted)[0] / (2 * eps)
        torch.testing.assert_close(analytic[name], numeric, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_first_order_drops_exactly_the_second_order_term(mode: str) -> None:
    policy = _policy(False)
    pre, post = _batch(False, 21), _batch(False, 22)
    meta = module_params(policy, detach=True)
    first = MamlObjective(policy, meta, [pre], post, inner_lr=0.5, first_order=True, batched=mode)
    second = MamlObjective(policy, meta, [pre], post, inner_lr=0.5, first_order=False, batched=mode)
    g_first, g_second = first.meta_gradient(meta), second.meta_gradient(meta)

    # FOMAML: gradient of the post loss w.r.t. the adapted parameters, evaluated there,
    # summed over tasks (the replicated meta-parameters fan out to every task).
    adapted = {k: v.detach().requires_grad_() for k, v in first.adapted_params(meta).items()}
    post_loss = _post_loss_fn(policy, post, first.old_log_probs)(adapted)
    grads_at_adapted = torch.autograd.grad(post_loss, list(adapted.values()))
    differs = False
    for name, g_adapted in zip(adapted, grads_at_adapted, strict=True):
        torch.testing.assert_close(g_first[name], g_adapted.sum(0), atol=1e-10, rtol=0)
        differs |= not torch.allclose(g_first[name], g_second[name], atol=1e-6)
    assert differs, "second-order meta-gradient should differ from the first-order one"


def test_resolve_batched_rules() -> None:
    assert resolve_batched("vmap", "cpu", 10**6) == "vmap"
    assert resolve_batched("loop", "cpu", 1) == "loop"
    assert resolve_batched("auto", "cpu", 200) == "vmap"
    assert resolve_batched("auto", "cpu", 5000) == "loop"
    assert resolve_batched("auto", "cuda", 5000) == "vmap"
    with pytest.raises(ValueError, match="batched"):
        resolve_batched("fast", "cpu")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_non_finite_inner_gradient_names_task_and_keeps_params(mode: str) -> None:
    policy = _policy(False)
    batch = _batch(False, 31)
    advantages = batch.advantages.clone()
    advantages[1, 0, 0] = float("nan")
    bad = batch._replace(advantages=advantages)
    params = {k: v.clone() for k, v in replicate_params(module_params(policy, detach=True), T).items()}
    before = {k: v.clone() for k, v in params.items()}
    with pytest.raises(NonFiniteError, match=r"inner-loop (loss|gradient).*task index\(es\) \[1\]"):
        inner_step(policy, params, bad, lr=0.1, batched=mode)
    for k in params:
        assert torch.equal(params[k], before[k])


def test_non_finite_post_loss_is_reported() -> None:
    policy = _policy(False)
    pre, post = _batch(False, 41), _batch(False, 42)
    advantages = post.advantages.clone()
    advantages[2, 1, 1] = float("inf")
    meta = module_params(policy, detach=True)
    obj = MamlObjective(policy, meta, [pre], post._replace(advantages=advantages), inner_lr=0.1)
    with pytest.raises(NonFiniteError, match=r"post-adaptation surrogate loss.*\[2\]"):
        obj.meta_gradient(meta)


def test_task_grads_custom_loss_vmap_equals_loop() -> None:
    """Reptile's inner PPO goes through the same per-task gradient helper."""
    policy = _policy(True)
    batch = _batch(True, 51, 3)
    old_logp = torch.randn(T, E, L, dtype=torch.float64) * 0.1 - 1.0

    def ppo(p: dict, b: tuple) -> torch.Tensor:
        data, old = b
        logp = policy.distribution(p, data.obs).log_prob(data.actions)
        return ppo_clip_loss(logp, old, data.advantages, data.mask, clip=0.1)

    params = {k: v.clone() for k, v in replicate_params(module_params(policy, detach=True), T).items()}
    g_v, l_v = task_grads(ppo, params, (batch, old_logp), mode="vmap")
    g_l, l_l = task_grads(ppo, params, (batch, old_logp), mode="loop")
    torch.testing.assert_close(l_v, l_l, atol=1e-10, rtol=0)
    for k in g_v:
        torch.testing.assert_close(g_v[k], g_l[k], atol=1e-10, rtol=0)
        assert not g_v[k].requires_grad
    assert any(g.abs().max() > 0 for g in g_v.values())


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_frozen_std_is_kept_and_treated_as_a_constant(mode: str) -> None:
    """``frozen``: the log-std is not adapted, and the meta-gradient reaches it only through the
    post-adaptation policy: the same as adapting the other weights with the std detached."""
    policy = _policy(False, hidden=(3,))
    pre, post = _batch(False, 31), _batch(False, 32)
    meta = module_params(policy, detach=True)
    frozen = frozenset({"head.log_std"})
    adapted = adapt(policy, replicate_params(meta, T), pre, lr=0.5, batched=mode, frozen=frozen)
    torch.testing.assert_close(adapted["head.log_std"], replicate_params(meta, T)["head.log_std"], atol=0, rtol=0)
    unfrozen = adapt(policy, replicate_params(meta, T), pre, lr=0.5, batched=mode)
    assert not torch.allclose(unfrozen["head.log_std"], adapted["head.log_std"])

    obj = MamlObjective(policy, meta, [pre], post, inner_lr=0.5, batched=mode, frozen=frozen)
    got = obj.meta_gradient(meta)

    def by_hand(params):  # noqa: ANN001, ANN202 - adapt the other weights with the std as a constant, by hand
        stacked = replicate_params(params, T)
        consts = {k: (v.detach() if k in frozen else v) for k, v in stacked.items()}
        grads = [torch.autograd.grad(-(policy.distribution({k: v[i] for k, v in consts.items()}, pre.obs[i])
                                       .log_prob(pre.actions[i]) * pre.advantages[i] * pre.mask[i]).sum()
                                     / pre.mask[i].sum(), [consts[k] for k in consts if k not in frozen],
                                     create_graph=True) for i in range(T)]
        moved = {k: torch.stack([stacked[k][i] - 0.5 * grads[i][j][i] for i in range(T)])
                 for j, k in enumerate(k for k in consts if k not in frozen)}
        return {**moved, **{k: stacked[k] for k in frozen}}

    params = {k: v.detach().requires_grad_() for k, v in meta.items()}
    adapted_by_hand = by_hand(params)
    losses = [surrogate_loss(policy.distribution({k: v[i] for k, v in adapted_by_hand.items()}, post.obs[i])
                             .log_prob(post.actions[i]), obj.old_log_probs[i], post.advantages[i], post.mask[i])
              for i in range(T)]
    expected = torch.autograd.grad(torch.stack(losses).mean(), list(params.values()))
    for name, g in zip(params, expected, strict=True):
        torch.testing.assert_close(got[name], g, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_lvc_inner_loss_takes_the_same_step_with_the_sampling_curvature(mode: str) -> None:
    """ProMP's LVC inner loss: the same inner step, but the second-order term no longer ties the
    std to the step size. With the mean at a fixed point and advantages linear in the action, the
    true inner gradient of the mean does not depend on the std; MAML's log-likelihood Hessian says
    it does (d mean' / d log_std = -2 * step), the LVC Hessian says ~0."""
    torch.manual_seed(3)
    policy = GaussianMLPPolicy(1, 1, (), init_std=0.5).double()
    n = 40_000
    meta = module_params(policy, detach=True)
    with torch.no_grad():
        obs = torch.zeros(1, 1, n, 1, dtype=torch.float64)
        actions, _ = policy.act(obs.reshape(1, n, 1))
        actions = actions.reshape(1, 1, n, 1)
        mean = policy.dist_params(None, obs[0])[0].reshape(1, 1, n, 1)
    batch = TaskBatch(obs, actions, (actions - mean)[..., 0], torch.ones(1, 1, n, dtype=torch.float64))
    steps = {}
    for loss in ("log_likelihood", "lvc"):
        params = {k: v.detach().requires_grad_() for k, v in meta.items()}
        adapted = adapt(policy, replicate_params(params, 1), batch, lr=0.1, batched=mode, loss=loss)
        (d_mean_d_std,) = torch.autograd.grad(adapted["head.mean.bias"].sum(), [params["head.log_std"]])
        steps[loss] = (adapted["head.mean.bias"] - meta["head.mean.bias"]).detach(), d_mean_d_std
    torch.testing.assert_close(steps["lvc"][0], steps["log_likelihood"][0], atol=1e-12, rtol=0)
    step, ll_derivative = steps["log_likelihood"]
    torch.testing.assert_close(ll_derivative, -2 * step.reshape(-1), rtol=0.05, atol=0)
    assert abs(float(steps["lvc"][1])) < 0.1 * abs(float(ll_derivative))
