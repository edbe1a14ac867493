"""A Ctrl-C or SIGTERM while a local Ray cluster starts waits until Ray is up, then stops it cleanly.

Why it matters: interrupted inside ``ray.init``, Ray has not yet recorded its node, so nothing
can shut it down and its ``ray::DashboardAgent`` / ``ray::RuntimeEnvAgent`` outlive the run.
A stand-in for ``ray`` keeps this fast; ``metarl bench sampling`` was checked by hand.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from metarl.sampling.ray_backend import init_local_ray


class FakeRay:
    """Records calls; ``init`` receives ``signals`` mid-way, as a slow start would."""

    def __init__(self, *signals: int) -> None:
        self.signals, self.calls = signals, []

    def init(self, **kwargs: Any) -> None:
        for sig in self.signals:
            os.kill(os.getpid(), sig)
        self.calls.append("init finished")

    def shutdown(self) -> None:
        self.calls.append("shutdown")


def test_ctrl_c_during_start_is_held_then_raised_with_ray_shut_down(ctrl_c_raises: None, capsys) -> None:
    ray = FakeRay(signal.SIGINT, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        init_local_ray(ray, num_cpus=1)
    assert ray.calls == ["init finished", "shutdown"]  # not cut short; then stopped
    assert "SIGINT received while Ray starts" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back


def test_sigterm_during_start_reaches_the_handler_in_place_afterwards() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        ray = FakeRay(signal.SIGTERM)
        init_local_ray(ray)
        assert seen == [signal.SIGTERM] and ray.calls == ["init finished"]  # delivered once, Ray kept
        init_local_ray(FakeRay())
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
