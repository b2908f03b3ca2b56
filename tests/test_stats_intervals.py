"""Accuracy intervals that stay inside [0, 1], the plain t interval, and Holm."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from bench.stats import accuracy_interval, holm, t_interval


def test_t_interval_matches_the_formula():
    # [0.97, 0.98, 0.99]: mean 0.98, std 0.01, half-width t_{0.975,2} 0.01/sqrt(3) = 4.302653 * 0.0057735
    mean, std, lo, hi = t_interval([0.97, 0.98, np.nan, 0.99])
    assert (mean, std) == (pytest.approx(0.98), pytest.approx(0.01))
    assert hi - mean == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-6)
    assert lo == pytest.approx(2 * mean - hi)
    assert t_interval([0.5])[1:] == (pytest.approx(math.nan, nan_ok=True),) * 3


def test_extreme_two_seeds_stay_inside_zero_one():
    # 0.31 and 0.99: mean 0.65, s^2 = 2 * 0.34^2 = 0.2312, SE = sqrt(0.2312/2) = 0.34.
    # The t interval 0.65 ± 12.7062 * 0.34 is [-3.67, 4.97]; on the logit scale
    # logit(0.65) = ln(0.65/0.35) = 0.619039, SE_logit = 0.34 / (0.65 * 0.35) = 1.494505,
    # half-width 12.706205 * 1.494505 = 18.989499: expit(-18.370460), expit(19.608538).
    _, _, t_lo, t_hi = t_interval([0.31, 0.99])
    assert (t_lo, t_hi) == (pytest.approx(-3.6701, abs=1e-4), pytest.approx(4.9701, abs=1e-4))
    acc = accuracy_interval(pd.Series({1: 0.31, 2: 0.99}))
    assert acc.mean == pytest.approx(0.65)
    assert acc.low == pytest.approx(1 / (1 + math.exp(18.370460)), rel=1e-5)
    assert 1 - acc.high == pytest.approx(1 / (1 + math.exp(19.608538)), rel=1e-5)
    assert 0 < acc.low < acc.high < 1
    assert (acc.trustworthy, acc.reason) == (False, "fewer than 3 seeds: no interval is trustworthy")


def test_one_seed_without_images_has_no_interval():
    acc = accuracy_interval({7: 0.98})
    assert acc.mean == 0.98 and math.isnan(acc.low) and math.isnan(acc.high)
    assert not acc.trustworthy
    assert acc.reason.startswith("one seed")


def test_one_seed_with_images_uses_the_test_image_spread():
    # 350 of 360 right: p = 35/36; s^2 of the 0/1 column = p (1 - p) 360/359; SE = sqrt(s^2/360);
    # logit interval with t_{0.975, 359}.
    row = np.r_[np.ones(350), np.zeros(10)]
    acc = accuracy_interval(pd.DataFrame([row], index=[0]))
    p = 35 / 36
    se = math.sqrt(p * (1 - p) * 360 / 359 / 360)
    half = stats.t.ppf(0.975, 359) * se / (p * (1 - p))
    centre = math.log(p / (1 - p))
    assert acc.low == pytest.approx(1 / (1 + math.exp(-(centre - half))))
    assert acc.high == pytest.approx(1 / (1 + math.exp(-(centre + half))))
    assert acc.variance == "test images only (one seed)"
    assert not acc.trustworthy


def test_all_images_correct_uses_the_exact_bound():
    # No error among 10,000 images: the accuracy is at least 0.025^(1/10000) = 0.999631.
    acc = accuracy_interval(pd.DataFrame(np.ones((3, 10_000), dtype=bool)))
    assert (acc.mean, acc.high) == (1.0, 1.0)
    assert acc.low == pytest.approx(0.025 ** (1 / 10_000))
    assert acc.low == pytest.approx(0.999631, abs=1e-6)
    assert acc.trustworthy


def test_interval_never_leaves_zero_one():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(2, 6))
        values = rng.uniform(0.0, 1.0, n) ** rng.uniform(0.05, 3)
        acc = accuracy_interval(pd.Series(values))
        assert 0.0 <= acc.low <= acc.mean <= acc.high <= 1.0


def test_identical_accuracies_have_zero_width_and_say_why():
    acc = accuracy_interval(pd.Series([0.98, 0.98, 0.98]))
    assert (acc.low, acc.high) == (0.98, 0.98)
    assert not acc.trustworthy
    assert "no spread" in acc.reason


def test_holm_matches_statsmodels_and_keeps_nan():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.2, (8, 6))
    # Eight rows: multipletests runs gc.collect() on every call, which costs seconds in a
    # test process full of tensors.
    expected = np.array([multipletests(row, method="holm")[1] for row in p])
    np.testing.assert_allclose(holm(p), expected, rtol=1e-12)
    # Hand: sorted 0.01, 0.03, 0.04 (m = 3): 0.03, max(0.03, 0.06), max(0.06, 0.04) = 0.06.
    np.testing.assert_allclose(holm([0.04, np.nan, 0.01, 0.03]), [0.06, np.nan, 0.03, 0.06])
