"""progress.csv appends across resumes; TensorBoard really receives scalars."""

from __future__ import annotations

import csv

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.runs.logger import (
    AppendingCSVOutputFormat,
    ProgressBar,
    RunLogger,
    adapt_key,
    namespaced,
)


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_csv_appends_on_resume_and_keeps_header(tmp_path):
    with RunLogger(tmp_path, stdout=False, tensorboard=False) as log:
        log.log({"loss": 1.0, "time/iteration": 1}, step=1)
        log.log({"loss": 0.5, "time/iteration": 2}, step=2)
    header_before = (tmp_path / "progress.csv").read_text().splitlines()[0]
    # resume: a new logger on the same folder must not truncate the file
    with RunLogger(tmp_path, stdout=False, tensorboard=False) as log:
        log.log({"time/iteration": 3, "loss": 0.25}, step=3)
    lines = (tmp_path / "progress.csv").read_text().splitlines()
    assert lines[0] == header_before  # same columns, same order despite new dict order
    rows = _rows(tmp_path / "progress.csv")
    assert [r["train/loss"] for r in rows] == ["1.0", "0.5", "0.25"]
    assert [r["time/iteration"] for r in rows] == ["1", "2", "3"]


def test_csv_new_key_after_resume_widens_header_without_losing_rows(tmp_path):
    with RunLogger(tmp_path, stdout=False, tensorboard=False) as log:
        log.log({"loss": 1.0}, step=1)
    with RunLogger(tmp_path, stdout=False, tensorboard=False) as log:
        log.log({"loss": 2.0, adapt_key(1): 7.5}, step=2)
    rows = _rows(tmp_path / "progress.csv")
    assert rows == [
        {"train/loss": "1.0", "adapt/round_1/return": ""},
        {"train/loss": "2.0", "adapt/round_1/return": "7.5"},
    ]


def test_csv_drops_partial_last_line_from_a_crash(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_text("train/loss,time/iteration\n1.0,1\n0.5,")  # died mid-row
    writer = AppendingCSVOutputFormat(path)
    writer.write({"train/loss": 0.25, "time/iteration": 2}, {"train/loss": None, "time/iteration": None})
    writer.close()
    assert path.read_text() == "train/loss,time/iteration\n1.0,1\n0.25,2\n"


def test_tensorboard_event_file_has_scalar(tmp_path):
    with RunLogger(tmp_path, stdout=False, csv=False) as log:
        log.log({"train/return": 3.5, "perf/steps_per_s": torch.tensor(1234.0)}, step=7)
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file written"
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    (event,) = acc.Scalars("train/return")
    assert event.step == 7 and event.value == pytest.approx(3.5)
    assert acc.Scalars("perf/steps_per_s")[0].value == pytest.approx(1234.0)


def test_stdout_table_is_printed(tmp_path, capsys):
    with RunLogger(tmp_path, tensorboard=False, csv=False) as log:
        log.log({"train/return": 1.5}, step=1)
    assert "return" in capsys.readouterr().out


def test_namespacing():
    assert namespaced({"loss": 1, "adapt/round_0/return": 2}) == {
        "train/loss": 1,
        "adapt/round_0/return": 2,
    }
    assert adapt_key(3, "success") == "adapt/round_3/success"


def test_progress_bar_postfix_and_disable():
    bar = ProgressBar(10, initial=2, enabled=True)
    bar.update(3, {"train/return": 12.345, "perf/steps_per_s": 999.6})
    assert bar.bar.n == 3
    assert "return=12.3" in bar.bar.postfix and "steps/s=1000" in bar.bar.postfix
    bar.close()
    quiet = ProgressBar(10, enabled=False)
    assert quiet.bar.disable
    quiet.close()
