"""metarl.fileio.atomic_write: the target holds the old or the new bytes, and no temp file outlives a write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metarl import fileio
from metarl.fileio import atomic_write


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_str_as_utf8_and_bytes_verbatim(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    assert atomic_write(target, "a,b\r\nπ,1\n") == target  # no newline translation, UTF-8
    assert target.read_bytes() == "a,b\r\nπ,1\n".encode()
    assert atomic_write(str(target), b"\x00\xffraw") == target  # a str path is accepted too
    assert target.read_bytes() == b"\x00\xffraw"
    assert _names(tmp_path) == ["out.csv"]


@pytest.mark.parametrize("fsync", [False, True])
def test_replaces_an_existing_file_and_leaves_no_temp(tmp_path: Path, fsync: bool) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("old\n")
    atomic_write(target, "new\n", fsync=fsync)
    assert target.read_text() == "new\n"
    assert _names(tmp_path) == ["config.yaml"]


def test_fsync_flushes_the_temp_file_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic_write(tmp_path / "latest", "iter_000001\n", fsync=True)
    assert events == ["fsync", "replace"]
    events.clear()
    atomic_write(tmp_path / "latest", "iter_000002\n")
    assert events == ["replace"]


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
@pytest.mark.parametrize("unique", [False, True])
def test_a_failed_rename_keeps_the_old_file_and_removes_the_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 exc: BaseException, unique: bool) -> None:
    target = tmp_path / "progress.csv"
    target.write_bytes(b"old\n")
    seen: list[Path] = []

    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(Path(src))
        assert Path(src).read_bytes() == b"new\n"  # the new bytes were complete in the temp file
        raise exc

    monkeypatch.setattr(fileio.os, "replace", failing_replace)
    with pytest.raises(type(exc)) as info:
        atomic_write(target, "new\n", unique=unique, tmp_prefix=".tmp-")
    assert info.value is exc  # propagated unchanged, for each caller to report in its own words
    assert target.read_bytes() == b"old\n"
    assert _names(tmp_path) == ["progress.csv"]
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".tmp-progress.csv")  # beside the target


def test_a_failed_write_removes_the_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "curves.json"
    target.write_text("{}\n")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, "[" * 10_000, fsync=True)
    assert target.read_text() == "{}\n"
    assert _names(tmp_path) == ["curves.json"]


def test_temp_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``.<name>.tmp`` by default (what ``.*.tmp`` globs find); ``unique`` adds random hex; the prefix is the caller's."""
    made: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (made.append(Path(a).name), real_replace(a, b))[1])
    atomic_write(tmp_path / "curves.csv", "x")
    atomic_write(tmp_path / "latest", "x", tmp_prefix=".tmp-", unique=True)
    atomic_write(tmp_path / "latest", "x", tmp_prefix=".tmp-", unique=True)
    assert made[0] == ".curves.csv.tmp"
    assert all(name.startswith(".tmp-latest-") and name.endswith(".tmp") for name in made[1:])
    assert made[1] != made[2]


def test_a_missing_folder_raises_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        atomic_write(tmp_path / "gone" / "config.yaml", "x")
    assert "gone" in str(info.value.filename)
    assert _names(tmp_path) == []
