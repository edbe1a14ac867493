"""The metarl version recorded in run metadata and checkpoints.

Recorded so a checkpoint or run directory can be matched to the code that
wrote it; an unknown version is reported rather than guessed.
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["metarl_version"]


def metarl_version() -> str:
    """Installed distribution version, else ``metarl.__version__``, else ``0+unknown``."""
    try:
        return metadata.version("metarl")
    except metadata.PackageNotFoundError:
        import metarl

        return str(getattr(metarl, "__version__", "0+unknown"))
