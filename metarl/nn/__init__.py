"""Policies and value functions.

Every policy's ``forward`` returns distribution *parameters* (tensors) and
``policy.distribution(params_or_None, *inputs)`` wraps them, so the same module
serves its own weights, adapted weights via ``functional_call``, or a vmapped stack
of per-task weights (``distribution_stacked`` / ``act``).
"""

from metarl.core.baselines import LinearFeatureBaseline  # tensor math, re-exported beside the value function
from metarl.nn.baselines import MLPValueFunction
from metarl.nn.heads import CategoricalHead, GaussianHead, StateStdGaussianHead, make_head
from metarl.nn.mlp import CategoricalMLPPolicy, GaussianMLPPolicy, WeightInit, init_linear_, mlp
from metarl.nn.policy import Policy
from metarl.nn.recurrent import RecurrentPolicy
from metarl.nn.rl2_inputs import rl2_input_dim, rl2_inputs
from metarl.nn.snail import SnailPolicy

__all__ = [
    "CategoricalHead",
    "CategoricalMLPPolicy",
    "GaussianHead",
    "StateStdGaussianHead",
    "GaussianMLPPolicy",
    "LinearFeatureBaseline",
    "MLPValueFunction",
    "Policy",
    "RecurrentPolicy",
    "SnailPolicy",
    "WeightInit",
    "init_linear_",
    "make_head",
    "mlp",
    "rl2_input_dim",
    "rl2_inputs",
]
