"""The structured MAML-TRPO linearization (J^T F J) against double backward through the whole graph.

Both compute the same loss, meta-gradient and Fisher-vector products analytically; in float64
they must agree to rounding on every variant of the inner loop the agent can configure.
"""

from __future__ import annotations

import pytest
import torch

from metarl.core import (
    MamlObjective,
    TaskBatch,
    autograd_linearization,
    conjugate_gradient,
    module_params,
    step_size_key,
    trpo_step,
)
from metarl.nn import CategoricalMLPPolicy, GaussianMLPPolicy
from metarl.nn.policy import Policy

OBS, ACT, TASKS = 3, 2, 4


def _batch(g: torch.Generator, discrete: bool, *, padded: bool = False) -> TaskBatch:
    shape = (TASKS, 3, 7)
    actions = (torch.randint(0, ACT, shape, generator=g) if discrete
               else torch.randn(*shape, ACT, generator=g, dtype=torch.float64))
    mask = torch.ones(shape, dtype=torch.float64)
    if padded:  # episodes that ended early: a prefix of each row is real
        lengths = torch.randint(1, shape[-1] + 1, shape[:2], generator=g)
        mask = (torch.arange(shape[-1]) < lengths[..., None]).double()
    return TaskBatch(torch.randn(*shape, OBS, generator=g, dtype=torch.float64), actions,
                     torch.randn(*shape, generator=g, dtype=torch.float64), mask)


def _setup(discrete: bool, steps: int, seed: int = 0) -> tuple[Policy, list[TaskBatch], TaskBatch]:
    torch.manual_seed(seed)
    policy = (CategoricalMLPPolicy(OBS, ACT, (8, 8)) if discrete else GaussianMLPPolicy(OBS, ACT, (8, 8))).double()
    g = torch.Generator().manual_seed(seed + 1)
    pres = [_batch(g, discrete) for _ in range(steps)]
    return policy, pres, _batch(g, discrete, padded=True)


CASES = [
    # (mode, inner loss, inner steps, frozen log-std, first order, discrete[, learned step sizes])
    ("vmap", "lvc", 1, False, False, False),
    ("loop", "lvc", 1, False, False, False),
    ("vmap", "log_likelihood", 1, False, False, False),
    ("loop", "log_likelihood", 2, False, False, False),
    ("vmap", "lvc", 2, True, False, False),
    ("loop", "lvc", 1, True, False, False),
    ("vmap", "lvc", 1, False, True, False),
    ("loop", "lvc", 0, False, False, False),  # multi-task TRPO: no inner step
    ("vmap", "lvc", 1, False, False, True),
    ("loop", "log_likelihood", 2, False, False, True),
    # Meta-SGD: a step size per weight among the meta-parameters
    ("vmap", "lvc", 1, False, False, False, True),
    ("loop", "lvc", 2, True, False, False, True),
    ("vmap", "lvc", 1, False, True, False, True),
    ("loop", "log_likelihood", 1, False, False, True, True),
]


@pytest.mark.parametrize(("mode", "loss", "steps", "frozen", "first_order", "discrete", "learned"),
                         [(*c, False) if len(c) == 6 else c for c in CASES])
def test_structured_linearization_equals_double_backward(mode: str, loss: str, steps: int, frozen: bool,
                                                         first_order: bool, discrete: bool, learned: bool) -> None:
    policy, pres, post = _setup(discrete, steps)
    meta = module_params(policy, detach=True)
    names = frozenset(k for k in meta if k.endswith("log_std")) if frozen else frozenset()
    if learned:  # step sizes that differ per weight, so the test sees more than a scalar
        g = torch.Generator().manual_seed(11)
        meta = {**meta, **{step_size_key(k): 0.1 + 0.4 * torch.rand(v.shape, generator=g, dtype=torch.float64)
                           for k, v in meta.items() if k not in names}}
    objective = MamlObjective(policy, meta, pres, post, inner_lr=0.3, batched=mode, inner_loss=loss,  # type: ignore[arg-type]
                              first_order=first_order, frozen=names, learned_lr=learned)
    reference = autograd_linearization(objective, meta, 1e-3)
    structured = objective.linearize(meta, 1e-3)
    assert structured.loss == pytest.approx(reference.loss, rel=1e-12, abs=1e-14)
    torch.testing.assert_close(structured.grad, reference.grad, rtol=1e-9, atol=1e-12)
    assert reference.grad.abs().max() > 1e-3  # a real gradient, not two zeros agreeing
    g = torch.Generator().manual_seed(7)
    for _ in range(3):
        v = torch.randn(reference.grad.shape, generator=g, dtype=torch.float64)
        expected = reference.fvp(v)
        torch.testing.assert_close(structured.fvp(v), expected, rtol=1e-9, atol=1e-12)
        assert (expected - 1e-3 * v).norm() > 1e-3 * expected.norm()  # the Fisher part is not negligible


