"""RL² inputs; recurrent and SNAIL policies: step-by-step == whole sequence."""

from __future__ import annotations

import pytest
import torch

from metarl.nn import RecurrentPolicy, SnailPolicy, rl2_inputs

B, LEN, OBS = 3, 11, 4


def _trial(policy, discrete: bool, n_act: int):  # noqa: ANN001, ANN202
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(B, LEN, OBS, generator=g, dtype=torch.float64)
    if discrete:
        actions = torch.randint(0, n_act, (B, LEN), generator=g)
        prev = torch.cat([torch.full((B, 1), -1), actions[:, :-1]], dim=1)
    else:
        actions = torch.randn(B, LEN, n_act, generator=g, dtype=torch.float64)
        prev = torch.cat([torch.zeros(B, 1, n_act, dtype=torch.float64), actions[:, :-1]], dim=1)
    rewards = torch.randn(B, LEN, generator=g, dtype=torch.float64)
    prev_r = torch.cat([torch.zeros(B, 1, dtype=torch.float64), rewards[:, :-1]], dim=1)
    done = torch.zeros(B, LEN, dtype=torch.float64)
    done[:, 5] = 1.0  # an episode boundary inside the trial
    return policy.make_inputs(obs, prev, prev_r, done), actions


def _stepwise_log_probs(policy, inputs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    state = policy.initial_state(B)
    out = []
    for t in range(LEN):
        dist, state = policy.step(inputs[:, t], state)
        out.append(dist.log_prob(actions[:, t]))
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("discrete", [False, True])
def test_recurrent_step_equals_sequence(cell: str, discrete: bool) -> None:
    torch.manual_seed(0)
    n_act = 3 if discrete else 2
    policy = RecurrentPolicy(OBS, n_act, discrete=discrete, hidden_size=16, cell=cell).double()
    inputs, actions = _trial(policy, discrete, n_act)
    whole = policy.forward_sequence(inputs).log_prob(actions)
    assert whole.shape == (B, LEN)
    torch.testing.assert_close(_stepwise_log_probs(policy, inputs, actions), whole, atol=1e-10, rtol=0)
    # Continuing from a returned state equals running the whole sequence.
    first, state = policy.forward_sequence(inputs[:, :4], return_state=True)
    rest = policy.forward_sequence(inputs[:, 4:], state)
    torch.testing.assert_close(rest.log_prob(actions[:, 4:]), whole[:, 4:], atol=1e-10, rtol=0)


@pytest.mark.parametrize("discrete", [False, True])
def test_snail_incremental_equals_whole_sequence(discrete: bool) -> None:
    torch.manual_seed(0)
    n_act = 3 if discrete else 2
    policy = SnailPolicy(OBS, n_act, discrete=discrete, max_len=8, filters=4, key_size=8, value_size=6).double()
    inputs, actions = _trial(policy, discrete, n_act)  # LEN > max_len: beyond the TC receptive field too
    whole = policy.forward_sequence(inputs).log_prob(actions)
    assert whole.shape == (B, LEN)
    torch.testing.assert_close(_stepwise_log_probs(policy, inputs, actions), whole, atol=1e-10, rtol=0)


def _policy(kind: str, discrete: bool, n_act: int):  # noqa: ANN202
    if kind == "snail":
        return SnailPolicy(OBS, n_act, discrete=discrete, max_len=8, filters=4, key_size=8, value_size=6).double()
    return RecurrentPolicy(OBS, n_act, discrete=discrete, hidden_size=16, cell=kind).double()


@pytest.mark.parametrize("kind", ["gru", "lstm", "snail"])
@pytest.mark.parametrize("discrete", [False, True])
def test_features_are_what_the_head_reads(kind: str, discrete: bool) -> None:
    """The public feature API (RL2Net builds on it): sequence == steps, and the head over it is the policy."""
    torch.manual_seed(0)
    n_act = 3 if discrete else 2
    policy = _policy(kind, discrete, n_act)
    inputs, _ = _trial(policy, discrete, n_act)
    features, _ = policy.features(inputs)
    assert features.shape == (B, LEN, policy.feature_dim)
    for whole, from_features in zip(policy(inputs), policy.head(features), strict=True):
        torch.testing.assert_close(from_features, whole, atol=0, rtol=0)
    state, steps = policy.initial_state(B), []
    for t in range(LEN):
        step, state = policy.step_features(inputs[:, t], state)
        assert step.shape == (B, policy.feature_dim)
        steps.append(step)
    torch.testing.assert_close(torch.stack(steps, dim=1), features, atol=1e-10, rtol=0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_features_continue_from_a_returned_state(cell: str) -> None:
    torch.manual_seed(0)
    policy = _policy(cell, False, 2)
    inputs, _ = _trial(policy, False, 2)
    whole, final = policy.features(inputs)
    first, state = policy.features(inputs[:, :4])
    rest, final_rest = policy.features(inputs[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole, atol=1e-10, rtol=0)
    torch.testing.assert_close(final_rest, final, atol=1e-10, rtol=0)


def test_snail_features_take_no_state() -> None:
    """Attention needs the whole history: a whole-sequence call cannot continue a cache."""
    policy = _policy("snail", False, 2)
    inputs, _ = _trial(policy, False, 2)
    assert policy.features(inputs)[1] is None
    with pytest.raises(ValueError, match="takes no state"):
        policy.features(inputs, policy.initial_state(B))


def test_snail_is_causal() -> None:
    torch.manual_seed(0)
    policy = SnailPolicy(OBS, 2, discrete=False, max_len=16).double()
    inputs, _ = _trial(policy, False, 2)
    changed = inputs.clone()
    changed[:, 7:] += 5.0
    a, b = policy(inputs)[0], policy(changed)[0]
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_rl2_inputs_layout() -> None:
    obs = torch.zeros(2, 3)
    x = rl2_inputs(obs, torch.tensor([2, -1]), torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.0]), action_dim=4, discrete=True)
    torch.testing.assert_close(x[0], torch.tensor([0, 0, 0, 0, 0, 1, 0, 0.5, 1.0]))
    torch.testing.assert_close(x[1], torch.zeros(9))  # no previous action at a trial start
    with pytest.raises(ValueError, match="last dimension"):
        rl2_inputs(obs, torch.zeros(2, 3), torch.zeros(2), torch.zeros(2), action_dim=2, discrete=False)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_functional_call_uses_given_weights(cell: str) -> None:
    torch.manual_seed(0)
    policy = RecurrentPolicy(OBS, 2, discrete=False, hidden_size=8, cell=cell)
    inputs = torch.randn(2, 5, policy.input_dim)
    scaled = {k: v.detach() * 1.5 for k, v in policy.named_parameters()}
    reference = RecurrentPolicy(OBS, 2, discrete=False, hidden_size=8, cell=cell)
    reference.load_state_dict(scaled)
    torch.testing.assert_close(policy.dist_params(scaled, inputs)[0], reference(inputs)[0])
    assert not torch.allclose(policy(inputs)[0], reference(inputs)[0])
