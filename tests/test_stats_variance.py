"""The standard error of a paired difference from seeds and test images, hand-computed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.errors import BenchError
from bench.stats import IMAGES_ONLY, SEEDS, SEEDS_AND_IMAGES, compare
from bench.stats.paired import pair
from bench.stats.variance import estimate, projected


def _matrices(D):
    """Correctness matrices (arch, ref) whose difference is D (entries -1, 0, 1)."""
    D = np.asarray(D)
    arch = (D >= 0).astype(int)
    ref = (D <= 0).astype(int)
    return pd.DataFrame(arch), pd.DataFrame(ref)


def test_two_by_four_seed_and_image_terms():
    # D = [[0,1,0,0],[1,1,0,0]]: row means 1/4, 1/2; column means 1/2, 1, 0, 0; mean 3/8.
    # s^2(rows) = ((1/8)^2 + (1/8)^2) / 1 = 1/32 -> seed term 1/32 / 2 = 1/64.
    # s^2(cols) = (1/8^2 + 5/8^2 + 3/8^2 + 3/8^2) / 3 = (44/64) / 3 = 11/48 -> image term 11/192.
    # SE^2 = 1/64 + 11/192 = 14/192 = 7/96.
    # df = (7/96)^2 / ((1/64)^2 / 1 + (11/192)^2 / 3) = (49/9216) / (37/27648) = 147/37.
    arch, ref = _matrices([[0, 1, 0, 0], [1, 1, 0, 0]])
    est = estimate(pair(arch, ref))
    assert est.diff == pytest.approx(3 / 8)
    assert est.seed_var == pytest.approx(1 / 32)
    assert est.image_var == pytest.approx(11 / 48)
    assert est.se == pytest.approx(math.sqrt(7 / 96))
    assert est.df == pytest.approx(147 / 37)
    assert est.variance == SEEDS_AND_IMAGES
    assert (est.n_seeds, est.n_images) == (2, 4)


def test_three_by_five_seed_and_image_terms():
    # D rows [1,0,0,-1,0], [1,1,0,0,0], [0,1,1,0,0]: row means 0, 2/5, 2/5; mean 4/15.
    # s^2(rows) = ((4/15)^2 + 2 (2/15)^2) / 2 = 4/75 -> seed term 4/225.
    # column means 2/3, 2/3, 1/3, -1/3, 0: deviations 6/15, 6/15, 1/15, -9/15, -4/15,
    # squares sum 170/225, s^2(cols) = 170/900 = 17/90 -> image term 17/450.
    # SE^2 = 4/225 + 17/450 = 1/18; df = (1/18)^2 / ((4/225)^2/2 + (17/450)^2/4)
    #      = (1/324) / (417/810000) = 810000 / 135108.
    D = [[1, 0, 0, -1, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0]]
    est = estimate(pair(*_matrices(D)))
    assert est.diff == pytest.approx(4 / 15)
    assert est.se == pytest.approx(math.sqrt(1 / 18))
    assert est.df == pytest.approx(810000 / 135108)
    # Residuals D - row - col + mean, times 15: [9,-6,-1,-6,4], [3,3,-7,3,-2], [-12,3,8,3,-2];
    # squares sum 480/225 = 32/15, over (3-1)(5-1) = 8 degrees of freedom -> 4/15.
    assert est.interaction_var == pytest.approx(4 / 15)


def test_projection_keeps_the_images_own_difference():
    # 3x5 above: the stable image part is 17/90 - (4/15)/3 = 17/90 - 8/90 = 1/10.
    # With 12 seeds: seed term (4/75)/12 = 1/225, image term (1/10 + (4/15)/12)/5 = 11/450;
    # SE^2 = 1/225 + 11/450 = 13/450; infinitely many seeds: SE^2 = (1/10)/5 = 1/50.
    D = [[1, 0, 0, -1, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0]]
    est = estimate(pair(*_matrices(D)))
    se12, df12 = projected(est, 12)
    assert se12 == pytest.approx(math.sqrt(13 / 450))
    assert df12 == pytest.approx((13 / 450) ** 2 / ((1 / 225) ** 2 / 11 + (11 / 450) ** 2 / 4))
    se_inf, df_inf = projected(est, math.inf)
    assert (se_inf, df_inf) == (pytest.approx(math.sqrt(1 / 50)), 4.0)
    assert projected(est, 3) == (pytest.approx(est.se), pytest.approx(est.df))


def test_one_seed_uses_images_only_and_mcnemar():
    # One seed, 20 images: 5 only the architecture got right, 1 only the reference.
    # Exact McNemar: 2 P(Bin(6, 1/2) <= 1) = 2 (1 + 6) / 64 = 14/64.
    # D: five +1, one -1, 14 zeros: mean 4/20 = 0.2, s^2 = (6 - 20 * 0.04) / 19 = 5.2/19,
    # SE = sqrt(5.2/19/20), df = 19.
    row = [1] * 5 + [-1] + [0] * 14
    c = compare(*_matrices([row]))
    assert c.p == pytest.approx(14 / 64)
    assert c.diff == pytest.approx(0.2)
    assert c.se == pytest.approx(math.sqrt(5.2 / 19 / 20))
    assert c.df == 19
    assert c.variance == IMAGES_ONLY
    assert c.seeds_needed is None
    assert "run at least 2 more seeds" in c.undecided_reason
    assert (c.wins, c.ties, c.losses) == (1, 0, 0)


def test_seeds_only_when_images_are_missing_on_one_side():
    arch, ref = _matrices([[0, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0]])
    c = compare(arch, ref.mean(axis=1))
    # per-seed differences 1/4, 1/2, 1/4: mean 1/3, s^2 = 1/48, SE = sqrt(1/144) = 1/12, df 2
    assert c.variance == SEEDS
    assert c.n_images is None
    assert c.se == pytest.approx(1 / 12)
    assert c.df == 2


def test_360_test_images_make_intervals_visibly_wide():
    # scikit-learn digits has 360 test images.  Reference wrong on images 0-9 at every
    # seed; the architecture wrong on 0-4 and on 1, 2, 3 seed-specific others.
    # Per-seed differences 4/360, 3/360, 2/360: by seeds alone, SE = (1/360)/sqrt(3)
    # and the 95% CI 0.83 pp ± 4.303 * 0.160 pp = [0.14, 1.52] pp looks decisive.
    # Column means: five +1 (images 5-9), six -1/3 (the seed-specific errors), rest 0:
    # s^2(cols) = (5 + 6/9 - 360 (3/360)^2) / 359, image term s^2/360 -> SE 0.68 pp.
    ref = np.ones((3, 360))
    ref[:, :10] = 0
    arch = np.ones((3, 360))
    arch[:, :5] = 0
    arch[0, 10] = 0
    arch[1, 11:13] = 0
    arch[2, 13:16] = 0
    seeds_only = compare(pd.DataFrame(arch).mean(axis=1), pd.DataFrame(ref).mean(axis=1))
    both = compare(pd.DataFrame(arch), pd.DataFrame(ref))
    assert seeds_only.se == pytest.approx(1 / 360 / math.sqrt(3))
    assert (seeds_only.verdict, seeds_only.ci_low, seeds_only.ci_high) == (
        "better", pytest.approx(0.0014, abs=1e-4), pytest.approx(0.0152, abs=1e-4))
    seed_term = (1 / 360) ** 2 / 3
    image_term = (5 + 6 / 9 - 360 * (3 / 360) ** 2) / 359 / 360
    assert both.se == pytest.approx(math.sqrt(seed_term + image_term))
    assert both.df == pytest.approx((seed_term + image_term) ** 2
                                    / (seed_term ** 2 / 2 + image_term ** 2 / 359))
    assert both.ci_high - both.ci_low > 0.025  # wider than 2.5 pp
    assert both.verdict == "undecided"
    assert both.undecided_reason == "more seeds cannot decide it: the test set is the limit"


def test_test_sets_must_match():
    a = pd.DataFrame(np.ones((2, 5)))
    b = pd.DataFrame(np.ones((2, 6)))
    with pytest.raises(BenchError, match="different test sets"):
        pair(a, b)
    with pytest.raises(BenchError, match="image orders"):
        pair(a, a[[4, 3, 2, 1, 0]])
    with pytest.raises(BenchError, match="True/False"):
        pair(pd.DataFrame(np.full((2, 5), 1.5)), a)
