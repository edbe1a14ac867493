"""Curve schema: CSV and JSON round-trip exactly, and bad files fail naming what is wrong."""

from __future__ import annotations

import csv
import json
import math

import pytest

from metarl.evaluation.curves import (
    COLUMNS,
    CurveRow,
    CurveSchemaError,
    curve_file,
    curve_meta,
    read_curves,
    read_many,
    validate_rows,
    write_curves,
)


def make_rows(method: str = "maml-trpo", seeds=(0, 1), tasks: int = 3, rounds: int = 2, success: bool = True):
    rows = []
    for seed in seeds:
        for t in range(tasks):
            for k in range(rounds + 1):
                rows.append(CurveRow(method, f"{method}-s{seed}", "ml1-reach", "test", seed, t, k, 500 * k, 10,
                                     -10.0 + 3.1 * k + 0.1 * t + seed / 3, (0.1 * k + 0.05 * t) if success else math.nan))
    return rows


def _comparable(row: CurveRow) -> tuple:
    """NaN != NaN, so compare rows with NaN replaced by a marker."""
    return tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row.as_dict().values())


def test_csv_and_json_round_trip_exactly(tmp_path):
    rows = make_rows() + make_rows("random", seeds=(0,), success=False)
    csv_path, json_path = write_curves(rows, tmp_path / "eval", curve_meta("ml1-reach", rounds=2))
    from_csv, from_json = read_curves(csv_path), read_curves(json_path)
    for got in (from_csv.rows, from_json.rows, read_curves(tmp_path / "eval").rows):
        assert len(got) == len(rows)
        assert [_comparable(r) for r in got] == [_comparable(r) for r in rows]
    assert from_json.meta["rounds"] == 2 and "Meta-World" in from_json.meta["protocol_note"]
    document = json.loads(json_path.read_text())  # strict JSON: NaN is null
    assert document["schema_version"] == 1 and document["rows"][-1]["success_rate"] is None
    with csv_path.open() as f:
        assert next(csv.reader(f)) == list(COLUMNS)


def test_gzipped_curve_files_read_the_same(tmp_path):
    """Committed results keep large curve files gzipped; every reader takes them as they are."""
    import gzip

    rows = make_rows()
    csv_path, json_path = write_curves(rows, tmp_path / "eval", curve_meta("ml1-reach", rounds=2))
    for path in (csv_path, json_path):
        packed = path.with_name(path.name + ".gz")
        packed.write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
        assert [_comparable(r) for r in read_curves(packed).rows] == [_comparable(r) for r in rows]
    assert curve_file(tmp_path / "eval") == tmp_path / "eval" / "curves.json.gz"  # the JSON twin carries meta
    assert read_curves(tmp_path / "eval").meta["rounds"] == 2
    assert curve_file(tmp_path) is None


def test_from_episodes_ignores_nan_successes():
    row = CurveRow.from_episodes(method="m", run="r", family="f", split="test", seed=0, task=0, round=1,
                                 env_steps=5, returns=[1.0, 2.0, 6.0], successes=[1.0, math.nan, 0.0])
    assert row.episodes == 3 and row.return_mean == pytest.approx(3.0) and row.success_rate == pytest.approx(0.5)
    none = CurveRow.from_episodes(method="m", run="r", family="f", split="test", seed=0, task=0, round=0,
                                  env_steps=0, returns=[1.0], successes=[math.nan])
    assert math.isnan(none.success_rate)


def _write_csv(path, header, records):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(records)
    return path


GOOD = ["maml-trpo", "run-a", "point-nav", "test", "0", "0", "0", "0", "10", "-5.0", "nan"]


@pytest.mark.parametrize(
    ("header", "record", "message"),
    [
        ([c for c in COLUMNS if c != "env_steps"], [v for c, v in zip(COLUMNS, GOOD) if c != "env_steps"],
         "missing column(s) 'env_steps'"),
        ([*COLUMNS, "extra"], [*GOOD, "1"], "unexpected column(s) 'extra'"),
        (list(COLUMNS), GOOD[:4] + ["zero"] + GOOD[5:], "column 'seed': expected an integer"),
        (list(COLUMNS), GOOD[:3] + ["valid"] + GOOD[4:], "column 'split'"),
        (list(COLUMNS), GOOD[:10] + ["1.5"], "column 'success_rate'"),
        (list(COLUMNS), GOOD[:7] + ["100"] + GOOD[8:], "round 0 (before adaptation) must have 0 env_steps"),
        (list(COLUMNS), GOOD[:9] + ["nan", "nan"], "column 'return_mean'"),
        (list(COLUMNS), GOOD[:8] + ["0"] + GOOD[9:], "column 'episodes': must be >= 1"),
    ],
)
def test_bad_csv_names_file_and_column(tmp_path, header, record, message):
    path = _write_csv(tmp_path / "curves.csv", header, [record])
    with pytest.raises(CurveSchemaError) as err:
        read_curves(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_cross_row_checks(tmp_path):
    rows = make_rows(seeds=(0,), tasks=1, rounds=2)
    with pytest.raises(CurveSchemaError, match="duplicates row 0"):
        validate_rows([rows[0], rows[0]])
    shrinking = [rows[0], *(CurveRow(**{**r.as_dict(), "env_steps": s}) for r, s in zip(rows[1:], (900, 800)))]
    with pytest.raises(CurveSchemaError, match="env_steps decreases from 900"):
        write_curves(shrinking, tmp_path)
    assert not (tmp_path / "curves.csv").exists()  # nothing written from a bad table


def test_json_version_and_shape_errors(tmp_path):
    _, json_path = write_curves(make_rows(seeds=(0,)), tmp_path)
    document = json.loads(json_path.read_text())
    document["schema_version"] = 2
    json_path.write_text(json.dumps(document))
    with pytest.raises(CurveSchemaError, match="schema_version 2 is not supported"):
        read_curves(json_path)
    document["schema_version"] = 1
    del document["rows"][1]["episodes"]
    json_path.write_text(json.dumps(document))
    with pytest.raises(CurveSchemaError, match=r"row 1: missing column\(s\) 'episodes'"):
        read_curves(json_path)


def test_read_many_combines_files_and_rows(tmp_path):
    a, _ = write_curves(make_rows("maml-trpo", seeds=(0,)), tmp_path / "a")
    extra = make_rows("random", seeds=(0,))
    rows = read_many([a, *extra])
    assert {r.method for r in rows} == {"maml-trpo", "random"} and len(rows) == 2 * len(extra)
    with pytest.raises(CurveSchemaError, match="no such curve file"):
        read_curves(tmp_path / "missing.csv")
