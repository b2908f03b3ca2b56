"""Minimum detectable effect and seeds needed: closed-form approximations and pinned exact values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.stats import compare, minimum_detectable_effect, power_difference, power_equivalence
from bench.stats.power import TEST_SET_LIMIT, TOO_MANY, seeds_needed
from bench.stats.variance import SEEDS, Estimate, projected

Z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)  # 1.959964 + 0.841621 = 2.801585


def _seeds_only(diff: float, sd: float, n: int = 3) -> Estimate:
    return Estimate(diff, sd / math.sqrt(n), float(n - 1), SEEDS, n, None, sd ** 2, math.nan, math.nan)


def _power(effect, se, df, alpha=0.05):
    crit = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(crit, df, effect / se) + stats.nct.cdf(-crit, df, effect / se)


def test_power_at_zero_effect_is_alpha():
    assert power_difference(0.0, 0.001, 4, 0.05) == pytest.approx(0.05)


def test_mde_normal_approximation_and_exact_small_df():
    # Large df: MDE -> (z_{0.975} + z_{0.8}) SE = 2.801585 SE.
    assert minimum_detectable_effect(0.001, 1e6, 0.05) == pytest.approx(2.801585e-3, rel=1e-5)
    # Two df (three seeds): the t tails push it to 5.6535 SE.
    mde = minimum_detectable_effect(0.001, 2, 0.05)
    assert mde == pytest.approx(5.65349e-3, abs=1e-8)
    assert _power(mde, 0.001, 2) == pytest.approx(0.8, abs=1e-9)
    # Holm's strictest step with 2 comparisons (alpha/2):
    assert minimum_detectable_effect(0.001, 2, 0.025) == pytest.approx(8.01042e-3, abs=1e-8)
    assert math.isnan(minimum_detectable_effect(0.0, 2, 0.05))


def test_seeds_needed_for_a_difference():
    # Seed sd 0.1 pp, difference 0.1 pp, margin 0.05 pp (only the difference test applies).
    # Normal approximation: N = (2.801585 * 0.001 / 0.001)^2 = 7.85; the t tails need 10:
    # power 0.748 at 9 seeds, 0.803 at 10.
    plan = seeds_needed(_seeds_only(0.001, 0.001), margin=0.0005, alpha=0.05)
    assert plan.total == 10 and plan.reason == ""
    assert _power(0.001, 0.001 / 3, 8) == pytest.approx(0.748017, abs=1e-6)
    assert _power(0.001, 0.001 / math.sqrt(10), 9) == pytest.approx(0.803097, abs=1e-6)
    assert Z ** 2 <= plan.total <= Z ** 2 + 3


def test_seeds_needed_for_equivalence_takes_the_smaller():
    # Difference 0: TOST power 0.697 at 3 seeds, 0.956 at 4 (margin 0.25 pp, sd 0.1 pp).
    assert seeds_needed(_seeds_only(0.0, 0.001), margin=0.0025, alpha=0.05).total == 4
    assert power_equivalence(0.0, 0.001 / math.sqrt(3), 2, 0.0025, 0.05) == pytest.approx(0.696830, abs=1e-6)
    assert power_equivalence(0.0, 0.001 / 2, 3, 0.0025, 0.05) == pytest.approx(0.955954, abs=1e-6)
    # Difference 0.1 pp inside the margin: equivalence at 5 seeds beats detection at 10.
    assert seeds_needed(_seeds_only(0.001, 0.001), margin=0.0025, alpha=0.05).total == 5


def test_seeds_needed_beyond_any_plan():
    plan = seeds_needed(_seeds_only(0.0001, 0.01), margin=0.0001, alpha=0.05)
    assert (plan.total, plan.reason) == (None, TOO_MANY)


def test_seeds_needed_with_images_is_consistent_with_the_projection():
    # 10,000 images, 3 seeds: the reference misses images 0-99, the architecture 0-89 (10
    # images better for good) plus 5, 40 and 20 seed-specific ones: per-seed differences
    # 5, -30, -10 images.
    ref = np.ones((3, 10_000), dtype=bool)
    ref[:, :100] = False
    arch = np.ones((3, 10_000), dtype=bool)
    arch[:, :90] = False
    arch[0, 1000:1005] = arch[1, 1100:1140] = arch[2, 1200:1220] = False
    c = compare(pd.DataFrame(arch), pd.DataFrame(ref))
    assert c.verdict == "undecided" and c.seeds_needed == 19
    from bench.stats.paired import pair
    from bench.stats.variance import estimate
    est = estimate(pair(pd.DataFrame(arch), pd.DataFrame(ref)))
    def decided_power(n):
        se, df = projected(est, n)
        return max(power_difference(est.diff, se, df, 0.05),
                   power_equivalence(est.diff, se, df, 0.0025, 0.05))
    assert decided_power(c.seeds_needed) >= 0.8 > decided_power(c.seeds_needed - 1)


def test_test_set_limit_when_the_image_term_alone_is_too_wide():
    # 360 images, the two differ on 20 images in a fixed way (a stable image term of
    # 20/359/360 per unit^2 => SE >= 0.0117 with infinitely many seeds), tiny mean difference.
    ref, arch = np.ones((4, 360)), np.ones((4, 360))
    ref[:, :10] = 0
    arch[:, 10:20] = 0
    arch[np.arange(4), 100 + np.arange(4)] = 0  # seed-specific extra errors: seeds vary
    c = compare(pd.DataFrame(arch), pd.DataFrame(ref))
    assert c.verdict == "undecided"
    assert (c.seeds_needed, c.undecided_reason) == (None, TEST_SET_LIMIT)
