"""BG/NBD from the published likelihood: the paper's CDNOW parameters, P(alive), expected purchases."""

import time
import warnings

import numpy as np
import pytest

from pipeline.risk.bgnbd import (
    BGNBDError,
    BGNBDParams,
    expected_purchases,
    fit_bgnbd,
    p_alive,
    prob_no_purchase,
)

# Fader, Hardie & Lee (2005), Marketing Science 24(2), p. 280: CDNOW sample, time in weeks.
PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


@pytest.fixture(scope="module")
def cdnow():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifetimes imports pkg_resources
        from lifetimes.datasets import load_cdnow_summary

        d = load_cdnow_summary()
    assert len(d) == 2357
    return d["frequency"].to_numpy(), d["recency"].to_numpy(), d["T"].to_numpy()


@pytest.fixture(scope="module")
def fitted(cdnow):
    t0 = time.perf_counter()
    params = fit_bgnbd(*cdnow)
    return params, time.perf_counter() - t0


def test_reproduces_the_published_cdnow_parameters(fitted):
    params, seconds = fitted
    for name, published in PAPER.items():
        assert getattr(params, name) == pytest.approx(published, rel=0.02), name
    assert params.log_likelihood == pytest.approx(-9582.4, abs=0.5)  # the paper's LL
    assert params.n == 2357
    assert seconds < 10


def test_time_unit_only_rescales_alpha(cdnow, fitted):
    x, tx, T = cdnow
    days = fit_bgnbd(x, tx * 7, T * 7)
    params, _ = fitted
    assert days.alpha / 7 == pytest.approx(params.alpha, rel=1e-3)
    assert (days.r, days.a, days.b) == pytest.approx((params.r, params.a, params.b), rel=1e-3)


def test_p_alive_and_expected_purchases_match_lifetimes(cdnow, fitted):
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter
    params, _ = fitted
    ref = BetaGeoFitter()
    ref.params_ = pd.Series({"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b})
    x, tx, T = cdnow
    assert p_alive(params, x, tx, T) == pytest.approx(np.asarray(ref.conditional_probability_alive(x, tx, T)),
                                                      abs=1e-9)
    ours = expected_purchases(params, 39, x, tx, T)
    theirs = np.asarray(ref.conditional_expected_number_of_purchases_up_to_time(39, x, tx, T))
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_p_alive_rules_and_no_purchase_probability(fitted):
    params, _ = fitted
    x, tx, T = np.array([0, 3, 3, 3]), np.array([0.0, 30.0, 10.0, 30.0]), np.array([38.0, 38.0, 38.0, 30.0])
    alive = p_alive(params, x, tx, T)
    assert alive[0] == 1.0  # no repeat purchase: BG/NBD says alive
    assert alive[1] > alive[2]  # the same buyer, silent for longer, is less likely alive
    assert alive[3] > alive[1]
    quiet = prob_no_purchase(params, 13, x, tx, T)
    assert ((0 < quiet) & (quiet < 1)).all()
    assert (prob_no_purchase(params, 52, x, tx, T) < quiet).all()  # longer horizon, more chance to buy
    assert (quiet >= 1 - alive - 1e-12).all()  # at least the chance of being gone


def test_expected_purchases_by_monte_carlo():
    """Simulate the BG/NBD story and compare the mean of future purchases with eq. (10)."""
    rng = np.random.default_rng(0)
    p = BGNBDParams(r=0.8, alpha=6.0, a=1.5, b=4.0)
    n, T, horizon = 40000, 52.0, 26.0
    lam = rng.gamma(p.r, 1 / p.alpha, n)
    drop = rng.beta(p.a, p.b, n)
    x, tx, future = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1 / lam[i])
            if t > T + horizon:
                break
            if t <= T:
                x[i], tx[i] = x[i] + 1, t
            else:
                future[i] += 1
            alive = rng.random() >= drop[i]
    predicted = expected_purchases(p, horizon, x, tx, np.full(n, T))
    assert predicted.mean() == pytest.approx(future.mean(), rel=0.05)
    quiet = prob_no_purchase(p, horizon, x, tx, np.full(n, T))
    assert quiet.mean() == pytest.approx((future == 0).mean(), abs=0.01)


def test_unfittable_orders_raise_a_plain_reason():
    with pytest.raises(BGNBDError, match="repeat buyers"):
        fit_bgnbd([0, 0, 0], [0, 0, 0], [10, 20, 30])
    with pytest.raises(BGNBDError, match="none"):
        fit_bgnbd([], [], [])
    with pytest.raises(BGNBDError, match="recency"):
        fit_bgnbd([1, 2], [5, 50], [10, 20])
