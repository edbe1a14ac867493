"""Recurrent (GRU/LSTM) policy for RL².

Built on ``torch.nn.GRU``/``LSTM`` so cuDNN serves it on GPU. Two modes share the
same weights: ``step`` advances one time step for rollouts (the sampler keeps the
state between calls), ``forward_sequence`` runs whole padded trials at once for
training. Padding sits at the end of each row, and the network is causal, so padded
steps never influence real ones.

Both modes are the head applied to :meth:`RecurrentPolicy.features` /
:meth:`~RecurrentPolicy.step_features` (the memory's output, ``feature_dim`` wide),
which a caller that puts its own layers on the memory (``RL2Net``'s value head and
torso) uses directly.

An optional input encoder (``encoder_sizes``, a tanh MLP applied to each step's inputs before
the cell) is what the Meta-World+ reference RL² puts in front of its GRU: Meta-World's 39-D
observations mix positions, quaternions and zeroed goal slots on different scales, and a
learned per-step embedding lets the cell's gates read features instead of raw coordinates.
It is per step, so it keeps the network causal and the rollout/training equality intact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from metarl.nn.heads import DistParams, make_head
from metarl.nn.mlp import WeightInit, init_linear_, mlp
from metarl.nn.policy import Policy
from metarl.nn.rl2_inputs import rl2_input_dim, rl2_inputs

RecurrentState = Tensor | tuple[Tensor, Tensor]


class RecurrentPolicy(Policy):
    """GRU or LSTM over RL² inputs with a Gaussian or categorical head.

    Inputs are ``[B, L, input_dim]`` (batch first), built with :meth:`make_inputs`.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        *,
        discrete: bool,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: Literal["gru", "lstm"] = "gru",
        init_std: float = 1.0,
        extra_inputs: int = 0,
        encoder_sizes: Sequence[int] = (),
        state_std: bool = False,
        tanh_head: bool = False,
        weight_init: WeightInit = "torch",
    ) -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        # extra_inputs: features a caller appends after the RL² inputs (e.g. RL2Net's previous observation)
        self.input_dim = rl2_input_dim(obs_dim, action_dim) + extra_inputs
        if any(size < 1 for size in encoder_sizes):
            raise ValueError(f"encoder_sizes must be positive widths, got {list(encoder_sizes)}")
        self.encoder_sizes = tuple(int(size) for size in encoder_sizes)
        # None (not an empty Sequential) without an encoder, so older checkpoints load unchanged
        self.encoder = mlp(self.input_dim, self.encoder_sizes) if self.encoder_sizes else None
        cell_inputs = self.encoder_sizes[-1] if self.encoder_sizes else self.input_dim
        rnn_cls = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(cell_inputs, hidden_size, num_layers=num_layers, batch_first=True)
        self.feature_dim = hidden_size  # width of features() / step_features(), what the head reads
        self.head = make_head(self.feature_dim, action_dim, discrete=discrete, init_std=init_std,
                              state_std=state_std, tanh_head=tanh_head)
        if weight_init != "torch":
            self._init_weights(weight_init)

    def _init_weights(self, scheme: WeightInit) -> None:
        """``"xavier"``: the Meta-World+ reference RL²'s initialization, gate by gate.

        Xavier-uniform input kernels and zero biases for the encoder, the cell and the head, and an
        orthogonal recurrent kernel per gate (flax's ``GRUCell`` defaults as the reference sets them).
        PyTorch's default draws every cell weight from U(+-1/sqrt(hidden)), so a 256-unit GRU's
        recurrent matrices start with a spectral radius near 0.6 and a 250-step segment's gradient
        fades through them; orthogonal ones start at 1. A state-dependent log-std keeps the bias
        ``make_head`` gave it (``init_std``), so the initial noise is still the configured one.
        """
        log_std = getattr(self.head, "log_std_layer", None)
        bias = None if log_std is None else log_std.bias.detach().clone()
        init_linear_(self, scheme)
        gates = 3 if self.cell == "gru" else 4
        for name, param in self.rnn.named_parameters():
            with torch.no_grad():
                if name.startswith("bias"):
                    nn.init.zeros_(param)
                    continue
                for gate in param.chunk(gates, dim=0):  # [H, in] per gate, as flax keeps them apart
                    (nn.init.orthogonal_ if name.startswith("weight_hh") else nn.init.xavier_uniform_)(gate)
        if bias is not None:
            with torch.no_grad():
                log_std.bias.copy_(bias)

    @staticmethod
    def select_rows(rows: Tensor, chosen: RecurrentState, other: RecurrentState) -> RecurrentState:
        """``chosen``'s memory where ``rows`` (``[B]`` bool) is true, ``other``'s elsewhere (batch is dim 1)."""
        keep = rows.view(1, -1, 1)
        if isinstance(chosen, Tensor) and isinstance(other, Tensor):  # GRU
            return torch.where(keep, chosen, other)
        (h, c), (h_other, c_other) = chosen, other  # LSTM
        return torch.where(keep, h, h_other), torch.where(keep, c, c_other)

    def make_inputs(self, obs: Tensor, prev_action: Tensor, prev_reward: Tensor, done: Tensor) -> Tensor:
        """RL² inputs for this policy's action space (see :func:`rl2_inputs`)."""
        return rl2_inputs(obs, prev_action, prev_reward, done, action_dim=self.action_dim, discrete=self.discrete)

    def initial_state(
        self, batch: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> RecurrentState:
        """Zero state for ``batch`` trials; reset only at trial boundaries."""
        ref = next(self.parameters())
        zeros = torch.zeros(
            self.num_layers,
            batch,
            self.hidden_size,
            device=device if device is not None else ref.device,
            dtype=dtype or ref.dtype,
        )
        return zeros if self.cell == "gru" else (zeros, zeros.clone())

    def features(self, inputs: Tensor, state: RecurrentState | None = None) -> tuple[Tensor, RecurrentState]:
        """Memory output for every step: ``inputs [B, L, input_dim] -> [B, L, feature_dim]``, and the final state.

        ``state`` continues from an earlier segment (truncated BPTT); ``None`` starts from zeros.
        """
        features, final = self.rnn(self._encode(inputs), state)
        return features, final

    def step_features(self, inputs: Tensor, state: RecurrentState) -> tuple[Tensor, RecurrentState]:
        """One step of :meth:`features`: ``inputs [B, input_dim] -> [B, feature_dim]`` and the next state."""
        features, new_state = self.rnn(self._encode(inputs).unsqueeze(1), state)
        return features.squeeze(1), new_state

    def _encode(self, inputs: Tensor) -> Tensor:
        """The per-step input encoder (identity without ``encoder_sizes``)."""
        return inputs if self.encoder is None else self.encoder(inputs)

    def forward(self, inputs: Tensor, state: RecurrentState | None = None) -> DistParams:
        """Distribution parameters for every step of ``inputs [B, L, input_dim]``."""
        features, _ = self.features(inputs, state)
        return self.head(features)

    def step(self, inputs: Tensor, state: RecurrentState) -> tuple[Distribution, RecurrentState]:
        """One rollout step: ``inputs [B, input_dim]`` -> distribution over ``[B]``."""
        features, new_state = self.step_features(inputs, state)
        return self.head.distribution(self.head(features)), new_state

    def forward_sequence(
        self, inputs: Tensor, state: RecurrentState | None = None, *, return_state: bool = False
    ) -> Distribution | tuple[Distribution, RecurrentState]:
        """Whole trials at once: distribution with batch shape ``[B, L]``.

        ``state`` continues from an earlier segment (truncated BPTT); ``None`` starts
        from zeros. With ``return_state`` the final state is returned as well.
        """
        features, final = self.features(inputs, state)
        dist = self.head.distribution(self.head(features))
        return (dist, final) if return_state else dist
