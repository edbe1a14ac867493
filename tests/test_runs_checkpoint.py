"""Checkpoints: round trip, RNG capture, crash safety, tamper detection, no code execution."""

from __future__ import annotations

import builtins
import json
import random

import numpy as np
import pytest
import torch

from metarl.runs import checkpoint as ckpt_mod
from metarl.runs.checkpoint import (
    CheckpointError,
    capture_rng_state,
    find_latest,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _state(value: float = 1.0) -> dict:
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    with torch.no_grad():
        model.weight.fill_(value)
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "sampler": {"episodes": 12, "obs_mean": torch.zeros(3), "name": "serial", "x": None},
        "rng": capture_rng_state({"tasks": np.random.default_rng(1)}),
    }


def _draws(gen: np.random.Generator) -> tuple:
    return (random.random(), np.random.rand(), gen.random(), torch.rand(1).item())


def test_rng_capture_restore_all_streams():
    gens = {"pcg": np.random.default_rng(3), "mt": np.random.Generator(np.random.MT19937(4))}
    state = capture_rng_state(gens)
    first = [_draws(gens["pcg"]), gens["mt"].random()]
    restore_rng_state(state, gens)
    assert [_draws(gens["pcg"]), gens["mt"].random()] == first
    with pytest.raises(ValueError, match="numpy generators"):
        restore_rng_state(state, {"pcg": gens["pcg"]})


def test_save_load_round_trip(tmp_path):
    state = _state(2.0)
    path = save_checkpoint(tmp_path, state, agent="toy", iteration=10)
    assert path == tmp_path / "checkpoints" / "iter_000010"
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "iter_000010"
    meta = json.loads((path / "meta.json").read_text())
    assert meta["agent"] == "toy" and meta["iteration"] == 10 and len(meta["sha256"]) == 64
    loaded = load_checkpoint(path)
    assert loaded.iteration == 10 and loaded.agent == "toy"
    torch.testing.assert_close(loaded.state["model"], state["model"])
    torch.testing.assert_close(loaded.state["optimizer"], state["optimizer"])
    assert loaded.state["sampler"]["name"] == "serial"
    # state.pt is readable with plain torch.load(weights_only=True), RNG states included
    raw = torch.load(path / "state.pt", weights_only=True)
    restore_rng_state(raw["rng"], {"tasks": np.random.default_rng(99)})
    # a run dir resolves to its latest checkpoint
    assert load_checkpoint(tmp_path).path == path


def test_unsafe_state_is_refused_at_save_time(tmp_path):
    with pytest.raises(CheckpointError, match=r"state\['sampler'\]\['buf'\] is a numpy.ndarray"):
        save_checkpoint(tmp_path, {"sampler": {"buf": np.zeros(3)}}, agent="toy", iteration=1)
    assert find_latest(tmp_path) is None


def test_keep_last_and_find_latest(tmp_path):
    for it in (5, 10, 15, 20):
        save_checkpoint(tmp_path, {"i": it}, agent="toy", iteration=it, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["iter_000015", "iter_000020"]
    assert find_latest(tmp_path).name == "iter_000020"
    # re-saving an existing iteration replaces it atomically
    save_checkpoint(tmp_path, {"i": -1}, agent="toy", iteration=20)
    assert load_checkpoint(tmp_path).state == {"i": -1}


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, _state(1.0), agent="toy", iteration=1)
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(1000)}, f)
        f.truncate(100)  # half-written file, then the "disk" fails
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(CheckpointError, match="cannot write a checkpoint.*No space left"):
        save_checkpoint(tmp_path, _state(2.0), agent="toy", iteration=2)
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    monkeypatch.undo()

    latest = find_latest(tmp_path)
    assert latest.name == "iter_000001"
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "iter_000001"
    assert float(load_checkpoint(latest).state["model"]["weight"][0, 0]) == 1.0


def test_hard_kill_leftovers_are_ignored_and_swept(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"i": 1}, agent="toy", iteration=1)

    def killed(src, dst):  # process dies right before the commit rename
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, {"i": 2}, agent="toy", iteration=2)
    monkeypatch.undo()
    # emulate SIGKILL (no cleanup ran): a complete-looking temp dir is left behind
    stale = tmp_path / "checkpoints" / ".tmp-iter_000002-dead"
    stale.mkdir()
    (stale / "state.pt").write_bytes(b"garbage")
    (stale / "meta.json").write_text("{}")
    assert find_latest(tmp_path).name == "iter_000001"
    assert load_checkpoint(tmp_path).state == {"i": 1}
    save_checkpoint(tmp_path, {"i": 3}, agent="toy", iteration=3)
    assert not stale.exists()


def test_tampered_checkpoint_names_file(tmp_path):
    path = save_checkpoint(tmp_path, _state(), agent="toy", iteration=1)
    state_file = path / "state.pt"
    data = bytearray(state_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(state_file) in str(err.value) and "sha256 mismatch" in str(err.value)


def test_truncated_checkpoint_names_file(tmp_path):
    path = save_checkpoint(tmp_path, _state(), agent="toy", iteration=1)
    state_file = path / "state.pt"
    state_file.write_bytes(state_file.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"state\.pt: sha256 mismatch.*truncated"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError) as err:  # even unverified it fails clearly
        load_checkpoint(path, verify=False)
    assert str(state_file) in str(err.value) and "cannot be read" in str(err.value)


def test_missing_or_corrupt_meta_names_file(tmp_path):
    path = save_checkpoint(tmp_path, {"i": 1}, agent="toy", iteration=1)
    (path / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"meta\.json: unreadable or corrupt JSON"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "elsewhere")


class _Payload:
    """Unpickling this runs code that creates a file (a classic pickle exploit)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    path = save_checkpoint(tmp_path, {"i": 1}, agent="toy", iteration=1)
    marker = tmp_path / "pwned"
    state_file = path / "state.pt"
    torch.save({"model": {}, "evil": _Payload(marker)}, state_file)
    # an attacker who can write the file can also fix up the checksum
    meta = json.loads((path / "meta.json").read_text())
    meta["sha256"] = ckpt_mod._sha256(state_file)
    (path / "meta.json").write_text(json.dumps(meta))

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert not marker.exists(), "the pickle payload was executed"
    msg = str(err.value)
    assert str(state_file) in msg and "refused to load" in msg and "weights_only" in msg
    assert "exec" in msg  # names the forbidden global

    # control: the payload is live, so the test above would catch a regression
    live_marker = tmp_path / "pwned-control"
    control = tmp_path / "control.pt"
    torch.save({"evil": _Payload(live_marker)}, control)
    torch.load(control, weights_only=False)
    assert live_marker.exists()
