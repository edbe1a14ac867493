"""Metrics to stdout, ``progress.csv`` and TensorBoard, plus a progress bar.

Built on stable-baselines3's ``Logger`` (users know its stdout table and its
TensorBoard output) with two replacements: SB3's ``CSVOutputFormat`` opens
``progress.csv`` with ``"w+"``, which would wipe the history of a resumed run.
:class:`AppendingCSVOutputFormat` appends, keeps the existing header, and
only rewrites the file (atomically) when a new metric key first appears.

A run that crashed logged iterations past its last checkpoint, and the resumed
run logs them again. So a :class:`RunLogger` opened with ``resume_after=k``
(the checkpoint's iteration) first cuts ``progress.csv`` back to the rows of
iterations ``<= k``, and writes TensorBoard events through
:class:`PurgingTensorBoardOutputFormat`, whose first event tells TensorBoard to
discard the steps ``> k`` that earlier event files hold.

Key convention (namespaces keep TensorBoard and the stdout table grouped):
``train/...`` for the outer loop, ``adapt/round_<k>/<metric>`` for returns
and success after k adaptation rounds (:func:`adapt_key`), ``time/...`` for
counters and durations, ``perf/steps_per_s`` for throughput.
"""

from __future__ import annotations

import csv
import io
import numbers
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from stable_baselines3.common.logger import (
    FormatUnsupportedError,
    HumanOutputFormat,
    KVWriter,
    Logger,
    TensorBoardOutputFormat,
    filter_excluded_keys,
)
from tqdm import tqdm

from metarl.fileio import atomic_write

__all__ = [
    "AppendingCSVOutputFormat",
    "ProgressBar",
    "PurgingTensorBoardOutputFormat",
    "RunLogger",
    "adapt_key",
    "namespaced",
]

PROGRESS_CSV = "progress.csv"
#: The column holding a row's step (the trainer logs each iteration at step = its ``time/iteration``).
STEP_KEY = "time/iteration"


def adapt_key(round_k: int, metric: str = "return") -> str:
    """The one place that spells adaptation-curve keys, so agents and plots agree."""
    return f"adapt/round_{round_k}/{metric}"


def namespaced(metrics: Mapping[str, Any], default: str = "train") -> dict[str, Any]:
    """Prefix un-namespaced keys (``loss`` -> ``train/loss``); namespaced ones pass through."""
    return {(k if "/" in k else f"{default}/{k}"): v for k, v in metrics.items()}


class AppendingCSVOutputFormat(KVWriter):
    """SB3-compatible CSV writer that appends to an existing ``progress.csv``.

    The header is read back on open, so a resumed run writes rows with the
    same columns in the same order; rows from before the interruption are
    never rewritten except to widen the header when a new key appears, or
    to drop, with ``keep_through=k``, the rows whose ``time/iteration`` is
    above ``k``: what a crashed run logged after its last checkpoint, which
    the resumed run logs again. A partial last line (the process died
    mid-write) is dropped, since it would otherwise be glued to the next row.
    """

    def __init__(self, filename: str | Path, keep_through: int | None = None):
        self.path = Path(filename)
        self.keys: list[str] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            self._drop_partial_last_line()
            with self.path.open(newline="") as f:
                header = next(csv.reader(f), [])
            self.keys = list(header)
            if keep_through is not None:
                self._cut_after(keep_through)
        self.file: TextIO = self.path.open("a", newline="")

    def _drop_partial_last_line(self) -> None:
        with self.path.open("rb+") as f:
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def _rows(self) -> list[list[str]]:
        with self.path.open(newline="") as f:
            return list(csv.reader(f))[1:]

    def _rewrite(self, rows: Iterable[list[str]]) -> None:
        """Header plus ``rows`` into a temp file, then ``os.replace``: a crash leaves the old or the new file."""
        buf = io.StringIO(newline="")
        writer = csv.writer(buf)
        writer.writerow(self.keys)
        writer.writerows(row + [""] * (len(self.keys) - len(row)) for row in rows)
        atomic_write(self.path, buf.getvalue(), fsync=True)

    def _cut_after(self, step: int) -> None:
        """Drop rows whose ``time/iteration`` is above ``step``; rows without a readable one are kept."""
        if STEP_KEY not in self.keys:
            return
        col = self.keys.index(STEP_KEY)

        def orphan(row: list[str]) -> bool:
            try:
                return float(row[col]) > step
            except (IndexError, ValueError):
                return False

        rows = self._rows()
        kept = [row for row in rows if not orphan(row)]
        if len(kept) < len(rows):
            self._rewrite(kept)

    def _widen_header(self, extra: list[str]) -> None:
        self.file.close()
        rows = self._rows()
        self.keys.extend(extra)
        self._rewrite(rows)
        self.file = self.path.open("a", newline="")

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...]],
        step: int = 0,
    ) -> None:
        key_values = filter_excluded_keys(key_values, key_excluded, "csv")
        extra = [k for k in key_values if k not in self.keys]
        if extra:
            if self.keys:
                self._widen_header(extra)
            else:
                self.keys.extend(extra)
                csv.writer(self.file).writerow(self.keys)
        row = []
        for key in self.keys:
            value = key_values.get(key)
            if value is not None and not isinstance(value, (numbers.Number, str)):
                raise FormatUnsupportedError(["csv"], type(value).__name__)
            row.append("" if value is None else value)
        csv.writer(self.file).writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class _TqdmStream(io.TextIOBase):
    """Routes the stdout table through ``tqdm.write`` so it does not shred the bar."""

    def write(self, s: str) -> int:
        tqdm.write(s, end="", file=sys.stdout)
        return len(s)

    def flush(self) -> None:
        sys.stdout.flush()


