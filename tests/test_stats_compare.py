"""Verdicts of paired comparisons: difference test, TOST, Holm, degenerate inputs, sentences.

Hand computations use the t distribution with 2 degrees of freedom, whose tail has a
closed form: P(T > t) = 1/2 - t / (2 sqrt(t^2 + 2)).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from bench.errors import BenchError
from bench.stats import (DEFAULT_MARGIN, Look, compare, compare_effects, compare_table,
                         describe)
from bench.stats.compare import (NO_SHARED_SEEDS, ONE_SEED_NO_IMAGES, SAME_AT_EVERY_SEED,
                                 SMALLER_THAN_MARGIN)

REF = pd.Series({0: 0.99, 1: 0.99, 2: 0.99})


def _sf2(t: float) -> float:
    """P(T > t) for Student t with 2 df, closed form."""
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


def _arch(diffs) -> pd.Series:
    return pd.Series({i: 0.99 + d for i, d in enumerate(diffs)})


def test_tost_and_difference_p_by_hand():
    # Per-seed differences 0.1, 0.2, 0.3 pp: mean 0.002, s = 0.001, SE = 0.001/sqrt(3).
    # Difference: t = 0.002/SE = 2 sqrt(3), p = 2 (1/2 - t/(2 sqrt 14)) = 0.074180.
    # Margin 0.5 pp: t_lower = 0.007/SE = 12.124, t_upper = -0.003/SE = -5.196;
    #   p = max(P(T > 12.124), P(T < -5.196)) = max(0.003367, 0.017549) = 0.017549 -> equivalent.
    # Margin 0.25 pp: t_upper = -0.0005/SE = -0.866, P(T < -0.866) = 1/2 - 0.866/(2 sqrt 2.75)
    #   = 0.238884 -> undecided.
    arch = _arch([0.001, 0.002, 0.003])
    se = 0.001 / math.sqrt(3)
    wide = compare(arch, REF, margin=0.005)
    assert wide.p == pytest.approx(2 * _sf2(0.002 / se))
    assert wide.p == pytest.approx(0.074180, abs=1e-6)
    assert wide.p_equivalence == pytest.approx(_sf2(0.003 / se))
    assert wide.p_equivalence == pytest.approx(0.017549, abs=1e-6)
    assert wide.verdict == "equivalent"
    narrow = compare(arch, REF, margin=0.0025)
    assert narrow.p_equivalence == pytest.approx(0.238884, abs=1e-6)
    assert narrow.verdict == "undecided"
    for margin, c in ((0.005, wide), (0.0025, narrow)):
        assert c.p_equivalence == pytest.approx(ttost_paired(arch.to_numpy(), REF.to_numpy(),
                                                             -margin, margin)[0])


def test_better_worse_and_their_sentences():
    # Differences 1.0, 1.2, 1.4 pp: SE = 0.002/sqrt(3), t = 6 sqrt(3) = 10.392,
    # p = 1 - t/sqrt(t^2 + 2) = 1 - 10.3923/sqrt(110) = 0.009133; 95% CI 1.2 ± 4.302653 * 0.11547 pp.
    arch = _arch([0.010, 0.012, 0.014])
    better = compare(arch, REF, arch_name="convnet", reference_name="dilated")
    assert better.p == pytest.approx(2 * _sf2(6 * math.sqrt(3)))
    assert better.p == pytest.approx(0.009133, abs=1e-6)
    assert better.verdict == "better"
    assert (better.wins, better.ties, better.losses) == (3, 0, 0)
    assert (better.ci_low, better.ci_high) == (pytest.approx(0.012 - 4.302653 * 0.002 / math.sqrt(3)),
                                               pytest.approx(0.012 + 4.302653 * 0.002 / math.sqrt(3)))
    assert better.seeds_needed is None
    assert describe(better) == ("convnet is more accurate than dilated by 1.20 pp "
                                "(95% CI 0.70 to 1.70), 3 of 3 seeds agree")
    worse = compare(REF, arch, arch_name="dilated", reference_name="convnet")
    assert worse.verdict == "worse"
    assert (worse.wins, worse.losses) == (0, 3)
    assert describe(worse) == ("dilated is less accurate than convnet by 1.20 pp "
                               "(95% CI 0.70 to 1.70), 3 of 3 seeds agree")


def test_equivalent_with_a_real_difference_inside_the_margin():
    # Differences 0.09, 0.10, 0.11 pp: SE = 0.0001/sqrt(3), difference t = 10 sqrt(3) = 17.32,
    # p = 1 - 17.3205/sqrt(302) = 0.003314; TOST upper t = 0.0015/SE = 25.98,
    # p = 1/2 - 25.98/(2 sqrt(675 + 2)) = 0.000739; both reject -> equivalent, with a note.
    c = compare(_arch([0.0009, 0.0010, 0.0011]), REF, arch_name="lenet", reference_name="lenet-12")
    assert c.p == pytest.approx(2 * _sf2(10 * math.sqrt(3)))
    assert c.p_equivalence == pytest.approx(_sf2(15 * math.sqrt(3)))
    assert c.p_equivalence == pytest.approx(0.000739, abs=1e-6)
    assert c.verdict == "equivalent"
    assert c.note == SMALLER_THAN_MARGIN
    # 90% CI: 0.001 ± t_{0.95,2} SE = 0.001 ± 2.919986 * 0.0000577
    assert c.eq_low == pytest.approx(0.001 - 2.919986e-4 / math.sqrt(3))
    assert describe(c) == ("lenet and lenet-12 are equivalent within ±0.25 pp (difference 0.10 pp, "
                           "90% CI 0.08 to 0.12); a real difference smaller than the margin was detected")


def test_undecided_sentence_names_seeds_needed_and_mde():
    c = compare(_arch([0.001, 0.002, 0.003]), REF, arch_name="a", reference_name="r")
    assert (c.seeds_needed, c.mde) == (5, pytest.approx(0.0032640, abs=1e-7))
    assert describe(c) == ("a vs r is undecided: a difference of 0.20 pp (95% CI -0.05 to 0.45); "
                           "about 2 more seeds would decide it (the smallest difference 3 seeds "
                           "can detect is 0.33 pp)")


def test_table_holm_runs_separately_on_both_families():
    seeds = range(5)
    ref = pd.Series([0.990, 0.991, 0.989, 0.990, 0.992], index=seeds)
    results = {"ref": ref}
    # Per-seed differences with one-sample t-test p-values 0.0349, 0.2302 and 1.
    for name, d in (("x", [0.001, 0.002, 0.003, 0.0, 0.002]), ("y", [0.001, 0.003, -0.001, 0.002, 0.0]),
                    ("z", [0.001, -0.001, 0.0005, 0.0, -0.0005])):
        results[name] = ref + pd.Series(d, index=seeds)
    table = compare_table(results, "ref", margin=DEFAULT_MARGIN)
    assert [c.arch for c in table] == ["x", "y", "z"]
    raw = [stats.ttest_rel(results[c.arch], ref).pvalue for c in table]
    np.testing.assert_allclose([c.p for c in table], raw, rtol=1e-8)
    np.testing.assert_allclose([c.p for c in table], [0.034920, 0.230200, 1.0], atol=1e-6)
    np.testing.assert_allclose([c.p_holm for c in table], multipletests(raw, method="holm")[1])
    np.testing.assert_allclose([c.p_equivalence_holm for c in table],
                               multipletests([c.p_equivalence for c in table], method="holm")[1])
    assert all(c.family_size == 3 for c in table)
    # x's unadjusted 95% interval excludes 0 (p < 0.05) but Holm's correction (3 p = 0.105) keeps
    # it undecided; its interval is shown at Holm's first step (1 - 0.05 / 3), which includes 0,
    # and since that step fails every later comparison keeps the same level.
    x = table[0]
    assert x.p_holm == pytest.approx(3 * 0.0349197, abs=1e-6)
    assert x.verdict == "undecided"
    assert stats.ttest_rel(results["x"], ref).confidence_interval(0.95).low > 0
    assert [c.ci_level for c in table] == pytest.approx([1 - 0.05 / 3] * 3)
    expected = stats.ttest_rel(results["x"], ref).confidence_interval(1 - 0.05 / 3)
    assert (x.ci_low, x.ci_high) == pytest.approx((expected.low, expected.high), rel=1e-9)
    assert x.ci_low < 0 < x.ci_high


def test_zero_spread_per_seed_uses_exact_sign_tests():
    # The same difference at every seed: no t-test; sign tests over n seeds instead.
    # Identical at 3 seeds: difference p = 1, equivalence p = 0.5^3 = 0.125 -> undecided;
    # 0.5^5 = 0.03125 <= 0.05 < 0.5^4, so 5 seeds would decide it.
    c = compare(REF.copy(), REF, arch_name="a", reference_name="r")
    assert (c.p, c.p_equivalence, c.verdict, c.seeds_needed) == (1.0, 0.125, "undecided", 5)
    assert (c.se, c.wins, c.ties, c.losses) == (0.0, 0, 3, 0)
    assert (c.ci_low, c.ci_high) == (-1.0, 1.0)  # 2 * 0.5^3 > 0.05: no bounded interval
    assert SAME_AT_EVERY_SEED in c.note
    assert describe(c) == ("a vs r is undecided: a difference of 0.00 pp (the same at every seed); "
                           "about 2 more seeds would decide it")
    five = pd.Series([0.99] * 5)
    c = compare(five, five.copy(), arch_name="a", reference_name="r")
    assert (c.p_equivalence, c.verdict, c.eq_low, c.eq_high) == (0.03125, "equivalent", 0.0, 0.0)
    assert describe(c) == "a and r are equivalent within ±0.25 pp (difference 0.00 pp, 90% CI 0.00 to 0.00)"
    # 1 pp behind at every one of 6 seeds: p = 2 * 0.5^6 = 0.03125 -> worse; at 5 seeds
    # p = 0.0625 -> undecided, decided at 6 if the next seed repeats it.
    six = pd.Series([0.98] * 6)
    c = compare(six, pd.Series([0.99] * 6))
    assert (c.p, c.p_equivalence, c.verdict) == (0.03125, 1.0, "worse")
    assert (c.ci_low, c.ci_high) == (pytest.approx(-0.01), pytest.approx(-0.01))
    c = compare(six[:5], pd.Series([0.99] * 5), arch_name="a", reference_name="r")
    assert (c.p, c.verdict, c.seeds_needed) == (0.0625, "undecided", 6)
    assert describe(c) == ("a vs r is undecided: a difference of -1.00 pp (the same at every seed); "
                           "about 1 more seed would decide it")


def test_identical_predictions_on_every_image_are_tested_exactly():
    # No image differs: P(no discordant image | |difference| >= 0.25 pp) <= 0.9975^images.
    # 10,000 images: exp(10000 ln 0.9975) = exp(-25.0313) = 1.348e-11 -> equivalent.
    all_right = pd.DataFrame(np.ones((3, 10_000), dtype=bool))
    c = compare(all_right, all_right.copy())
    assert c.p == 1.0
    assert c.p_equivalence == pytest.approx(1.348e-11, rel=1e-3)
    assert c.verdict == "equivalent"
    assert "identical predictions on every test image at every seed" in c.note
    # 360 images: 0.9975^360 = exp(-0.901126) = 0.40611 -> undecided, and seeds cannot change that.
    small = pd.DataFrame(np.ones((3, 360), dtype=bool))
    c = compare(small, small.copy())
    assert c.p_equivalence == pytest.approx(0.40611, abs=1e-5)
    assert c.verdict == "undecided"
    assert c.undecided_reason == "more seeds cannot decide it: the test set is the limit"
    # 90% bound: 1 - 0.05^(1/360) = 0.0082869
    assert (c.eq_low, c.eq_high) == (pytest.approx(-0.0082869, abs=1e-7), pytest.approx(0.0082869, abs=1e-7))
    # 95% bound: 1 - 0.025^(1/360) = 0.010195
    assert describe(c) == ("arch vs reference is undecided: a difference of 0.00 pp (identical predictions "
                           "on every test image at every seed, 95% bound ±1.02 pp); more seeds cannot "
                           "decide it: the test set is the limit")


def test_nan_seeds_are_dropped_and_only_shared_seeds_pair():
    arch = pd.Series({0: 0.991, 1: 0.992, 2: np.nan, 3: 0.993, 9: 0.5})
    ref = pd.Series({0: 0.99, 1: 0.99, 2: 0.99, 3: 0.99, 4: 0.2})
    c = compare(arch, ref)
    expected = compare(pd.Series({0: 0.991, 1: 0.992, 3: 0.993}), ref.loc[[0, 1, 3]])
    assert c.n_seeds == 3
    assert (c.diff, c.se, c.p) == (pytest.approx(0.002), pytest.approx(expected.se), pytest.approx(expected.p))
    matrix = pd.DataFrame([[1, 1, 0], [np.nan, np.nan, np.nan], [1, 0, 0]], index=[5, 6, 7])
    ref_matrix = pd.DataFrame([[1, 0, 0], [1, 1, 1], [0, 0, 0]], index=[5, 6, 7])
    c = compare(matrix, ref_matrix)
    # seeds 5 and 7 remain: D = [[0,1,0],[1,0,0]], mean 1/3
    assert (c.n_seeds, c.diff) == (2, pytest.approx(1 / 3))


def test_no_shared_seed_and_one_seed_without_images():
    c = compare({1: 0.9}, {2: 0.8}, arch_name="a", reference_name="r")
    assert (c.n_seeds, c.verdict, c.undecided_reason) == (0, "undecided", NO_SHARED_SEEDS)
    assert describe(c) == f"a vs r is undecided: {NO_SHARED_SEEDS}"
    c = compare({1: 0.9}, {1: 0.8})
    assert (c.n_seeds, c.verdict, c.undecided_reason) == (1, "undecided", ONE_SEED_NO_IMAGES)
    assert c.diff == pytest.approx(0.1)


def test_win_counts_with_ties():
    arch = pd.Series({0: 0.992, 1: 0.99, 2: 0.985, 3: 0.995})
    ref = pd.Series({0: 0.99, 1: 0.99, 2: 0.99, 3: 0.99})
    c = compare(arch, ref)
    assert (c.wins, c.ties, c.losses) == (2, 1, 1)


def test_factor_effects_reuse_the_comparison_machinery():
    per_seed = pd.Series({0: 0.001, 1: 0.002, 2: 0.003})
    effect = compare_effects({"avg": per_seed}, "max", margin=0.005)[0]
    pair = compare(_arch([0.001, 0.002, 0.003]), REF, margin=0.005)
    assert (effect.arch, effect.reference) == ("avg", "max")
    assert (effect.p, effect.p_equivalence, effect.verdict) == (
        pytest.approx(pair.p), pytest.approx(pair.p_equivalence), "equivalent")
    # A one-seed contrast matrix of marginal means is not a pair of right/wrong: t, not McNemar.
    # Column values 0.5, 0.5, 0, -0.5: mean 1/8, s^2 = (0.75 - 4/64)/3 = 11/48, SE = sqrt(11/192).
    one = compare_effects({"avg": pd.DataFrame([[0.5, 0.5, 0.0, -0.5]])}, "max")[0]
    assert one.se == pytest.approx(math.sqrt(11 / 192))
    assert one.p == pytest.approx(2 * stats.t.sf(0.125 / math.sqrt(11 / 192), 3))


def test_sequential_look_tests_at_the_spent_alpha():
    look = Look.regular(6, initial=3, per_round=3, max_seeds=21)
    arch = _arch([0.001, 0.002, 0.003])
    c = compare(arch, REF, look=look)
    assert c.alpha_used == pytest.approx(look.alpha(0.05))
    assert c.look == 6
    assert "the planned maximum of 21 seeds is reached" in c.note


def test_bad_inputs():
    with pytest.raises(BenchError, match="margin"):
        compare(REF, REF, margin=-0.1)
    with pytest.raises(BenchError, match="reference"):
        compare_table({"a": REF}, "b")
    with pytest.raises(TypeError, match="seeds are needed"):
        compare(np.array([0.9, 0.8]), REF)
    with pytest.raises(BenchError, match="seeds repeat"):
        compare(pd.Series([0.9, 0.8], index=[1, 1]), REF)
