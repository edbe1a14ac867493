"""The two kinds of error a ``metarl`` command can end with, so every layer reports alike.

* :class:`UsageError`: the input is wrong (a typo in a family name, a value out of range, a run
  directory that cannot be used, a checkpoint that does not fit). The message names the bad value
  and what is allowed; the CLI prints it on one line and exits with status 2.
* Anything else raised while a command runs (an env crashed, a worker died, the disk filled up) is
  a failure at run time: one line and status 1, the traceback only with ``--debug``.

This module imports nothing from metarl, so every package can raise these without cycles.
"""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(ValueError):
    """Bad input: the message says which value and what would be accepted (exit status 2)."""