class PurgingTensorBoardOutputFormat(TensorBoardOutputFormat):
    """SB3's TensorBoard writer, told where a resumed run restarts.

    With ``purge_step=s`` torch's ``SummaryWriter`` starts its event file with a
    session-start event at step ``s``; TensorBoard then discards the events at
    steps ``>= s`` that earlier event files of the folder hold, so the
    iterations a crash logged twice show once (the re-run's values). SB3 builds
    its writer without that option, hence this subclass.
    """

    def __init__(self, folder: str | Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # SB3 imports it the same way, lazily

        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)
        self._is_closed = False


class RunLogger:
    """SB3 logger writing to a run directory; one ``log(metrics, step)`` per iteration.

    ``resume_after``: the iteration the run (re)starts from, e.g. its checkpoint's. Rows and
    events a crashed earlier attempt logged for later iterations are dropped (see the module
    docstring), so every iteration is recorded once. ``None`` keeps everything.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        stdout: bool = True,
        csv: bool = True,
        tensorboard: bool = True,
        resume_after: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sb3 = Logger(folder=str(self.folder), output_formats=[])
        if tensorboard:
            earlier = any(self.folder.glob("events.out.tfevents.*"))
            purge = resume_after + 1 if resume_after is not None and earlier else None
            self.sb3.output_formats.append(PurgingTensorBoardOutputFormat(self.folder, purge_step=purge))
        if stdout:
            self.sb3.output_formats.append(HumanOutputFormat(_TqdmStream()))
        if csv:
            self.sb3.output_formats.append(AppendingCSVOutputFormat(self.folder / PROGRESS_CSV, resume_after))

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Record namespaced ``metrics`` and write one row/event at ``step``."""
        for key, value in namespaced(metrics).items():
            self.sb3.record(key, _scalar(value))
        self.sb3.dump(step)

    def close(self) -> None:
        self.sb3.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scalar(value: Any) -> Any:
    """0-d tensors/arrays -> Python numbers, so every writer accepts them."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


class ProgressBar:
    """tqdm bar showing iteration, latest return and steps/s.

    Disabled when stderr is not a terminal (log files, CI) unless forced, as
    carriage-return redraws make logs unreadable.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        *,
        enabled: bool | None = None,
        return_key: str = "train/return",
        desc: str | None = None,
        unit: str = "it",
    ) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.return_key = return_key
        self.bar = tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit=unit, dynamic_ncols=True,
                        unit_scale=unit != "it")

    def _latest_return(self, metrics: Mapping[str, Any]) -> Any:
        if self.return_key in metrics:
            return metrics[self.return_key]
        returns = sorted(k for k in metrics if k.endswith("/return"))
        return metrics[returns[-1]] if returns else None

    def update(self, iteration: int, metrics: Mapping[str, Any]) -> None:
        """Advance to ``iteration`` completed iterations (or env steps, for a step budget) and refresh the postfix."""
        postfix: dict[str, str] = {}
        ret = self._latest_return(metrics)
        if ret is not None:
            postfix["return"] = f"{float(ret):.3g}"
        if "perf/steps_per_s" in metrics:
            postfix["steps/s"] = f"{float(metrics['perf/steps_per_s']):.0f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(iteration - self.bar.n)

    def close(self) -> None:
        self.bar.close()
