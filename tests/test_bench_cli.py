"""The bench commands share one output convention, and a smoke run never overwrites committed results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from metarl.bench import RESULTS, add_out_argument, out_folder
from metarl.bench import core as bench_core


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_out_argument(parser, "bench_x")
    return parser.parse_args(argv)


def test_quick_run_writes_nothing_unless_asked() -> None:
    assert out_folder(_parse(["--quick"])) is None
    assert out_folder(_parse([])) == RESULTS
    assert out_folder(_parse(["--quick", "--out", "elsewhere"])) == Path("elsewhere")


def test_core_quick_writes_both_files_where_told(tmp_path: Path) -> None:
    assert bench_core.main(["--quick", "--out", str(tmp_path), "--threads", "1"]) == 0
    md = (tmp_path / "bench_core.md").read_text()
    payload = json.loads((tmp_path / "bench_core.json").read_text())
    assert "vmap" in md
    assert payload["rows"] and payload["config"]["out"] == str(tmp_path)


def test_old_prefix_option_is_rejected() -> None:
    with pytest.raises(SystemExit):
        bench_core.main(["--quick", "--output", "x"])


def test_metaworld_quick_measures_stock_fast_and_physics(tmp_path: Path) -> None:
    from metarl.bench import metaworld as bench_metaworld

    assert bench_metaworld.main(["--quick", "--classes", "reach-v3", "--out", str(tmp_path)]) == 0
    import json

    row = json.loads((tmp_path / "bench_metaworld.json").read_text())["rows"]["reach-v3"]
    assert 0 < row["physics"] < row["fast"] and 0 < row["physics"] < row["stock"]
    assert "fast / physics limit" in (tmp_path / "bench_metaworld.md").read_text()


def test_sampling_quick_rows_carry_stock_and_physics_ratios(tmp_path: Path) -> None:
    from metarl.bench import sampling as bench_sampling

    assert bench_sampling.main(["--quick", "--no-ray", "--families", "halfcheetah-vel", "--out", str(tmp_path)]) == 0
    family = json.loads((tmp_path / "bench_sampling.json").read_text())["families"][0]
    rows = {r["contender"]: r for r in family["rows"]}
    cores = family["cores"]
    assert {"stock loop", "physics, 1 core", "metarl serial, 1 core", f"metarl process x{cores}"} <= set(rows)
    assert rows["stock loop"]["x_stock"] == 1.0
    assert rows["metarl serial, 1 core"]["x_physics"] == pytest.approx(
        rows["metarl serial, 1 core"]["steps_per_s"] / rows["physics, 1 core"]["steps_per_s"])
    assert "x physics (same cores)" in (tmp_path / "bench_sampling.md").read_text()


def test_maml_quick_splits_sampling_and_update(tmp_path: Path) -> None:
    from metarl.bench import maml as bench_maml

    assert bench_maml.main(["--quick", "--cases", "halfcheetah-vel", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_maml.json").read_text())["cases"][0]["rows"]
    names = [r["contender"] for r in rows]
    assert names[0].startswith("before:") and names[-1].startswith("after:") and len(names) == 3
    assert "double-backward" in names[0] and "structured" in names[-1]
    for r in rows:
        assert r["env_steps"] == 2 * 2 * 2 * 100  # pre + post batch: tasks x episodes x horizon
        assert r["sampling_s"] > 0 and r["update_s"] > 0
        assert r["seconds"] == pytest.approx(r["sampling_s"] + r["update_s"])
