"""Shared fixtures. Tests run headless and single-threaded for repeatable timing."""

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MUJOCO_GL", "egl")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Make SIGINT raise KeyboardInterrupt in this process, as it does at an interactive prompt.

    Why: a shell starts background jobs (``make test &``, ``nohup``) with SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler, so a test that sends itself a real Ctrl-C would see
    nothing happen. The handler is restored afterwards.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
