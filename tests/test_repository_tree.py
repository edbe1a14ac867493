"""The tracked tree stays small: results keep what a reader needs, not what a rerun regenerates."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 30
LARGEST_FILE_MB = 2


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (e.g. an unpacked sdist)")
    return [ROOT / p for p in out.decode().split("\0") if p]


def test_tracked_tree_is_small_and_holds_no_regenerable_bulk() -> None:
    files = [p for p in _tracked() if p.is_file()]
    total = sum(p.stat().st_size for p in files) / 1e6
    assert total < LIMIT_MB, f"tracked tree is {total:.1f} MB (limit {LIMIT_MB} MB)"
    events = [p for p in files if "tfevents" in p.name]
    assert not events, f"TensorBoard event files are tracked: {events[:3]}"
    big = sorted((p.stat().st_size / 1e6, str(p.relative_to(ROOT))) for p in files
                 if p.stat().st_size > LARGEST_FILE_MB * 1e6)
    assert not big, f"files over {LARGEST_FILE_MB} MB are tracked (gzip curve files, drop checkpoints): {big}"