def test_second_order_terms_are_in_the_structured_product() -> None:
    """First- and second-order MAML give different products; the structured one follows each."""
    policy, pres, post = _setup(False, 1)
    meta = module_params(policy, detach=True)
    products = []
    for first_order in (False, True):
        objective = MamlObjective(policy, meta, pres, post, inner_lr=0.3, first_order=first_order)
        products.append(objective.linearize(meta, 0.0).fvp(torch.ones(sum(v.numel() for v in meta.values()),
                                                                         dtype=torch.float64)))
    assert (products[0] - products[1]).norm() > 1e-3 * products[0].norm()


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_trpo_step_is_the_same_with_either_linearization(mode: str) -> None:
    policy, pres, post = _setup(False, 1, seed=3)
    meta = module_params(policy, detach=True)
    objective = MamlObjective(policy, meta, pres, post, inner_lr=0.1, batched=mode, inner_loss="lvc")
    new_ref, info_ref = trpo_step(meta, objective, max_kl=0.005)
    new, info = trpo_step(meta, objective, linearize=objective.linearize, max_kl=0.005)
    assert info.accepted and info_ref.accepted
    assert info.backtracks == info_ref.backtracks
    for k in meta:
        torch.testing.assert_close(new[k], new_ref[k], rtol=1e-9, atol=1e-12)
    assert any((new[k] - meta[k]).abs().max() > 1e-6 for k in meta)


@pytest.mark.parametrize("discrete", [False, True])
def test_kl_directions_share_the_fisher_and_differ_beyond_it(discrete: bool) -> None:
    """KL(new || old) (the MAML reference code's) against KL(old || new): the same Hessian at the
    snapshot, so the same TRPO step; different values away from it, which the line search sees."""
    policy, pres, post = _setup(discrete, 1, seed=5)
    meta = module_params(policy, detach=True)
    objectives = {d: MamlObjective(policy, meta, pres, post, inner_lr=0.3, kl_direction=d)  # type: ignore[arg-type]
                  for d in ("old_new", "new_old")}
    lins = {d: autograd_linearization(o, meta, 0.0) for d, o in objectives.items()}
    v = torch.randn(lins["old_new"].grad.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(lins["new_old"].fvp(v), lins["old_new"].fvp(v), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(objectives["new_old"].linearize(meta, 0.0).fvp(v), lins["new_old"].fvp(v),
                               rtol=1e-9, atol=1e-12)
    moved = {k: t + 0.3 * torch.randn(t.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
             for k, t in meta.items()}
    kl_old_new = objectives["old_new"](moved)[1]
    kl_new_old = objectives["new_old"](moved)[1]
    assert abs(float(kl_new_old - kl_old_new)) > 1e-3 * float(kl_old_new)
    # the reversed measure by hand: torch's KL(new || old) per step, masked mean per task, mean over tasks
    o = objectives["new_old"]
    with torch.no_grad():
        adapted = o.adapted_params(moved)
        per_task = []
        for i in range(post.num_tasks):
            params = {k: t[i] for k, t in adapted.items()}
            new = policy.head.distribution(policy.dist_params(params, post.obs[i]))
            old = policy.head.distribution(tuple(t[i] for t in o.old_out))
            kl = torch.distributions.kl_divergence(new, old)
            per_task.append((kl * post.mask[i]).sum() / post.mask[i].sum())
    torch.testing.assert_close(kl_new_old, torch.stack(per_task).mean(), rtol=1e-9, atol=1e-12)


def test_linearize_refuses_other_parameters() -> None:
    policy, pres, post = _setup(False, 1)
    meta = module_params(policy, detach=True)
    objective = MamlObjective(policy, meta, pres, post, inner_lr=0.1)
    moved = {k: v + 0.01 for k, v in meta.items()}
    with pytest.raises(ValueError, match="built at"):
        objective.linearize(moved, 1e-5)


def test_conjugate_gradient_product_is_a_times_x() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(12, 12, generator=g, dtype=torch.float64)
    spd = a @ a.T + torch.eye(12, dtype=torch.float64)
    b = torch.randn(12, generator=g, dtype=torch.float64)
    x, ax = conjugate_gradient(lambda v: spd @ v, b, iters=5, with_product=True)
    torch.testing.assert_close(ax, spd @ x, rtol=1e-10, atol=1e-10)
    assert (x - torch.linalg.solve(spd, b)).norm() > 1e-6  # 5 of 12 iterations: not converged, still exact A x
