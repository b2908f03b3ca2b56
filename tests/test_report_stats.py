"""The report's statistics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.errors import BenchError
from bench.report import stats
from bench.report.load import validate

# Two-sided 95% Student-t quantile with 2 degrees of freedom, in closed form:
# t_{q,2} = (2q - 1) / sqrt(2 q (1 - q)) with q = 0.975.
T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)


def runs_table(values: dict[str, list[float]], metric: str = "test_acc") -> pd.DataFrame:
    return pd.DataFrame([{"arch": a, "seed": s, metric: v} for a, vs in values.items() for s, v in enumerate(vs)])


def test_t_interval_by_hand():
    mean, std, lo, hi = stats.t_interval([0.90, 0.92, 0.94])
    assert mean == pytest.approx(0.92)
    assert std == pytest.approx(0.02)
    half = T975_DF2 * 0.02 / math.sqrt(3)
    assert (lo, hi) == (pytest.approx(0.92 - half), pytest.approx(0.92 + half))
    assert T975_DF2 == pytest.approx(4.302652729749464)


def test_paired_difference_ci_and_p_by_hand():
    # d = B - A = [-0.02, -0.01, -0.04]: mean -0.07/3, sample variance 7/30000,
    # so se = sqrt(7)/300, t = -sqrt(7), and for df = 2 the two-sided p = 1 - |t| / sqrt(t^2 + 2).
    runs = runs_table({"a": [0.90, 0.92, 0.94], "b": [0.88, 0.91, 0.90]})
    row = stats.compare_to(runs, "a").iloc[0]
    assert row["arch"] == "b" and row["n"] == 3
    assert row["diff"] == pytest.approx(-0.07 / 3)
    half = T975_DF2 * math.sqrt(7) / 300
    assert row["ci_low"] == pytest.approx(-0.07 / 3 - half)
    assert row["ci_high"] == pytest.approx(-0.07 / 3 + half)
    assert row["p"] == pytest.approx(1 - math.sqrt(7) / 3)
    assert row["p_holm"] == pytest.approx(1 - math.sqrt(7) / 3)  # one comparison: unchanged
    assert row["verdict"] == stats.NO_DIFFERENCE


def test_pairing_is_by_seed_not_by_position():
    # b beats a by exactly 1 point at every seed once paired by seed, whatever the row order.
    runs = pd.DataFrame({"arch": ["a", "a", "a", "b", "b", "b"], "seed": [0, 1, 2, 2, 0, 1],
                         "test_acc": [0.80, 0.90, 0.85, 0.86, 0.81, 0.91]})
    row = stats.compare_to(runs, "a").iloc[0]
    assert row["diff"] == pytest.approx(0.01)
    assert row["verdict"] == stats.ZERO_VARIANCE and math.isnan(row["p"])


def test_holm_on_hand_checked_p_values():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max
    # gives 0.02, 0.03, 0.06, 0.06.
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = stats.holm([0.02, math.nan, 0.04])  # NaN is not counted in m
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert stats.holm([]).size == 0


def test_verdicts_use_holm_corrected_p():
    ref = [0.90, 0.91, 0.92, 0.93]
    runs = runs_table({
        "ref": ref,
        "worse": [r - d for r, d in zip(ref, [0.10, 0.11, 0.10, 0.11])],
        "better": [r + d for r, d in zip(ref, [0.05, 0.06, 0.05, 0.06])],
        "same": [r + d for r, d in zip(ref, [0.01, -0.01, 0.02, -0.02])],
    })
    table = stats.compare_to(runs, "ref").set_index("arch")
    assert table.loc["worse", "verdict"] == stats.WORSE
    assert table.loc["better", "verdict"] == stats.BETTER
    assert table.loc["same", "verdict"] == stats.NO_DIFFERENCE
    assert table.loc["same", "p"] == pytest.approx(1.0)
    assert list(table["p_holm"]) == pytest.approx(list(stats.holm(table["p"].to_numpy())))
    assert (table["p_holm"] >= table["p"]).all()


def test_one_seed_says_no_test_is_possible():
    runs = runs_table({"a": [0.9], "b": [0.8]})
    board = stats.leaderboard(runs)
    assert board["mean"].tolist() == pytest.approx([0.9, 0.8])
    assert board["std"].isna().all() and board["ci_low"].isna().all()
    row = stats.compare_to(runs, "a").iloc[0]
    assert row["diff"] == pytest.approx(-0.1)
    assert math.isnan(row["p"]) and math.isnan(row["ci_low"])
    assert row["verdict"] == stats.ONE_SEED


def test_leaderboard_order_and_ties():
    runs = runs_table({"c": [0.80, 0.82], "a": [0.90, 0.92], "b": [0.91, 0.91], "d": [0.80, 0.82]})
    board = stats.leaderboard(runs)
    assert board["arch"].tolist() == ["a", "b", "c", "d"]  # 0.91 = 0.91: name breaks the tie
    assert board["rank"].tolist() == [1, 2, 3, 4]
    assert board["seeds"].tolist() == [2, 2, 2, 2]


def factorial_table() -> pd.DataFrame:
    """2x2 design, 3 seeds: acc = 0.9 + [dilated]*e_c(seed) + [avg]*e_d(seed)."""
    e_c, e_d = [0.01, 0.02, 0.03], [-0.01, -0.01, -0.04]
    rows = []
    for conv in ("standard", "dilated"):
        for down in ("max", "avg"):
            for seed in range(3):
                rows.append({
                    "arch": f"{conv}-{down}", "seed": seed, "factor_conv": conv, "factor_downsample": down,
                    "test_acc": 0.9 + (conv == "dilated") * e_c[seed] + (down == "avg") * e_d[seed],
                    "mean_epoch_seconds": 1.0 + (conv == "dilated") * 0.5 + (down == "avg") * 0.1 * seed,
                })
    # A plain architecture outside the factorial design must be ignored.
    rows += [{"arch": "lenet", "seed": s, "factor_conv": None, "factor_downsample": None,
              "test_acc": 0.5, "mean_epoch_seconds": 9.0} for s in range(3)]
    return pd.DataFrame(rows)


def test_factor_main_effects_with_known_values():
    effects = stats.factor_effects(factorial_table()).set_index("factor")
    conv, down = effects.loc["conv"], effects.loc["downsample"]
    assert (conv["level"], conv["reference"]) == ("dilated", "standard")
    assert (down["level"], down["reference"]) == ("avg", "max")
    # conv: per-seed contrasts 0.01, 0.02, 0.03 -> mean 0.02, sd 0.01.
    assert conv["diff"] == pytest.approx(0.02)
    assert conv["ci_low"] == pytest.approx(0.02 - T975_DF2 * 0.01 / math.sqrt(3))
    # downsample: contrasts -0.01, -0.01, -0.04 -> mean -0.02, sd sqrt(3e-4), se 0.01.
    assert down["diff"] == pytest.approx(-0.02)
    assert down["ci_high"] == pytest.approx(-0.02 + T975_DF2 * 0.01)
    assert conv["n"] == 3 and down["n"] == 3


def test_factor_effect_on_epoch_time():
    effects = stats.factor_effects(factorial_table(), "mean_epoch_seconds").set_index("factor")
    assert effects.loc["conv", "diff"] == pytest.approx(0.5)
    assert effects.loc["conv", "note"] == stats.ZERO_VARIANCE  # exactly 0.5 at every seed
    assert effects.loc["downsample", "diff"] == pytest.approx(0.1)  # 0, 0.1, 0.2


def test_interaction_cells():
    cells = stats.interaction_table(factorial_table(), "conv", "downsample").set_index(["conv", "downsample"])
    assert cells.loc[("dilated", "avg"), "mean"] == pytest.approx(0.9 + 0.02 - 0.02)
    assert cells.loc[("standard", "max"), "mean"] == pytest.approx(0.9)
    assert len(cells) == 4


def test_no_factor_columns_means_no_effects():
    assert stats.factor_effects(runs_table({"a": [0.9, 0.8]})).empty


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
    result = stats.paired(a, b)
    assert result["note"] == stats.ZERO_VARIANCE and math.isnan(result["p"])
    assert result["diff"] == pytest.approx(0.1) and result["ci_low"] == pytest.approx(0.1)


def test_seed_group_sizes_per_architecture():
    runs = pd.DataFrame({"arch": ["a", "a", "b", "b", "c"], "seed_group": [3, 3, 1, 1, np.nan]})
    assert stats.seed_group_sizes(runs) == {"a": 3, "b": 1, "c": 1}  # NaN: stored before groups existed
    assert stats.seed_group_sizes(runs.drop(columns="seed_group")) == {"a": 1, "b": 1, "c": 1}
