"""Atomic file writes: the one way metarl replaces a file that someone may be reading.

Run directories are read while they are written: a plot or ``tail`` beside a
training run, an evaluation re-reading its curves, a resume after a crash. So
files are never rewritten in place. :func:`atomic_write` writes the new
contents to a temp file beside the target and moves it over the target with
one ``os.replace``, which is atomic on POSIX and Windows when both names are
on the same filesystem (a temp file in the same folder always is). Hence:

* readers see the old file or the new one, never half a file;
* a crash, SIGKILL or full disk while writing leaves the old file untouched;
  on an ordinary failure the temp file is removed as well, and only a process
  killed mid-write leaves one behind, under a hidden name that callers'
  cleanup code (see ``tmp_prefix``) can recognise and sweep.

``fsync=True`` also forces the data to disk before the rename, so that after a
power loss the target holds the old or the new contents rather than an empty
file; it costs a disk flush, so it is for files a resume depends on.

This module imports nothing from metarl, so every package (``evaluation`` as
much as ``runs``) can use it without an import running back up.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, fsync: bool = False,
                 tmp_prefix: str = ".", unique: bool = False) -> Path:
    """Replace ``path`` with ``data`` atomically; returns ``path`` as a :class:`~pathlib.Path`.

    ``data`` is written byte for byte; a ``str`` is encoded as UTF-8 with no
    newline translation (so ``"\\r\\n"`` in a CSV stays as it is).

    The temp file is ``<tmp_prefix><name>.tmp`` in the target's folder, or
    ``<tmp_prefix><name>-<random hex>.tmp`` with ``unique=True`` (for a folder
    where more than one writer could meet). The default prefix ``"."`` keeps it
    hidden; a caller that sweeps its own leftovers passes the prefix it sweeps.

    Any exception (``OSError`` for a full disk, a read-only or vanished folder;
    ``KeyboardInterrupt`` too) removes the temp file and propagates unchanged,
    so each caller reports it in its own words; the target is left as it was.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     target = Path(folder) / "notes.txt"
        ...     first = atomic_write(target, "first\\n").read_text()
        ...     second = atomic_write(target, b"second\\n").read_bytes()
        ...     names = sorted(p.name for p in Path(folder).iterdir())
        >>> first, second, names  # replaced in place, and no temp file left behind
        ('first\\n', b'second\\n', ['notes.txt'])
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    tmp = path.with_name(f"{tmp_prefix}{path.name}{f'-{uuid.uuid4().hex}' if unique else ''}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the original error is the one worth reporting
            tmp.unlink(missing_ok=True)
        raise
    return path
