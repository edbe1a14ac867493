"""Statistics: the bootstrap covers the truth at its nominal rate, IQM matches hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metarl.evaluation.curves import CurveRow
from metarl.evaluation.stats import (
    aggregate,
    bootstrap_ci,
    iqm,
    nanmean,
    stratified_bootstrap_ci,
    task_bootstrap_ci,
    trimmed_mean,
)


def test_bootstrap_ci_covers_true_mean_at_about_95_percent():
    rng = np.random.default_rng(123)
    true_mean, hits, reps = 2.0, 0, 300
    for rep in range(reps):
        sample = rng.normal(true_mean, 3.0, size=40)
        ci = bootstrap_ci(sample, n_boot=1000, seed=rep)
        hits += ci.low <= true_mean <= ci.high
        assert ci.point == pytest.approx(sample.mean())
    assert 0.9 <= hits / reps <= 0.99, hits / reps


def test_bootstrap_is_seeded_and_narrows_with_more_data():
    x = np.random.default_rng(0).normal(size=50)
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    wide, narrow = bootstrap_ci(x[:10]), bootstrap_ci(np.tile(x[:10], 10))
    assert (narrow.high - narrow.low) < 0.5 * (wide.high - wide.low)


def test_iqm_matches_hand_computed_values():
    # n = 8, sorted -50 1 2 3 4 5 6 100: drop floor(0.25 * 8) = 2 from each end -> mean(2, 3, 4, 5)
    assert iqm(np.array([100.0, 1, 2, 3, 4, 5, 6, -50])) == pytest.approx(3.5)
    # n = 10, sorted -1e6 0 1 .. 7 1e6: drop 2 each end -> mean(1..6); the outliers do not matter
    assert iqm(np.array([0.0, 1, 2, 3, 4, 5, 6, 7, 1e6, -1e6])) == pytest.approx(3.5)
    # n = 5: drop floor(1.25) = 1 each end -> mean(2, 3, 4)
    assert iqm(np.array([5.0, 1, 4, 2, 3])) == pytest.approx(3.0)
    # NaN are ignored: same as the NaN-free array; rows of a matrix are independent
    assert iqm(np.array([np.nan, 5.0, 1, 4, 2, 3, np.nan])) == pytest.approx(3.0)
    np.testing.assert_allclose(iqm(np.array([[5.0, 1, 4, 2, 3], [0.0, 0, 0, 0, 10]])), [3.0, 0.0])
    assert trimmed_mean(np.array([1.0, 2.0, 3.0]), 0.0) == pytest.approx(2.0)


def test_iqm_agrees_with_scipy_trim_mean_when_available():
    stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(5).standard_cauchy(size=(4, 37))
    np.testing.assert_allclose(iqm(x), stats.trim_mean(x, 0.25, axis=-1))


def test_degenerate_inputs_collapse_or_give_nan():
    one = bootstrap_ci([3.5])
    assert one == (3.5, 3.5, 3.5)
    assert stratified_bootstrap_ci(np.full((3, 4), 2.0)) == (2.0, 2.0, 2.0)
    empty = bootstrap_ci([np.nan, np.nan])
    assert all(math.isnan(v) for v in empty)
    assert math.isnan(nanmean(np.array([np.nan])))


def test_nan_cells_are_ignored_not_zero():
    scores = np.array([[1.0, np.nan, 3.0], [1.0, np.nan, 3.0]])
    ci = task_bootstrap_ci(scores, seed=1)
    assert ci.point == pytest.approx(2.0)
    assert 1.0 <= ci.low <= ci.high <= 3.0


def test_stratified_bootstrap_keeps_tasks_fixed():
    # Seeds agree exactly within each task: resampling seeds cannot move the IQM, however different the tasks.
    scores = np.tile(np.array([0.0, 10.0, 20.0, 30.0]), (5, 1))
    ci = stratified_bootstrap_ci(scores, seed=0)
    assert ci.low == ci.high == ci.point == pytest.approx(15.0)
    # ... while the task bootstrap does see the spread over tasks
    t = task_bootstrap_ci(scores, seed=0)
    assert t.low < 15.0 < t.high


def _rows(method: str, seeds: int, tasks: int, success):
    rows = []
    for s in range(seeds):
        for t in range(tasks):
            for k in range(2):
                rows.append(CurveRow(method, f"{method}-{s}", "point-nav", "test", s, t, k, 100 * k, 4,
                                     float(t + k + s), success(s, t, k)))
    return rows


def test_aggregate_per_method_round():
    rows = _rows("maml-trpo", 3, 4, lambda s, t, k: math.nan if t == 0 else float(k)) + _rows(
        "random", 1, 4, lambda s, t, k: math.nan)
    out = {(s.method, s.round, s.metric): s for s in aggregate(rows, n_boot=500)}
    assert set(out) == {("maml-trpo", 0, "return"), ("maml-trpo", 0, "success"), ("maml-trpo", 1, "return"),
                        ("maml-trpo", 1, "success"), ("random", 0, "return"), ("random", 1, "return")}
    m = out[("maml-trpo", 1, "return")]
    assert m.mean == pytest.approx(np.mean([t + 1 + s for s in range(3) for t in range(4)]))
    assert m.ci_low <= m.mean <= m.ci_high and m.env_steps == 100 and (m.n_tasks, m.n_seeds) == (4, 3)
    assert not math.isnan(m.iqm) and m.iqm_low <= m.iqm <= m.iqm_high
    assert out[("maml-trpo", 1, "success")].n_tasks == 3 and out[("maml-trpo", 1, "success")].mean == 1.0
    r = out[("random", 0, "return")]
    assert math.isnan(r.iqm) and r.n_seeds == 1 and r.run == "random-0"
    per_run = aggregate(rows, metrics=("return_mean",), per_run=True, n_boot=100)
    assert len(per_run) == 2 * 3 + 2 and {s.n_seeds for s in per_run} == {1}
    with pytest.raises(ValueError, match="unknown metric"):
        aggregate(rows, metrics=("reward",))
