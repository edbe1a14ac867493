"""Capture and restore every random number generator a run touches.

A resumed run must draw the same tasks, actions and minibatches as an
uninterrupted one, so all RNG streams are checkpointed: Python ``random``,
NumPy's legacy global state, any NumPy ``Generator`` objects the caller owns
(samplers, task distributions), torch CPU and, when present, CUDA.

States are converted to plain lists/ints/tensors so they survive
``torch.load(..., weights_only=True)``; numpy arrays are not allowed there.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "capture_rng_state",
    "generator_state",
    "restore_rng_state",
    "set_generator_state",
]


def _plain(obj: Any) -> Any:
    """Turn numpy containers/scalars into lists and Python numbers."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def generator_state(gen: np.random.Generator) -> dict[str, Any]:
    """Plain-data state of a NumPy ``Generator`` (PCG64, MT19937, Philox, SFC64)."""
    return _plain(gen.bit_generator.state)


def set_generator_state(gen: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Inverse of :func:`generator_state`; the bit generator type must match."""
    expected = type(gen.bit_generator).__name__
    if state.get("bit_generator") != expected:
        raise ValueError(f"RNG state is for {state.get('bit_generator')!r}, generator is {expected!r}")
    if expected == "MT19937":  # its key must be a uint32 array again
        state = dict(state)
        state["state"] = {
            "key": np.asarray(state["state"]["key"], dtype=np.uint32),
            "pos": state["state"]["pos"],
        }
    gen.bit_generator.state = dict(state)


def capture_rng_state(
    generators: Mapping[str, np.random.Generator] | None = None,
) -> dict[str, Any]:
    """Snapshot all global RNGs plus the named ``generators`` (weights_only-safe)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy_legacy": {
            "name": name,
            "keys": keys.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "numpy_generators": {k: generator_state(g) for k, g in (generators or {}).items()},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(
    state: Mapping[str, Any],
    generators: Mapping[str, np.random.Generator] | None = None,
) -> None:
    """Restore a :func:`capture_rng_state` snapshot, including named ``generators``.

    A generator present on one side only is an error: silently leaving it
    unrestored would break resume determinism without any symptom.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    leg = state["numpy_legacy"]
    np.random.set_state(
        (
            leg["name"],
            np.asarray(leg["keys"], dtype=np.uint32),
            leg["pos"],
            leg["has_gauss"],
            leg["cached_gaussian"],
        )
    )
    saved = state.get("numpy_generators", {})
    given = dict(generators or {})
    if set(saved) != set(given):
        raise ValueError(f"checkpoint has numpy generators {sorted(saved)}, caller passed {sorted(given)}")
    for k, gen in given.items():
        set_generator_state(gen, saved[k])
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
