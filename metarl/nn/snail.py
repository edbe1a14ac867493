"""SNAIL policy (Mishra et al. 2018, "A Simple Neural Attentive Meta-Learner").

Temporal-convolution blocks (dense blocks of causal dilated convolutions) aggregate
recent experience at high resolution; causal attention blocks pinpoint single past
steps anywhere in the trial. Training runs over whole trials in parallel. Rollouts
run step by step with cached activations, so each step costs one new column instead
of re-running the whole history: every causal conv keeps the last ``dilation``
inputs it saw, every attention block keeps its keys and values.

Both modes are the head applied to :meth:`SnailPolicy.features` /
:meth:`~SnailPolicy.step_features` (the last block's output, ``feature_dim`` wide),
which a caller that puts its own layers on them (``RL2Net``'s value head and torso)
uses directly.

Deviation from the paper's pseudo-code: dilations start at 1 (1, 2, 4, ...) rather
than 2, so the first layer sees the immediately preceding step directly; the
receptive field of a TC block still covers ``max_len`` steps.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.nn import functional as F

from metarl.nn.heads import DistParams, make_head
from metarl.nn.policy import Policy
from metarl.nn.rl2_inputs import rl2_input_dim, rl2_inputs

BlockState = Any  # each block defines its own cache (tensors or tuples of tensors)


class _Block(nn.Module):
    """A sequence layer usable both over whole sequences and one step at a time."""

    out_features: int

    def initial_state(self, batch: int, like: Tensor) -> BlockState:
        return ()

    def step(self, x: Tensor, state: BlockState) -> tuple[Tensor, BlockState]:
        raise NotImplementedError  # pragma: no cover - interface


class _Embed(_Block):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.linear(x))

    def step(self, x: Tensor, state: BlockState) -> tuple[Tensor, BlockState]:
        return self(x), state


class DenseBlock(_Block):
    """Gated causal dilated conv (kernel 2); output is the input with new channels appended."""

    def __init__(self, in_features: int, filters: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.filters = filters
        self.conv = nn.Conv1d(in_features, 2 * filters, kernel_size=2, dilation=dilation)
        self.out_features = in_features + filters

    def _gate(self, pre: Tensor) -> Tensor:
        xf, xg = pre.split(self.filters, dim=-1)
        return torch.tanh(xf) * torch.sigmoid(xg)

    def forward(self, x: Tensor) -> Tensor:  # x [B, L, C]
        padded = F.pad(x.transpose(1, 2), (self.dilation, 0))  # left-pad: causal
        pre = self.conv(padded).transpose(1, 2)
        return torch.cat([x, self._gate(pre)], dim=-1)

    def initial_state(self, batch: int, like: Tensor) -> BlockState:
        # The last `dilation` inputs; zeros match the left padding of forward().
        return like.new_zeros(batch, self.dilation, self.conv.in_channels)

    def step(self, x: Tensor, state: BlockState) -> tuple[Tensor, BlockState]:
        w, b = self.conv.weight, self.conv.bias  # w [2F, C, 2]: tap 0 is t - dilation
        pre = F.linear(state[:, 0], w[:, :, 0]) + F.linear(x, w[:, :, 1], b)
        history = torch.cat([state[:, 1:], x.unsqueeze(1)], dim=1)
        return torch.cat([x, self._gate(pre)], dim=-1), history


class TCBlock(_Block):
    """Dense blocks with dilations 1, 2, 4, ... covering ``max_len`` steps."""

    def __init__(self, in_features: int, max_len: int, filters: int) -> None:
        super().__init__()
        depth = max(1, math.ceil(math.log2(max(max_len, 2))))
        blocks = []
        size = in_features
        for i in range(depth):
            blocks.append(DenseBlock(size, filters, 2**i))
            size = blocks[-1].out_features
        self.blocks = nn.ModuleList(blocks)
        self.out_features = size

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def initial_state(self, batch: int, like: Tensor) -> BlockState:
        return tuple(block.initial_state(batch, like) for block in self.blocks)

    def step(self, x: Tensor, state: BlockState) -> tuple[Tensor, BlockState]:
        new_state = []
        for block, s in zip(self.blocks, state, strict=True):
            x, s = block.step(x, s)
            new_state.append(s)
        return x, tuple(new_state)


class AttentionBlock(_Block):
    """Single-head causal soft attention; appends the read values to the input."""

    def __init__(self, in_features: int, key_size: int, value_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(in_features, key_size)
        self.key = nn.Linear(in_features, key_size)
        self.value = nn.Linear(in_features, value_size)
        self.scale = 1.0 / math.sqrt(key_size)
        self.out_features = in_features + value_size

    def forward(self, x: Tensor) -> Tensor:  # x [B, L, C]
        q, k, v = self.query(x), self.key(x), self.value(x)
        length = x.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        logits = (q @ k.transpose(1, 2)) * self.scale
        weights = torch.softmax(logits.masked_fill(~causal, float("-inf")), dim=-1)
        return torch.cat([x, weights @ v], dim=-1)

    def initial_state(self, batch: int, like: Tensor) -> BlockState:
        return (
            like.new_zeros(batch, 0, self.key.out_features),
            like.new_zeros(batch, 0, self.value.out_features),
        )

    def step(self, x: Tensor, state: BlockState) -> tuple[Tensor, BlockState]:
        keys = torch.cat([state[0], self.key(x).unsqueeze(1)], dim=1)
        values = torch.cat([state[1], self.value(x).unsqueeze(1)], dim=1)
        logits = (keys @ self.query(x).unsqueeze(-1)).squeeze(-1) * self.scale  # [B, t]
        read = (torch.softmax(logits, dim=-1).unsqueeze(1) @ values).squeeze(1)
        return torch.cat([x, read], dim=-1), (keys, values)


class SnailPolicy(Policy):
    """Embedding, then TC / attention blocks (paper layout: TC, attn, TC, attn), then a head.

    ``max_len`` is the trial length the TC blocks are sized for (their receptive
    field); longer trials still work, with attention covering the whole history.
    Inputs are RL² inputs ``[B, L, input_dim]`` (see :meth:`make_inputs`).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        *,
        discrete: bool,
        max_len: int,
        embed_size: int = 32,
        filters: int = 16,
        key_size: int = 32,
        value_size: int = 32,
        layout: tuple[str, ...] = ("tc", "attn", "tc", "attn"),
        init_std: float = 1.0,
        extra_inputs: int = 0,
        state_std: bool = False,
        tanh_head: bool = False,
    ) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        # extra_inputs: features a caller appends after the RL² inputs (e.g. RL2Net's previous observation)
        self.input_dim = rl2_input_dim(obs_dim, action_dim) + extra_inputs
        blocks: list[_Block] = [_Embed(self.input_dim, embed_size)]
        for kind in layout:
            size = blocks[-1].out_features
            if kind == "tc":
                blocks.append(TCBlock(size, max_len, filters))
            elif kind == "attn":
                blocks.append(AttentionBlock(size, key_size, value_size))
            else:
                raise ValueError(f"unknown SNAIL block {kind!r}: use 'tc' or 'attn'")
        self.blocks = nn.ModuleList(blocks)
        self.feature_dim = blocks[-1].out_features  # width of features() / step_features(), what the head reads
        self.head = make_head(self.feature_dim, action_dim, discrete=discrete, init_std=init_std,
                              state_std=state_std, tanh_head=tanh_head)

    def make_inputs(self, obs: Tensor, prev_action: Tensor, prev_reward: Tensor, done: Tensor) -> Tensor:
        """RL² inputs for this policy's action space (see :func:`rl2_inputs`)."""
        return rl2_inputs(obs, prev_action, prev_reward, done, action_dim=self.action_dim, discrete=self.discrete)

    def initial_state(
        self, batch: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> tuple[BlockState, ...]:
        """Empty caches for ``batch`` trials (attention caches grow by one per step)."""
        ref = next(self.parameters())
        like = torch.empty(0, device=device if device is not None else ref.device, dtype=dtype or ref.dtype)
        return tuple(block.initial_state(batch, like) for block in self.blocks)

    def features(self, inputs: Tensor, state: None = None) -> tuple[Tensor, None]:
        """The last block's output for every step: ``inputs [B, L, input_dim] -> [B, L, feature_dim]``.

        Always from empty caches (attention needs the whole history, so a trial cannot be
        continued from a state): ``state`` must be ``None``, and ``None`` is returned in its
        place, so the signature matches :meth:`RecurrentPolicy.features`.
        """
        if state is not None:
            raise ValueError("SnailPolicy.features runs whole trials from empty caches; it takes no state "
                             "(step_features continues one)")
        x = inputs
        for block in self.blocks:
            x = block(x)
        return x, None

    def step_features(
        self, inputs: Tensor, state: tuple[BlockState, ...]
    ) -> tuple[Tensor, tuple[BlockState, ...]]:
        """One step of :meth:`features` with the cached activations: ``[B, input_dim] -> [B, feature_dim]``."""
        x = inputs
        new_state = []
        for block, s in zip(self.blocks, state, strict=True):
            x, s = block.step(x, s)
            new_state.append(s)
        return x, tuple(new_state)

    def forward(self, inputs: Tensor) -> DistParams:
        """Distribution parameters for every step of ``inputs [B, L, input_dim]``."""
        features, _ = self.features(inputs)
        return self.head(features)

    def step(self, inputs: Tensor, state: tuple[BlockState, ...]) -> tuple[Distribution, tuple[BlockState, ...]]:
        """One rollout step: ``inputs [B, input_dim]`` -> distribution over ``[B]``."""
        features, new_state = self.step_features(inputs, state)
        return self.head.distribution(self.head(features)), new_state

    def forward_sequence(self, inputs: Tensor) -> Distribution:
        """Whole trials at once (from an empty cache): batch shape ``[B, L]``."""
        return self.head.distribution(self(inputs))
