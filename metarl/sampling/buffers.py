"""The per-step arrays the driver and the env-stepping core exchange.

One flat set of numpy arrays indexed by env *slot* (one slot = one env that
runs the episodes of one trial). The same layout lives in plain memory
(``serial``, Ray actors) or in one ``multiprocessing.shared_memory`` block
(``process``), so the stepping core never knows which backend it serves and a
step costs no serialization: the driver writes actions, the core writes
results, in place.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from multiprocessing import shared_memory

import numpy as np

#: Inputs written by the driver before a step.
INPUTS = ("actions", "active", "next_seed")
#: Outputs written by the stepping core. ``success_reported``: this step's info had a ``"success"``
#: key, so the driver learns from the envs themselves whether a family reports success (every
#: backend moves the outputs alike, so the flag needs no backend-specific code).
OUTPUTS = ("obs", "final_obs", "reward", "terminated", "truncated", "success", "success_reported")


@dataclass(frozen=True)
class Layout:
    """Shapes and dtypes of a buffer set; picklable, so workers can rebuild views."""

    n: int
    obs_shape: tuple[int, ...]
    act_shape: tuple[int, ...]
    act_dtype: str

    def specs(self) -> list[tuple[str, tuple[int, ...], np.dtype]]:
        n = self.n
        return [
            ("actions", (n, *self.act_shape), np.dtype(self.act_dtype)),
            ("active", (n,), np.dtype(bool)),
            ("next_seed", (n,), np.dtype(np.int64)),
            ("obs", (n, *self.obs_shape), np.dtype(np.float32)),
            ("final_obs", (n, *self.obs_shape), np.dtype(np.float32)),
            ("reward", (n,), np.dtype(np.float32)),
            ("terminated", (n,), np.dtype(bool)),
            ("truncated", (n,), np.dtype(bool)),
            ("success", (n,), np.dtype(bool)),
            ("success_reported", (n,), np.dtype(bool)),
        ]

    def nbytes(self) -> int:
        return sum(_aligned(int(np.prod(s)) * d.itemsize) for _, s, d in self.specs())


def _aligned(nbytes: int) -> int:
    return (nbytes + 63) // 64 * 64


@dataclass
class StepBuffers:
    """Views for all slots; ``view(lo, hi)`` gives a worker its contiguous share."""

    actions: np.ndarray
    active: np.ndarray
    next_seed: np.ndarray
    obs: np.ndarray
    final_obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    success: np.ndarray
    success_reported: np.ndarray

    @classmethod
    def allocate(cls, layout: Layout, buf: memoryview | bytearray | None = None) -> StepBuffers:
        """Views into ``buf`` (e.g. a shared-memory block), or fresh zeroed arrays."""
        if buf is None:
            return cls(**{name: np.zeros(shape, dtype) for name, shape, dtype in layout.specs()})
        arrays, offset = {}, 0
        for name, shape, dtype in layout.specs():
            count = int(np.prod(shape))
            arrays[name] = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)
            offset += _aligned(count * dtype.itemsize)
        return cls(**arrays)

    def view(self, lo: int, hi: int) -> StepBuffers:
        return StepBuffers(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})

    def outputs(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, name) for name in OUTPUTS)

    def write(self, names: tuple[str, ...], values: tuple[np.ndarray, ...]) -> None:
        for name, value in zip(names, values, strict=True):
            getattr(self, name)[...] = value

    def release(self) -> None:
        """Drop references (shared memory can only be closed once no view is alive)."""
        for f in fields(self):
            setattr(self, f.name, None)


class SharedBlock(shared_memory.SharedMemory):
    """A shared-memory block that tolerates views outliving it.

    After a failure the driver may still hold numpy views (in a traceback's
    frames); ``close`` then raises ``BufferError``. The name is unlinked anyway
    and the mapping goes away with the last view, so that is not worth a warning
    at garbage collection.
    """

    def close(self) -> None:
        try:
            super().close()
        except BufferError:
            pass
