"""Gittins indices of Bernoulli arms with Beta posteriors, by calibration against a retirement reward.

The Gittins index of an arm is the known per-pull reward ``lambda`` at which a player is indifferent
between retiring on ``lambda`` for good and pulling the arm once more (then continuing optimally,
still free to retire at any step). Playing the arm of largest index is Bayes-optimal for discounted
infinite-horizon bandits (Gittins 1979; Gittins, Glazebrook and Weber, *Multi-armed Bandit
Allocation Indices*, 2nd ed. 2011, ch. 8). It is the strongest baseline of the RL² paper's bandit
table (Duan et al. 2016, section 4.1).

How it is computed here: the calibration (retirement-option) method of the book's chapter 8 and of
Chakravorty and Mahajan ("Multi-armed bandits, Gittins index, and its calculation", 2014). For a
candidate ``lambda``, backward induction over the Beta(a + i, b + j) posteriors reachable within the
horizon gives the value of pulling first. Bisection on ``lambda`` finds where that value equals
retiring at once. With ``discount < 1`` and a long horizon, it converges to the classical index: the
truncation error is below ``discount ** horizon``. With ``discount = 1`` and the pulls left in the
trial as the horizon, it is the finite-horizon Gittins index (Lattimore, "Regret analysis of the
finite-horizon Gittins index strategy", COLT 2016). The reference policy uses this one, because an
RL² trial is a finite number of undiscounted pulls.

``tests/test_evaluation_gittins.py`` checks the indices against Gittins' published table (discount
0.9, uniform prior).
"""

from __future__ import annotations

import numpy as np

__all__ = ["gittins_indices"]


def _pull_first_minus_retire(a: np.ndarray, b: np.ndarray, lam: np.ndarray, horizon: int, discount: float) -> np.ndarray:
    """``value(pull now, then act optimally) - value(retire now)`` per start state ``[B]``.

    Backward induction along the anti-diagonals of the posterior grid: at depth ``d`` (pulls since
    the start), entry ``i`` is the state with ``i`` successes and ``d - i`` failures. Retiring with
    ``r`` pulls to go is worth ``lam * (1 + discount + ... + discount ** (r - 1))``.
    """
    powers = discount ** np.arange(horizon + 1)
    annuity = np.concatenate([[0.0], np.cumsum(powers[:horizon])])  # annuity[r]: worth of r pulls of 1
    lam = lam[:, None]
    value = np.zeros((a.size, horizon + 1))  # depth `horizon`: no pulls left
    for d in range(horizon - 1, -1, -1):
        i = np.arange(d + 1)[None, :]
        p = (a[:, None] + i) / (a[:, None] + b[:, None] + d)
        pull = p * (1.0 + discount * value[:, 1:d + 2]) + (1.0 - p) * discount * value[:, : d + 1]
        if d == 0:
            return pull[:, 0] - lam[:, 0] * annuity[horizon]
        value = np.maximum(pull, lam * annuity[horizon - d])
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns at d == 0


def gittins_indices(a: np.ndarray, b: np.ndarray, horizon: int, discount: float = 1.0,
                    tol: float = 1e-9) -> np.ndarray:
    """Gittins indices of Bernoulli arms with Beta(``a``, ``b``) posteriors and ``horizon`` pulls to go.

    ``a``, ``b``: arrays of the same shape (one arm each; Beta(1, 1) is the uniform prior, and
    ``a - 1`` successes and ``b - 1`` failures have been seen). With ``horizon = 1`` the index is the
    posterior mean ``a / (a + b)``. Vectorized over arms: one bisection for all of them.
    """
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if horizon < 1:
        raise ValueError(f"horizon={horizon!r} is invalid; allowed: an integer >= 1")
    if not 0.0 < discount <= 1.0:
        raise ValueError(f"discount={discount!r} is invalid; allowed: 0 < discount <= 1")
    lo = a64 / (a64 + b64)  # pulling is worth at least the mean: the index is never below it
    hi = np.ones_like(lo)
    while float((hi - lo).max(initial=0.0)) > tol:
        mid = 0.5 * (lo + hi)
        pull_better = _pull_first_minus_retire(a64, b64, mid, horizon, discount) > 0.0
        lo, hi = np.where(pull_better, mid, lo), np.where(pull_better, hi, mid)
    return (0.5 * (lo + hi)).reshape(np.shape(a))
