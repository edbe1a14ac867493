"""The RL² network, its sampler actor, and the trial layout both share.

RL² (Duan et al. 2016) puts the whole learning algorithm inside a sequence model,
so the same network must be run in two ways that have to agree exactly:

* **rollouts**, one step at a time for every env slot (:class:`RL2Actor`,
  the sampler's :class:`~metarl.sampling.actor.Actor` protocol), feeding back
  the previous action, reward and done flag, with the memory carried across the
  episodes of a trial and reset only when a new trial starts;
* **training**, on whole trials at once (:func:`pack_trials` +
  :meth:`RL2Net.features`), rebuilding those very inputs from the
  :class:`~metarl.sampling.Episodes` the rollout produced.

Both derive the inputs of step ``t`` from the outcome of step ``t - 1`` of the same
trial (nothing at a trial's first step), which is what makes the log-probs of
training equal to those of the rollout (tested for GRU, LSTM and SNAIL).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from metarl.nn import RecurrentPolicy, SnailPolicy
from metarl.sampling import Episodes
from metarl.sampling.actor import ActorOutput

SequencePolicy = RecurrentPolicy | SnailPolicy


class RL2Net(nn.Module):
    """A GRU/LSTM or SNAIL policy plus a value head on the same features.

    Why a shared trunk rather than a separate recurrent critic: the value of a
    trial's state depends on what has been learned about the task so far, which
    is exactly what the policy's memory encodes; sharing it halves the sequence
    compute (the dominant cost on CPU) and PPO's combined loss trains both.

    Three options (all off by default, as in the paper) meant to make tabular lookups easier to learn.
    Measured in docs/rl2.md: the first two alone did not beat the plain GRU on tabular MDPs; the key,
    with ``torso`` and a short discount, is what reached the paper's level:

    * ``transition_inputs``: the input also holds the *previous* observation, so each step shows
      a whole transition ``(s_{t-1}, a_{t-1}, r_{t-1}, d_{t-1}, s_t)``. Without it, binding a
      reward to the state it was earned in needs ``s_{t-1}`` carried through the memory for a step;
    * ``torso``: a ReLU layer on ``[memory features, current observation]`` before the heads. A
      linear head can only add memory units up; choosing "the best action *in this state*" from
      per-(state, action) memories is a lookup, which one ReLU layer can do and a linear map cannot;
    * ``transition_key``: the input also holds ``vec(s_{t-1} a_{t-1}^T)`` and that times ``r_{t-1}``.
      On one-hot states and actions this is a one-hot *key* of the (state, action) pair the last
      reward belongs to, so a GRU can file the reward in a memory unit of its own with one gate
      instead of learning an AND of two inputs inside its gates (which, measured, it barely does).
      On continuous spaces it is the bilinear product of the two vectors.
    """

    def __init__(self, policy: SequencePolicy, *, transition_inputs: bool = False, torso: bool = False,
                 transition_key: bool = False, reward_input_scale: float = 1.0) -> None:
        super().__init__()
        self.policy = policy
        self.reward_input_scale = float(reward_input_scale)
        self.recurrent = isinstance(policy, RecurrentPolicy)
        self.transition_inputs = transition_inputs
        self.transition_key = transition_key
        width = policy.feature_dim
        self.torso = nn.Sequential(nn.Linear(width + policy.obs_dim, width), nn.ReLU()) if torso else None
        self.value = nn.Linear(width, 1)
        # PopArt-style return statistics (van Hasselt et al. 2016): the value head predicts
        # (return - mean) / std, so its loss stays O(1) whatever the trial length; identity until fitted.
        self.register_buffer("return_mean", torch.zeros(()))
        self.register_buffer("return_std", torch.ones(()))
        self.register_buffer("return_updates", torch.zeros(()))

    @property
    def discrete(self) -> bool:
        return self.policy.discrete

    @staticmethod
    def extra_input_dim(obs_dim: int, act_dim: int, *, transition_inputs: bool, transition_key: bool) -> int:
        """Input width the options add to ``[obs, prev_action, prev_reward, done]``."""
        return obs_dim * transition_inputs + 2 * obs_dim * act_dim * transition_key

    def make_inputs(self, obs: Tensor, prev_action: Tensor, prev_reward: Tensor, done: Tensor,
                    prev_obs: Tensor | None = None) -> Tensor:
        """RL² inputs ``[obs, prev_action, prev_reward, done]``, then ``prev_obs`` with ``transition_inputs``,
        then the (previous observation x previous action) key and key x reward with ``transition_key``.

        The reward enters times ``reward_input_scale``: the memory's inputs should be O(1), and a
        family's rewards may not be (Meta-World's are 0-10 per step; its own RL² wrapper divides them
        by 10). Only the input is scaled; returns, advantages and the value targets are not."""
        if self.reward_input_scale != 1.0:
            prev_reward = prev_reward * self.reward_input_scale
        x = self.policy.make_inputs(obs, prev_action, prev_reward, done)
        if not (self.transition_inputs or self.transition_key):
            return x
        if prev_obs is None:
            raise ValueError("this RL2Net has transition_inputs or transition_key: make_inputs needs prev_obs")
        prev_obs = prev_obs.to(x.dtype)
        parts = [x, prev_obs] if self.transition_inputs else [x]
        if self.transition_key:
            obs_dim, act_dim = self.policy.obs_dim, self.policy.action_dim
            action = x[..., obs_dim:obs_dim + act_dim]  # as rl2_inputs encoded it: one-hot (zeros: none yet) or vector
            key = (prev_obs.unsqueeze(-1) * action.unsqueeze(-2)).flatten(-2)
            parts += [key, key * prev_reward.to(x.dtype).unsqueeze(-1)]
        return torch.cat(parts, dim=-1)

    def _torso(self, features: Tensor, inputs: Tensor) -> Tensor:
        """The optional ReLU layer over memory features and the current observation (the inputs' first part)."""
        if self.torso is None:
            return features
        return self.torso(torch.cat([features, inputs[..., :self.policy.obs_dim]], dim=-1))

    def initial_state(self, batch: int) -> Any:
        """Fresh memory for ``batch`` trials: zero hidden state, or empty SNAIL caches."""
        return self.policy.initial_state(batch)

    def features(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Whole sequences ``[B, L, D] -> [B, L, F]`` and the final state (``None`` for SNAIL).

        The policy's :meth:`~metarl.nn.RecurrentPolicy.features`, then the torso. ``state``
        continues an earlier segment (truncated BPTT, recurrent only); SNAIL always starts
        from an empty cache, since attention needs the whole history.
        """
        out, state = self.policy.features(inputs, state)
        return self._torso(out, inputs), state

    def step_features(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One step ``[B, D] -> [B, F]`` with the carried state (rollouts): the policy's
        :meth:`~metarl.nn.RecurrentPolicy.step_features`, then the torso."""
        out, state = self.policy.step_features(inputs, state)
        return self._torso(out, inputs), state

    def heads(self, features: Tensor) -> tuple[Distribution, Tensor]:
        """Action distribution and *normalized* value estimate from features ``[..., F]``."""
        dist = self.policy.head.distribution(self.policy.head(features))
        return dist, self.value(features).squeeze(-1)

    def denormalize(self, value: Tensor) -> Tensor:
        """A value-head output in return units."""
        return value * self.return_std + self.return_mean

    def normalize(self, returns: Tensor) -> Tensor:
        """Returns in the value head's units."""
        return (returns - self.return_mean) / self.return_std

    @torch.no_grad()
    def update_return_stats(self, returns: Tensor, momentum: float) -> None:
        """Move the return statistics toward this batch's, *preserving* every value output.

        PopArt's trick: rescaling the head's weight and bias along with the statistics keeps
        ``denormalize(value)`` unchanged, so a shift in return scale (longer trials, a
        warm start, a better policy) never becomes a sudden systematic advantage error.
        """
        old_mean, old_std = self.return_mean.clone(), self.return_std.clone()
        # The first batch sets the statistics outright; the first few are averaged equally, then
        # the momentum average takes over (no bias toward the identity start).
        momentum = min(momentum, float(self.return_updates) / (float(self.return_updates) + 1.0))
        mean = momentum * old_mean + (1 - momentum) * returns.mean()
        second = momentum * (old_std**2 + old_mean**2) + (1 - momentum) * (returns**2).mean()
        std = (second - mean**2).clamp(min=1e-8).sqrt().clamp(min=1e-4)
        self.value.weight.mul_(old_std / std)
        self.value.bias.mul_(old_std).add_(old_mean - mean).div_(std)
        self.return_mean.copy_(mean)
        self.return_std.copy_(std)
        self.return_updates.add_(1.0)

    def load_compatible(self, state: dict[str, Tensor]) -> None:
        """Load a state dict, accepting ones saved before the return statistics existed (identity)."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        absent = set(missing) - {"return_mean", "return_std", "return_updates"}
        if absent or unexpected:
            raise RuntimeError(f"RL2Net state does not match: missing {sorted(absent)}, unexpected {sorted(unexpected)}")
        for name in set(missing):
            getattr(self, name).fill_(1.0 if name == "return_std" else 0.0)


class TrialState(NamedTuple):
    """Per-slot actor state: the network memory plus what RL² feeds back next step."""

    memory: Any
    prev_action: Tensor  #: ``[N]`` int64 (-1: none yet) or ``[N, act_dim]`` float
    prev_reward: Tensor  #: ``[N]``
    prev_done: Tensor  #: ``[N]`` 1.0 when the previous step ended an episode
    prev_obs: Tensor  #: ``[N, obs_dim]`` the observation the previous action was taken on (zeros: none yet)


def first_prev_action(net: RL2Net, shape: tuple[int, ...], device: torch.device | None = None) -> Tensor:
    """The "no previous action" placeholder of a trial's first step (one-hot of -1 is all zeros)."""
    if net.discrete:
        return torch.full(shape, -1, dtype=torch.long, device=device)
    return torch.zeros(*shape, net.policy.action_dim, device=device)


class RL2Actor:
    """Steps an :class:`RL2Net` for all ``T x S`` env slots; one trial per slot.

    The sampler calls :meth:`initial_state` at the start of every batch of
    trials, so memory is reset between trials and carried across the episodes
    within one (the done flag tells the network an episode ended). Sampling
    happens on the device of the sampler's generator (the CPU for gymnasium envs, the
    device for tensor envs), so on the gymnasium path a seed gives the same actions
    whatever device the network runs on.
    """

    def __init__(self, net: RL2Net, *, deterministic: bool = False) -> None:
        self.net, self.deterministic = net, deterministic
        self.device = next(net.parameters()).device

    def initial_state(self, n_tasks: int, n_slots: int) -> TrialState:
        n = n_tasks * n_slots
        zeros = torch.zeros(n, device=self.device)
        return TrialState(self.net.initial_state(n), first_prev_action(self.net, (n,), self.device), zeros, zeros,
                          torch.zeros(n, self.net.policy.obs_dim, device=self.device))

    def act(self, obs: Tensor, state: TrialState, episode_start: Tensor, generator: torch.Generator) -> ActorOutput:
        t, s = obs.shape[:2]
        flat_obs = obs.reshape(t * s, -1).to(self.device)
        x = self.net.make_inputs(flat_obs, state.prev_action, state.prev_reward, state.prev_done, state.prev_obs)
        features, memory = self.net.step_features(x, state.memory)
        head = self.net.policy.head
        out = tuple(o.to(generator.device) for o in head(features))
        actions = head.sample(out, deterministic=self.deterministic, generator=generator)
        log_probs = head.distribution(out).log_prob(actions)
        return ActorOutput(actions.view(t, s, *actions.shape[1:]), log_probs.view(t, s),
                           state._replace(memory=memory, prev_obs=flat_obs), {})

    @property
    def can_restart(self) -> bool:
        """Whether :meth:`restart` works: a GRU/LSTM memory can be swapped per row; SNAIL's caches,
        which grow with the trial, cannot be mixed across rows of different histories."""
        return isinstance(self.net.policy, RecurrentPolicy)

    def restart(self, state: TrialState, snapshot: TrialState, rows: Tensor) -> TrialState:
        """``rows`` (``[N]`` bool) go back to ``snapshot``, memory and fed-back inputs alike; the rest keep ``state``.

        Meta-World's evaluation (and its reference RL²) starts every scored episode from the memory
        at the end of adaptation, so scored episodes do not adapt further on each other.
        """
        if not self.can_restart:
            raise NotImplementedError("restart needs a GRU/LSTM memory; SNAIL's caches cannot be swapped per row")
        rows = rows.reshape(-1).to(self.device)

        def pick(a: Tensor, b: Tensor) -> Tensor:
            return torch.where(rows.view(-1, *([1] * (a.dim() - 1))), a, b)

        memory = RecurrentPolicy.select_rows(rows, snapshot.memory, state.memory)
        return TrialState(memory, pick(snapshot.prev_action, state.prev_action),
                          pick(snapshot.prev_reward, state.prev_reward), pick(snapshot.prev_done, state.prev_done),
                          pick(snapshot.prev_obs, state.prev_obs))

    def observe(self, state: TrialState, actions: Tensor, rewards: Tensor, dones: Tensor) -> TrialState:
        n = rewards.numel()
        return state._replace(prev_action=actions.reshape(n, *actions.shape[2:]).to(self.device),
                              prev_reward=rewards.reshape(n).float().to(self.device),
                              prev_done=dones.reshape(n).float().to(self.device))


class Trials(NamedTuple):
    """Whole trials as the network saw them: ``[B, L, ...]``, real steps first, then padding."""

    inputs: Tensor  #: ``[B, L, D]`` RL² inputs (obs, previous action/reward/done)
    actions: Tensor
    rewards: Tensor
    log_probs: Tensor  #: as produced during the rollout
    mask: Tensor  #: ``[B, L]`` 1.0 on real steps (a prefix of each row)

    @property
    def n_steps(self) -> int:
        return int(self.mask.sum())


def _shift(x: Tensor, first: Tensor) -> Tensor:
    """``x`` delayed by one step along dim 1, ``first`` in front: the "previous" of each step."""
    return torch.cat([first, x[:, :-1]], dim=1)


def pack_trials(net: RL2Net, episodes: Episodes, device: torch.device) -> Trials:
    """Episodes ``[T, S*E, H]`` -> one row per trial with its real steps in time order.

    Episodes end at different steps, so each trial's ``E x H`` grid has padding
    holes; a stable sort moves the real steps to the front (the order the actor
    saw them) and the padding to the back, where the causal network ignores it.
    """
    eps = episodes.to(device)
    n_trials, length = eps.n_tasks * eps.n_trials, eps.episodes_per_trial * eps.horizon
    mask = eps.mask.reshape(n_trials, length)
    order = torch.argsort((mask == 0).to(torch.int8), dim=1, stable=True)

    def packed(x: Tensor) -> Tensor:
        x = x.reshape(n_trials, length, *x.shape[3:])
        idx = order.view(n_trials, length, *([1] * (x.dim() - 2))).expand_as(x)
        return torch.gather(x, 1, idx)

    mask, actions, rewards = packed(eps.mask), packed(eps.actions), packed(eps.rewards)
    dones = packed(eps.dones.float()) * mask
    obs = packed(eps.observations).reshape(n_trials, length, -1)
    first_action = first_prev_action(net, (n_trials, 1), device)
    zero = torch.zeros(n_trials, 1, device=device)
    inputs = net.make_inputs(obs, _shift(actions, first_action), _shift(rewards * mask, zero), _shift(dones, zero),
                             _shift(obs, torch.zeros_like(obs[:, :1])))
    return Trials(inputs, actions, rewards * mask, packed(eps.log_probs), mask)
