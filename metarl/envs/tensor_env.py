"""The tensor env contract: a family's whole batch of envs as torch tensors on one device.

Why: for the cheap families (bandits, tabular MDPs, 2D navigation) an env step is a handful of
arithmetic operations, and a Python ``gymnasium.Env.step`` per env per step costs a hundred times
more than the step itself. A :class:`TensorEnv` steps every (task, trial) row of a batch at once
with tensor operations on the policy's device, so the rollout loop (:mod:`metarl.sampling.tensor`)
never leaves the device: no per-step host transfer, no Python per env.

A family opts in by overriding :meth:`TaskFamily.make_tensor_env
<metarl.envs.base.TaskFamily.make_tensor_env>`; the gymnasium env stays the reference every
tensor env is tested against (``tests/test_envs_tensor.py``) and the path for every other
family. The contract, for ``N`` rows (row ``i`` runs ``tasks[i]``)::

    env = family.make_tensor_env(tasks, device)   # task parameters become tensors, once
    obs = env.reset(rows, generator)              # rows: bool [N]; obs: [N, *obs_shape], every row
    out = env.step(actions, generator)            # TensorStep of [N, ...] tensors

Rules a plug-in author keeps:

* **Tasks as tensors.** Convert the tasks' parameters to tensors on ``device`` in the
  constructor; ``reset`` and ``step`` never touch Python objects per row.
* **All randomness from ``generator``** (a ``torch.Generator`` on ``device``): reset noise,
  stochastic rewards, sampled transitions. Then one seed gives the same episodes on every run.
  Draw the same shapes whatever the data (e.g. for every row, then select), so that which rows
  are being reset does not shift later draws.
* **Every row, every call.** ``step`` steps all rows (the sampler ignores the outputs of rows
  whose episodes are over); ``reset`` returns the observation of every row, the new episode's
  first one where ``rows`` is set and the current one elsewhere.
* **Time limits are the sampler's.** ``terminated`` is the env's own end (a goal reached); the
  sampler truncates at :attr:`TaskFamily.horizon <metarl.envs.base.TaskFamily.horizon>`.
* **Actions arrive clipped** to a bounded ``Box`` action space (as the gymnasium path clips
  them), as float32; ``Discrete`` actions arrive as int64 ``[N]``.

Example (a worked plug-in, a 1-D "walk to the goal" family):

    >>> import torch, gymnasium as gym, numpy as np
    >>> from metarl.envs.base import TaskFamily
    >>> from metarl.envs.tensor_env import TensorEnv, TensorStep
    >>> class WalkTensorEnv(TensorEnv):
    ...     def __init__(self, tasks, device):
    ...         super().__init__(len(tasks), device)
    ...         self.goal = torch.tensor([t.params["goal"] for t in tasks], dtype=torch.float64, device=device)
    ...         self.pos = torch.zeros(self.n, dtype=torch.float64, device=device)
    ...     def reset(self, rows, generator):
    ...         self.pos = torch.where(rows, 0.0, self.pos)
    ...         return self.pos[:, None].float()
    ...     def step(self, actions, generator):
    ...         self.pos = self.pos + actions[:, 0].double()
    ...         dist = (self.pos - self.goal).abs()
    ...         return TensorStep(self.pos[:, None].float(), (-dist).float(), dist < 0.05)
    >>> class Walk(TaskFamily):
    ...     name, horizon = "walk", 20
    ...     observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    ...     action_space = gym.spaces.Box(-0.1, 0.1, (1,), np.float32)
    ...     def sample(self, n, rng=None, split="train"):
    ...         return self._tasks(split, [{"goal": float(g)} for g in np.random.default_rng(rng).uniform(-1, 1, n)])
    ...     def make_env(self, task):  # the gymnasium reference, omitted in this example
    ...         raise NotImplementedError
    ...     def make_tensor_env(self, tasks, device):
    ...         return WalkTensorEnv(tasks, device)
    >>> family = Walk()
    >>> env = family.make_tensor_env(family.sample(3, rng=0), torch.device("cpu"))
    >>> g = torch.Generator().manual_seed(0)
    >>> obs = env.reset(torch.ones(3, dtype=torch.bool), g)
    >>> out = env.step(torch.full((3, 1), 0.1), g)
    >>> tuple(out.obs.shape), out.reward.dtype, out.terminated.dtype
    ((3, 1), torch.float32, torch.bool)

With the family registered (:mod:`metarl.envs.plugins`), ``sampling.backend: tensor`` (or the
default ``auto``) rolls it out through :class:`metarl.sampling.tensor.TensorSampler`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["TensorEnv", "TensorStep", "categorical_from_uniform"]


class TensorStep(NamedTuple):
    """What :meth:`TensorEnv.step` returns for all ``N`` rows."""

    obs: Tensor  #: ``[N, *obs_shape]`` float32, the observation after the step
    reward: Tensor  #: ``[N]`` float32
    terminated: Tensor  #: ``[N]`` bool, the env's own end of an episode
    success: Tensor | None = None  #: ``[N]`` bool where the family reports success, else ``None``


class TensorEnv(ABC):
    """``n`` env rows of one family on ``device``, reset and stepped together (see the module docs)."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.n, self.device = int(n), torch.device(device)

    @abstractmethod
    def reset(self, rows: Tensor, generator: torch.Generator) -> Tensor:
        """Start new episodes in the rows where ``rows`` (bool ``[N]``) is set; the observations of all rows."""

    @abstractmethod
    def step(self, actions: Tensor, generator: torch.Generator) -> TensorStep:
        """Step every row with ``actions[i]``."""


def categorical_from_uniform(probs: Tensor, u: Tensor) -> Tensor:
    """Indices drawn from the rows of ``probs`` ``[N, K]`` by inverse CDF at uniforms ``u`` ``[N]``.

    The rule numpy's ``Generator.choice(K, p=probs)`` applies to its own uniform draw (the
    normalized cumulative sum, searched from the right), so the gymnasium and tensor paths map
    the same uniform to the same outcome, which is how their equivalence is tested.
    """
    cdf = probs.cumsum(-1)
    cdf = cdf / cdf[..., -1:]
    return torch.searchsorted(cdf, u.unsqueeze(-1).to(cdf.dtype), right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)
