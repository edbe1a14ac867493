"""Gittins indices against Gittins' published table and a hand-solved case, and the reference policy built on them."""

from __future__ import annotations

import numpy as np
import pytest

from metarl.envs import make_family
from metarl.evaluation.gittins import gittins_indices
from metarl.evaluation.references import paired_difference, reference_rows

#: Gittins (1979) / Gittins, Glazebrook and Weber (2011), Bernoulli arms, uniform prior, discount 0.9:
#: (successes, failures) -> index, as tabulated to four decimals.
PUBLISHED_09 = {(0, 0): 0.7029, (1, 1): 0.6346, (2, 2): 0.6010, (9, 1): 0.8695}


def test_indices_match_gittins_published_table() -> None:
    wins, losses = np.array(list(PUBLISHED_09)).T
    got = gittins_indices(1 + wins, 1 + losses, horizon=300, discount=0.9)  # 0.9 ** 300: negligible truncation
    np.testing.assert_allclose(got, list(PUBLISHED_09.values()), atol=6e-5)


def test_two_pulls_left_solve_by_hand() -> None:
    """Beta(1, 1), two undiscounted pulls: pulling is worth 1/2 + (1/2)(2/3) + (1/2) lambda (keep pulling
    after a success, retire after a failure), retiring 2 lambda; they are equal at lambda = 5/9."""
    assert gittins_indices(np.array([1.0]), np.array([1.0]), horizon=2)[0] == pytest.approx(5 / 9, abs=1e-8)


def test_index_is_the_mean_on_the_last_pull_and_grows_with_what_is_left_to_learn() -> None:
    a, b = np.array([1.0, 3.0, 2.0]), np.array([1.0, 2.0, 6.0])
    np.testing.assert_allclose(gittins_indices(a, b, horizon=1), a / (a + b), atol=1e-8)
    short, long = gittins_indices(a, b, horizon=5), gittins_indices(a, b, horizon=50)
    assert np.all(short > a / (a + b)) and np.all(long > short)  # more pulls left: exploring is worth more
    more_wins = gittins_indices(a + 1, b, horizon=20)
    more_losses = gittins_indices(a, b + 1, horizon=20)
    assert np.all(more_wins > gittins_indices(a, b, horizon=20)) and np.all(more_losses < gittins_indices(a, b, horizon=20))


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="horizon=0 is invalid"):
        gittins_indices(np.ones(1), np.ones(1), horizon=0)
    with pytest.raises(ValueError, match="discount=1.5 is invalid"):
        gittins_indices(np.ones(1), np.ones(1), horizon=3, discount=1.5)


def test_gittins_beats_thompson_on_the_same_bandits() -> None:
    """The ordering of the RL² paper's table (Gittins above Thompson sampling), on common random numbers."""
    family = make_family("bandit?k=5&n=100")
    tasks = family.sample(100, rng=0, split="test")
    _, gittins = reference_rows(family, tasks, "gittins", rounds=99, episodes_per_round=1, seed=0)
    _, thompson = reference_rows(family, tasks, "thompson", rounds=99, episodes_per_round=1, seed=0)
    diff = paired_difference(gittins, "gittins", thompson, "thompson")
    assert diff["mean"] > 2 * diff["stderr"] > 0
