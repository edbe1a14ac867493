"""Adaptation curves: the one table every agent and baseline writes, and every plot reads.

Long format, one row per (method, run, seed, task, round), so agents with any
number of rounds, baselines, and runs made months apart concatenate without
reshaping; a plot or a statistic is a ``groupby`` away. The exact meaning of
each column (notably ``env_steps``) is documented in ``docs/curves_schema.md``
and restated on :class:`CurveRow`; files carry ``schema_version`` in their JSON
twin so a future change can be detected instead of misread.

Files: ``eval/curves.csv`` (for spreadsheets, pandas, re-plotting) and
``eval/curves.json`` (same rows plus a ``meta`` block describing the protocol).
Reading validates everything and names the file, row and column at fault,
because a silently misparsed curve is worse than none.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import numpy as np

from metarl.errors import UsageError
from metarl.fileio import atomic_write

__all__ = [
    "COLUMNS",
    "CSV_NAME",
    "JSON_NAME",
    "SCHEMA_VERSION",
    "CurveRow",
    "CurveSchemaError",
    "CurveSet",
    "curve_meta",
    "curve_file",
    "read_curves",
    "read_many",
    "validate_rows",
    "write_curves",
    "write_curves_csv",
    "write_curves_json",
]

SCHEMA_VERSION = 1
CSV_NAME = "curves.csv"
JSON_NAME = "curves.json"

ENV_STEPS_DEFINITION = (
    "environment steps of adaptation (or training) data on this task consumed before the scored policy "
    "was fixed; the scored episodes themselves are not counted, so round 0 has 0"
)


class CurveSchemaError(UsageError):
    """A curve file or row breaks the schema; the message names the file, row and column."""


@dataclass(frozen=True)
class CurveRow:
    """One point of one adaptation curve: a policy after ``round`` adaptation rounds on one task.

    Attributes:
        method: agent name (``maml-trpo``, ``rl2-gru``) or baseline (``ppo-scratch``,
            ``pretrained-finetune``, ``random``); lines in plots are grouped by it.
        run: run directory name or free label, to tell apart runs of the same method.
        family: task family spec as typed on the CLI (``point-nav``, ``ml1-reach``).
        split: ``train`` or ``test``; meta-test curves use ``test``.
        seed: the run's seed (training seed for agents, baseline seed for baselines).
        task: index of the task within the evaluated set (same index = same task across
            methods when the evaluation tasks are drawn with one fixed seed).
        round: adaptation rounds before the scored episodes; 0 = before any adaptation. A round
            is one gradient step on fresh episodes (MAML, Reptile, fine-tuning), one episode of
            the trial (RL²), or one budget point (``ppo-scratch``).
        env_steps: steps of adaptation data on this task consumed before the scored policy was
            fixed (scored episodes excluded, so round 0 has 0); the x-axis that makes methods with
            different round sizes comparable.
        episodes: number of scored episodes averaged into this row.
        return_mean: mean undiscounted episode return over those episodes.
        success_rate: fraction of those episodes with any step's ``info["success"]`` true;
            NaN when the family reports no success signal.
    """

    method: str
    run: str
    family: str
    split: str
    seed: int
    task: int
    round: int
    env_steps: int
    episodes: int
    return_mean: float
    success_rate: float = math.nan

    def __post_init__(self) -> None:
        _check_row(self)

    @classmethod
    def from_episodes(
        cls,
        *,
        method: str,
        run: str,
        family: str,
        split: str,
        seed: int,
        task: int,
        round: int,
        env_steps: int,
        returns: Sequence[float],
        successes: Sequence[float] | None = None,
    ) -> CurveRow:
        """Average per-episode results into a row; shared by agents and baselines.

        ``successes`` holds one value per episode (1/0, or NaN where the env gave no
        signal); NaNs are ignored, and an all-NaN (or missing) list gives NaN.
        """
        ret = np.asarray(returns, dtype=np.float64)
        if ret.size == 0:
            raise CurveSchemaError(f"{method}: task {task} round {round}: no episodes to average")
        succ = np.asarray([] if successes is None else successes, dtype=np.float64)
        rate = float(np.nanmean(succ)) if succ.size and not np.all(np.isnan(succ)) else math.nan
        return cls(method, run, family, split, int(seed), int(task), int(round), int(env_steps),
                   int(ret.size), float(ret.mean()), rate)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CurveRow))
_INT_COLUMNS = frozenset({"seed", "task", "round", "env_steps", "episodes"})
_FLOAT_COLUMNS = frozenset({"return_mean", "success_rate"})
_SPLITS = ("train", "test")


def _check_row(row: CurveRow) -> None:
    """Value checks that hold for a single row, so bad rows fail where they are made."""
    for name in ("method", "run", "family"):
        value = getattr(row, name)
        if not isinstance(value, str) or not value:
            raise CurveSchemaError(f"column '{name}': expected a non-empty string, got {value!r}")
    if row.split not in _SPLITS:
        raise CurveSchemaError(f"column 'split': expected one of {', '.join(_SPLITS)}, got {row.split!r}")
    for name in _INT_COLUMNS:
        value = getattr(row, name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise CurveSchemaError(f"column '{name}': expected an integer, got {value!r}")
    for name, low in (("task", 0), ("round", 0), ("env_steps", 0), ("episodes", 1)):
        if getattr(row, name) < low:
            raise CurveSchemaError(f"column '{name}': must be >= {low}, got {getattr(row, name)}")
    if row.round == 0 and row.env_steps != 0:
        raise CurveSchemaError(f"column 'env_steps': round 0 (before adaptation) must have 0 env_steps, got {row.env_steps}")
    if not isinstance(row.return_mean, (float, int, np.floating)) or not math.isfinite(row.return_mean):
        raise CurveSchemaError(f"column 'return_mean': expected a finite number, got {row.return_mean!r}")
    s = row.success_rate
    if not isinstance(s, (float, int, np.floating)) or not (math.isnan(s) or 0.0 <= s <= 1.0):
        raise CurveSchemaError(f"column 'success_rate': expected a number in [0, 1] or NaN, got {s!r}")


def validate_rows(rows: Iterable[CurveRow], source: str = "rows") -> list[CurveRow]:
    """Checks across rows: no duplicate points, and experience never shrinks as rounds grow.

    Per-row checks already ran when each row was built.
    """
    rows = list(rows)
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, CurveRow):
            raise CurveSchemaError(f"{source}: row {i}: expected a CurveRow, got {type(row).__name__}")
        key = (row.method, row.run, row.family, row.split, row.seed, row.task, row.round)
        if key in seen:
            raise CurveSchemaError(f"{source}: row {i} duplicates row {seen[key]}: {dict(zip(COLUMNS, key))}")
        seen[key] = i
    by_curve: dict[tuple, list[CurveRow]] = {}
    for row in rows:
        by_curve.setdefault((row.method, row.run, row.family, row.split, row.seed, row.task), []).append(row)
    for curve in by_curve.values():
        curve.sort(key=lambda r: r.round)
        for prev, nxt in zip(curve, curve[1:]):
            if nxt.env_steps < prev.env_steps:
                raise CurveSchemaError(
                    f"{source}: method {nxt.method!r} run {nxt.run!r} seed {nxt.seed} task {nxt.task}: env_steps "
                    f"decreases from {prev.env_steps} (round {prev.round}) to {nxt.env_steps} (round {nxt.round})"
                )
    return rows


@dataclass
class CurveSet:
    """Rows plus the protocol description they were produced under."""

    rows: list[CurveRow]
    meta: dict[str, Any] = field(default_factory=dict)


def curve_meta(family: str, **extra: Any) -> dict[str, Any]:
    """The ``meta`` block: what a reader needs to interpret the numbers without the code.

    Meta-World families get a note on the benchmark's protocol, since results are
    only comparable with others' when the same splits and success rule are used.
    """
    meta: dict[str, Any] = {"family": family, "env_steps": ENV_STEPS_DEFINITION,
                            "success_rate": "fraction of episodes in which any step had info['success'] true; "
                                            "null/NaN when the family has no success signal"}
    if family.startswith(("ml1-", "ml10", "ml45")):
        meta["protocol_note"] = (
            "Meta-World v3 via the direct metaworld.ML1/ML10/ML45 API: test tasks are the benchmark's held-out "
            "goals (ML1) or held-out classes (ML10/ML45); 500-step episodes; success as defined by Meta-World"
        )
    meta.update(extra)
    return meta


# ----------------------------------------------------------------------------- writing


def write_curves(rows: Iterable[CurveRow], out_dir: str | Path, meta: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``out_dir/curves.csv`` and ``out_dir/curves.json``; returns both paths.

    Rows are validated first so a bad table never reaches disk.
    """
    rows = validate_rows(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_curves_csv(rows, out / CSV_NAME), write_curves_json(rows, out / JSON_NAME, meta)


def write_curves_csv(rows: Iterable[CurveRow], path: str | Path) -> Path:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in validate_rows(rows):
        d = row.as_dict()
        d["return_mean"] = repr(float(d["return_mean"]))  # repr round-trips floats exactly
        d["success_rate"] = "nan" if math.isnan(d["success_rate"]) else repr(float(d["success_rate"]))
        writer.writerow(d)
    return atomic_write(path, buf.getvalue())  # a plot running beside an evaluation never sees half a file


def write_curves_json(rows: Iterable[CurveRow], path: str | Path, meta: Mapping[str, Any] | None = None) -> Path:
    """NaN is written as ``null``: bare ``NaN`` is not JSON and breaks strict parsers."""
    records = []
    for row in validate_rows(rows):
        d = row.as_dict()
        d["success_rate"] = None if math.isnan(d["success_rate"]) else float(d["success_rate"])
        d["return_mean"] = float(d["return_mean"])
        d.update({k: int(d[k]) for k in _INT_COLUMNS})
        records.append(d)
    document = {"schema_version": SCHEMA_VERSION, "meta": dict(meta or {}), "rows": records}
    return atomic_write(path, json.dumps(document, indent=1, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------- reading


def _parse_value(column: str, raw: Any, where: str) -> Any:
    if column in _INT_COLUMNS:
        if isinstance(raw, bool):
            raise CurveSchemaError(f"{where}: column '{column}': expected an integer, got {raw!r}")
        try:
            if isinstance(raw, int):
                return raw
            if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
                return int(raw)  # exact, even beyond float precision
            value = float(raw)  # "3.0" from tools that write every number as float
            if not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError, OverflowError):
            raise CurveSchemaError(f"{where}: column '{column}': expected an integer, got {raw!r}") from None
    if column in _FLOAT_COLUMNS:
        if raw is None or raw == "":
            if column == "success_rate":
                return math.nan
            raise CurveSchemaError(f"{where}: column '{column}': value is missing")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise CurveSchemaError(f"{where}: column '{column}': expected a number, got {raw!r}") from None
    if not isinstance(raw, str):
        raise CurveSchemaError(f"{where}: column '{column}': expected a string, got {raw!r}")
    return raw


def _check_columns(found: Sequence[str], where: str) -> None:
    missing = [c for c in COLUMNS if c not in found]
    extra = [c for c in found if c not in COLUMNS]
    if missing or extra:
        parts = ([f"missing column(s) {', '.join(repr(c) for c in missing)}"] if missing else []) + (
            [f"unexpected column(s) {', '.join(repr(c) for c in extra)}"] if extra else [])
        raise CurveSchemaError(f"{where}: {'; '.join(parts)}; expected columns: {', '.join(COLUMNS)}")


def _row_from_mapping(record: Mapping[str, Any], where: str) -> CurveRow:
    _check_columns(list(record), where)
    values = {c: _parse_value(c, record[c], where) for c in COLUMNS}
    try:
        return CurveRow(**values)
    except CurveSchemaError as exc:
        raise CurveSchemaError(f"{where}: {exc}") from None


def _open_text(path: Path) -> IO[str]:
    """Curve files may be gzip-compressed (``curves.csv.gz``): how committed results stay small."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", newline="")
    return path.open(newline="")


def _read_csv(path: Path) -> CurveSet:
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise CurveSchemaError(f"{path}: empty file; expected a header with columns: {', '.join(COLUMNS)}")
        _check_columns(reader.fieldnames, str(path))
        rows = []
        for i, record in enumerate(reader):
            if None in record or any(v is None for v in record.values()):
                raise CurveSchemaError(f"{path}: row {i + 1}: wrong number of fields (expected {len(COLUMNS)})")
            rows.append(_row_from_mapping(record, f"{path}: row {i + 1}"))
    return CurveSet(validate_rows(rows, str(path)), {})


def _read_json(path: Path) -> CurveSet:
    try:
        with _open_text(path) as f:
            document = json.loads(f.read())
    except json.JSONDecodeError as exc:
        raise CurveSchemaError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not {"schema_version", "rows"} <= set(document):
        raise CurveSchemaError(f"{path}: expected an object with 'schema_version', 'meta' and 'rows'")
    if document["schema_version"] != SCHEMA_VERSION:
        raise CurveSchemaError(
            f"{path}: schema_version {document['schema_version']!r} is not supported (this metarl reads {SCHEMA_VERSION})"
        )
    if not isinstance(document["rows"], list):
        raise CurveSchemaError(f"{path}: 'rows' must be a list")
    meta = document.get("meta") or {}
    if not isinstance(meta, dict):
        raise CurveSchemaError(f"{path}: 'meta' must be an object")
    rows = []
    for i, record in enumerate(document["rows"]):
        if not isinstance(record, dict):
            raise CurveSchemaError(f"{path}: row {i}: expected an object, got {type(record).__name__}")
        rows.append(_row_from_mapping(record, f"{path}: row {i}"))
    return CurveSet(validate_rows(rows, str(path)), meta)


def curve_file(folder: str | Path) -> Path | None:
    """The curve file of an ``eval/`` folder: the JSON twin first (it also carries ``meta``), then
    the CSV, each plain or gzip-compressed; ``None`` if there is none."""
    for name in (JSON_NAME, JSON_NAME + ".gz", CSV_NAME, CSV_NAME + ".gz"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def read_curves(path: str | Path) -> CurveSet:
    """Read and validate a curve file (``.csv`` or ``.json``, optionally ``.gz``) or an ``eval/`` directory."""
    p = Path(path)
    if p.is_dir():
        p = curve_file(p) or p / CSV_NAME
    if not p.is_file():
        raise CurveSchemaError(f"{p}: no such curve file")
    kind = p.name.removesuffix(".gz").rsplit(".", 1)[-1]
    if kind == "json":
        return _read_json(p)
    if kind == "csv":
        return _read_csv(p)
    raise CurveSchemaError(f"{p}: unknown curve file type {p.suffix!r}; expected .csv or .json (optionally .gz)")


def read_many(sources: str | Path | Iterable[str | Path | CurveRow]) -> list[CurveRow]:
    """Concatenate rows from files, directories and/or ``CurveRow`` objects (for comparisons)."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    rows: list[CurveRow] = []
    for source in sources:
        rows.extend([source] if isinstance(source, CurveRow) else read_curves(source).rows)
    return validate_rows(rows, "combined curves")
