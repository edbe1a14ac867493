"""Metrics to stdout, ``progress.csv`` and TensorBoard, plus a progress bar.

Built on stable-baselines3's ``Logger`` (users know its stdout table and its
TensorBoard output) with one replacement: SB3's ``CSVOutputFormat`` opens
``progress.csv`` with ``"w+"``, which would wipe the history of a resumed run.
:class:`AppendingCSVOutputFormat` appends, keeps the existing header, and
only rewrites the file (atomically) when a new metric key first appears.

Key convention (namespaces keep TensorBoard and the stdout table grouped):
``train/...`` for the outer loop, ``adapt/round_<k>/<metric>`` for returns
and success after k adaptation rounds (:func:`adapt_key`), ``time/...`` for
counters and durations, ``perf/steps_per_s`` for throughput.
"""

from __future__ import annotations

import csv
import io
import numbers
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from stable_baselines3.common.logger import (
    FormatUnsupportedError,
    HumanOutputFormat,
    KVWriter,
    Logger,
    configure,
    filter_excluded_keys,
)
from tqdm import tqdm

__all__ = [
    "AppendingCSVOutputFormat",
    "ProgressBar",
    "RunLogger",
    "adapt_key",
    "namespaced",
]

PROGRESS_CSV = "progress.csv"


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
    never rewritten except to widen the header when a new key appears.
    A partial last line (the process died mid-write) is dropped, since it
    would otherwise be glued to the next row.
    """

    def __init__(self, filename: str | Path):
        self.path = Path(filename)
        self.keys: list[str] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            self._drop_partial_last_line()
            with self.path.open(newline="") as f:
                header = next(csv.reader(f), [])
            self.keys = list(header)
        self.file: TextIO = self.path.open("a", newline="")

    def _drop_partial_last_line(self) -> None:
        with self.path.open("rb+") as f:
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def _widen_header(self, extra: list[str]) -> None:
        self.file.close()
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))[1:]
        self.keys.extend(extra)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.keys)
            writer.writerows(row + [""] * (len(self.keys) - len(row)) for row in rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
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


class RunLogger:
    """SB3 logger writing to a run directory; one ``log(metrics, step)`` per iteration."""

    def __init__(
        self,
        folder: str | Path,
        *,
        stdout: bool = True,
        csv: bool = True,
        tensorboard: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.sb3: Logger = configure(str(self.folder), ["tensorboard"] if tensorboard else [])
        if stdout:
            self.sb3.output_formats.append(HumanOutputFormat(_TqdmStream()))
        if csv:
            self.sb3.output_formats.append(AppendingCSVOutputFormat(self.folder / PROGRESS_CSV))

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
    ) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.return_key = return_key
        self.bar = tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="it", dynamic_ncols=True)

    def _latest_return(self, metrics: Mapping[str, Any]) -> Any:
        if self.return_key in metrics:
            return metrics[self.return_key]
        returns = sorted(k for k in metrics if k.endswith("/return"))
        return metrics[returns[-1]] if returns else None

    def update(self, iteration: int, metrics: Mapping[str, Any]) -> None:
        """Advance to ``iteration`` completed iterations and refresh the postfix."""
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
