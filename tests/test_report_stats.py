"""The report's statistics (``bench.stats.evidence``) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.errors import BenchError
from bench.stats import evidence as stats
from bench.report.load import validate
from bench.stats import BETTER, EQUIVALENT, SEEDS, SEEDS_AND_IMAGES, UNDECIDED, WORSE, holm, t_interval

# Two-sided 95% Student-t quantile with 2 degrees of freedom, in closed form:
# t_{q,2} = (2q - 1) / sqrt(2 q (1 - q)) with q = 0.975.
T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
MARGIN = 0.0025


def t2_sf(t: float) -> float:
    """Student-t survival function with 2 degrees of freedom, in closed form."""
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


def runs_table(values: dict[str, list[float]], metric: str = "test_acc") -> pd.DataFrame:
    return pd.DataFrame([{"arch": a, "seed": s, "run_id": f"{a}-{s}", metric: v}
                         for a, vs in values.items() for s, v in enumerate(vs)])


def evidence(values: dict[str, list[float]], **kwargs) -> stats.Evidence:
    return stats.Evidence(runs_table(values), **kwargs)


def by_arch(comparisons) -> dict:
    return {c.arch: c for c in comparisons}


def test_t_interval_by_hand():
    mean, std, lo, hi = t_interval([0.90, 0.92, 0.94])
    assert mean == pytest.approx(0.92)
    assert std == pytest.approx(0.02)
    half = T975_DF2 * 0.02 / math.sqrt(3)
    assert (lo, hi) == (pytest.approx(0.92 - half), pytest.approx(0.92 + half))
    assert T975_DF2 == pytest.approx(4.302652729749464)


def test_paired_difference_interval_tests_and_verdict_by_hand():
    # d = B - A = [-0.02, -0.01, -0.04]: mean -0.07/3, sample variance 7/30000,
    # so se = sqrt(7)/300, t = -sqrt(7), and for df = 2 the two-sided p = 1 - |t| / sqrt(t^2 + 2).
    (c,) = evidence({"a": [0.90, 0.92, 0.94], "b": [0.88, 0.91, 0.90]}).compare("a")
    assert c.arch == "b" and c.n_seeds == 3 and c.variance == SEEDS
    diff, se = -0.07 / 3, math.sqrt(7) / 300
    assert c.diff == pytest.approx(diff) and c.se == pytest.approx(se)
    assert (c.ci_low, c.ci_high) == (pytest.approx(diff - T975_DF2 * se), pytest.approx(diff + T975_DF2 * se))
    assert c.p == pytest.approx(1 - math.sqrt(7) / 3)
    assert c.p_holm == pytest.approx(c.p)  # one comparison: Holm leaves p unchanged
    # TOST against ±0.25 pp: the larger of the two one-sided p-values.
    p_eq = max(t2_sf((diff + MARGIN) / se), t2_sf((MARGIN - diff) / se))
    assert c.p_equivalence == pytest.approx(p_eq)
    assert c.verdict == UNDECIDED and (c.wins, c.ties, c.losses) == (0, 0, 3)
    assert c.seeds_needed is not None and c.seeds_needed > 3


def test_pairing_is_by_seed_not_by_position():
    # b beats a by exactly 1 point at every seed once paired by seed, whatever the row order.
    runs = pd.DataFrame({"arch": ["a", "a", "a", "b", "b", "b"], "seed": [0, 1, 2, 2, 0, 1],
                         "run_id": list("uvwxyz"), "test_acc": [0.80, 0.90, 0.85, 0.86, 0.81, 0.91]})
    (c,) = stats.Evidence(runs).compare("a")
    assert c.diff == pytest.approx(0.01) and c.wins == 3
    # No spread: the exact sign test over 3 seeds, p = 2 * 0.5^3, cannot reach 0.05.
    assert c.p == pytest.approx(0.25) and c.verdict == UNDECIDED
    assert c.seeds_needed == math.ceil(math.log2(2 / 0.05))  # 6 seeds all one way would decide it


def test_holm_on_hand_checked_p_values():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max
    # gives 0.02, 0.03, 0.06, 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = holm([0.02, math.nan, 0.04])  # NaN is not counted in m
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_four_verdicts_with_holm_across_the_table():
    ref = [0.90, 0.91, 0.92, 0.93]
    found = by_arch(evidence({
        "ref": ref,
        "worse": [r - d for r, d in zip(ref, [0.10, 0.11, 0.10, 0.11])],
        "better": [r + d for r, d in zip(ref, [0.05, 0.06, 0.05, 0.06])],
        "same": [r + d for r, d in zip(ref, [0.0001, -0.0001, 0.0002, -0.0002])],
        "unclear": [r + d for r, d in zip(ref, [0.01, -0.01, 0.02, -0.02])],
    }).compare("ref"))
    assert {a: c.verdict for a, c in found.items()} == {
        "worse": WORSE, "better": BETTER, "same": EQUIVALENT, "unclear": UNDECIDED}
    p = np.array([found[a].p for a in found])
    assert [found[a].p_holm for a in found] == pytest.approx(list(holm(p)))
    assert all(c.family_size == 4 for c in found.values())


def test_one_seed_gives_no_interval_and_says_so():
    e = evidence({"a": [0.9], "b": [0.8]})
    board, _ = stats.leaderboard(e)
    assert board["mean"].tolist() == pytest.approx([0.9, 0.8])
    assert board["ci_low"].isna().all() and not board["trustworthy"].any()
    (c,) = e.compare("a")
    assert c.diff == pytest.approx(-0.1) and math.isnan(c.p) and c.verdict == UNDECIDED
    assert "one seed" in c.undecided_reason


@pytest.mark.parametrize("accuracies", [[0.3134, 0.9999], [0.31, 0.99], [0.5]])
def test_accuracy_intervals_stay_inside_0_100_with_one_and_two_seeds(accuracies):
    board, _ = stats.leaderboard(evidence({"a": accuracies, "b": [0.5] * len(accuracies)}))
    row = board.set_index("arch").loc["a"]
    assert not row["trustworthy"]  # fewer than 3 seeds
    if not math.isnan(row["ci_low"]):
        assert 0 <= row["ci_low"] <= row["mean"] <= row["ci_high"] <= 1


def test_ranks_claim_only_what_was_decided():
    a = [0.90, 0.92, 0.91, 0.93, 0.90]
    board, _ = stats.leaderboard(evidence({
        "a": a,
        "b": [x + d for x, d in zip(a, [0.01, -0.01, 0.0, 0.005, -0.005])],
        "c": [x - d for x, d in zip(a, [0.10, 0.11, 0.09, 0.10, 0.12])],
        "d": [x - d for x, d in zip(a, [0.20, 0.21, 0.19, 0.20, 0.22])],
    }))
    assert board["arch"].tolist() == ["a", "b", "c", "d"]
    assert board["rank_label"].tolist() == ["tied 1st", "tied 1st", "3rd", "4th"]
    assert (board["rank"] == 1).sum() > 1  # no leader while the top is shared


def test_per_image_results_carry_test_image_noise():
    # 3 seeds x 4 images; a gets image 0 right where b does not, at every seed.
    correct = {f"a-{s}": np.array([1, 1, 0, 1], bool) for s in range(3)}
    correct |= {f"b-{s}": np.array([0, 1, 0, 1], bool) for s in range(3)}
    e = evidence({"a": [0.75] * 3, "b": [0.5] * 3}, correct=correct)
    assert e.images == 4 and e.scores("a").shape == (3, 4)
    (c,) = e.compare("b")
    assert c.variance == SEEDS_AND_IMAGES and c.diff == pytest.approx(0.25) and c.n_images == 4


def factorial_table() -> pd.DataFrame:
    """2x2 design, 3 seeds: acc = 0.9 + [dilated]*e_c(seed) + [avg]*e_d(seed)."""
    e_c, e_d = [0.01, 0.02, 0.03], [-0.01, -0.01, -0.04]
    rows = []
    for conv in ("standard", "dilated"):
        for down in ("max", "avg"):
            for seed in range(3):
                rows.append({
                    "arch": f"{conv}-{down}", "seed": seed, "run_id": f"{conv}-{down}-{seed}",
                    "factor_conv": conv, "factor_downsample": down,
                    "test_acc": 0.9 + (conv == "dilated") * e_c[seed] + (down == "avg") * e_d[seed],
                    "mean_epoch_seconds": 1.0 + (conv == "dilated") * 0.5 + (down == "avg") * 0.1 * seed,
                })
    # A plain architecture outside the factorial design must be ignored.
    rows += [{"arch": "lenet", "seed": s, "run_id": f"lenet-{s}", "factor_conv": None, "factor_downsample": None,
              "test_acc": 0.5, "mean_epoch_seconds": 9.0} for s in range(3)]
    return pd.DataFrame(rows)


def test_factor_main_effects_with_known_values():
    effects = stats.factor_effects(stats.Evidence(factorial_table()))
    (conv,), (down,) = effects["conv"], effects["downsample"]
    assert (conv.arch, conv.reference) == ("dilated", "standard")
    assert (down.arch, down.reference) == ("avg", "max")
    # conv: per-seed contrasts 0.01, 0.02, 0.03 -> mean 0.02, sd 0.01.
    assert conv.diff == pytest.approx(0.02)
    assert conv.ci_low == pytest.approx(0.02 - T975_DF2 * 0.01 / math.sqrt(3))
    # downsample: contrasts -0.01, -0.01, -0.04 -> mean -0.02, sd sqrt(3e-4), se 0.01.
    assert down.diff == pytest.approx(-0.02)
    assert down.ci_high == pytest.approx(-0.02 + T975_DF2 * 0.01)
    assert conv.n_seeds == 3 and down.n_seeds == 3


def test_factor_effect_on_epoch_time():
    effects = stats.factor_effects(stats.Evidence(factorial_table()), "mean_epoch_seconds")
    assert effects["conv"][0].diff == pytest.approx(0.5)  # exactly 0.5 at every seed: no spread
    assert effects["conv"][0].se == 0.0
    assert effects["downsample"][0].diff == pytest.approx(0.1)  # 0, 0.1, 0.2


def test_interaction_cells():
    cells = stats.interaction_table(factorial_table(), "conv", "downsample").set_index(["conv", "downsample"])
    assert cells.loc[("dilated", "avg"), "mean"] == pytest.approx(0.9 + 0.02 - 0.02)
    assert cells.loc[("standard", "max"), "mean"] == pytest.approx(0.9)
    assert len(cells) == 4


def test_no_factor_columns_means_no_effects():
    assert stats.factor_effects(evidence({"a": [0.9, 0.8]})) == {}


def test_class_accuracy_and_gaps_from_confusion():
    rows = []
    for arch, matrix in {"a": [[9, 1], [2, 8]], "b": [[5, 5], [1, 9]]}.items():
        for seed in (0, 1):  # two identical seeds: sums double, shares stay
            for t in range(2):
                for p in range(2):
                    rows.append({"arch": arch, "seed": seed, "true": t, "predicted": p, "count": matrix[t][p]})
    acc = stats.class_accuracy(pd.DataFrame(rows))
    assert acc.loc["a"].tolist() == pytest.approx([0.9, 0.8])
    assert acc.loc["b"].tolist() == pytest.approx([0.5, 0.9])
    gaps = stats.largest_class_gaps(acc)
    assert gaps.iloc[0][["class", "higher", "lower"]].tolist() == [0, "a", "b"]
    assert gaps.iloc[0]["gap"] == pytest.approx(0.4)


def test_pareto_front():
    assert stats.pareto_front([1, 2, 3, 4], [0.8, 0.9, 0.85, 0.95]).tolist() == [0, 1, 3]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.drop(columns=["status"]), "lacks column(s) status"),
    (lambda t: t.assign(test_acc="high"), "column 'test_acc' has a non-numeric"),
    (lambda t: t.assign(seed="x"), "column 'seed'"),
    (lambda t: t.assign(test_acc=3.0), "outside [0, 1]"),
    (lambda t: pd.concat([t, t]), "appears twice"),
    (lambda t: t.iloc[0:0], "holds no runs"),
])
def test_hand_edited_runs_table_is_one_clear_error(edit, message, tmp_path):
    runs = pd.DataFrame({"run_id": ["r0"], "arch": ["a"], "dataset": ["digits"], "seed": [0], "status": ["ok"],
                         **{c: [0.5] for c in ("test_acc", "best_val_acc", "test_loss", "params", "flops_per_image",
                                               "mean_epoch_seconds", "train_seconds", "train_images_per_s")}})
    tables = {"runs.csv": edit(runs), "epochs.csv": pd.DataFrame(), "confusion.csv": pd.DataFrame()}
    with pytest.raises(BenchError, match=None) as info:
        validate(tables, tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_failed_runs_may_leave_metrics_empty(tmp_path):
    runs = pd.DataFrame({"run_id": ["r0"], "arch": ["a"], "dataset": ["digits"], "seed": [0],
                         "status": ["failed"], "test_acc": [np.nan]})
    validated, epochs, confusion = validate({"runs.csv": runs, "epochs.csv": pd.DataFrame(),
                                             "confusion.csv": pd.DataFrame()}, tmp_path)
    assert validated["status"].tolist() == ["failed"] and epochs.empty and confusion.empty


def test_differences_equal_up_to_rounding_count_as_constant():
    a = [0.3, 0.7, 0.9]
    b = [x - 0.1 for x in a]  # float differences 0.09999999999999998, 0.1, ...
    (c,) = evidence({"a": a, "b": b}).compare("b")
    assert c.se == 0.0 and "the same at every seed" in c.note
    assert c.diff == pytest.approx(0.1)


def test_seed_group_sizes_per_architecture():
    runs = pd.DataFrame({"arch": ["a", "a", "b", "b", "c"], "seed_group": [3, 3, 1, 1, np.nan]})
    assert stats.seed_group_sizes(runs) == {"a": 3, "b": 1, "c": 1}  # NaN: stored before groups existed
    assert stats.seed_group_sizes(runs.drop(columns="seed_group")) == {"a": 1, "b": 1, "c": 1}
