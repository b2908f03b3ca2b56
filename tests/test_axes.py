"""Verdicts on every axis (bench.report.axes): a factor decided on robustness, not on accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.evaluations import register_metrics
from bench.report import axes
from bench.stats import evidence as stats

SEEDS = range(6)


def grid(acc_gap, consistency_gap, ece_gap) -> pd.DataFrame:
    rows = []
    for seed in SEEDS:
        for level, sign in (("max", 0), ("stride", 1)):
            rows.append({"run_id": f"{level}-{seed}", "arch": f"net-{level}", "seed": seed,
                         "factor_downsample": level, "test_acc": 0.99 + sign * acc_gap[seed],
                         "shift_consistency": 0.90 + sign * consistency_gap[seed],
                         "ece": 0.02 + sign * ece_gap[seed]})
    return pd.DataFrame(rows)


def test_a_factor_equivalent_on_accuracy_is_decided_on_shift_consistency_and_calibration():
    register_metrics()
    runs = grid(acc_gap=[1e-4, -1e-4, 2e-4, -2e-4, 0.0, 0.0],
                consistency_gap=[-0.021, -0.019, -0.020, -0.022, -0.018, -0.020],
                ece_gap=[-0.010, -0.011, -0.009, -0.010, -0.012, -0.008])
    found = axes.factor_axes(stats.Evidence(runs))
    assert [(a.factor, a.level, a.reference) for a in found] == [("downsample", "stride", "max")]
    axis = found[0]
    assert [axis.by_metric[m].verdict for m in ("test_acc", "shift_consistency", "ece")] == \
        ["equivalent", "worse", "better"]
    sentence = axis.sentence
    assert sentence.startswith("downsample: stride vs max is equivalent on test accuracy (within ±0.25 pp) but "
                               "worse on shift consistency (lower by 2.00 pp, 95% CI")
    assert ", better on expected calibration error (lower by 1.00 pp, 95% CI" in sentence
    assert axis.recommendation == ("a trade-off: stride is better on expected calibration error and worse on "
                                   "shift consistency than max")
    assert axis.verdict == "axes"


def test_an_axis_only_of_accuracy_adds_no_answer_line():
    runs = grid([0.0] * 6, [0.0] * 6, [0.0] * 6).drop(columns=["shift_consistency", "ece"])
    assert axes.answer_lines(stats.Evidence(runs), "net-max", ["net-max", "net-stride"], True) == []


def test_better_on_every_decided_axis_recommends_the_level():
    register_metrics()
    gaps = np.array([0.010, 0.012, 0.009, 0.011, 0.010, 0.008])
    runs = grid(list(gaps), list(gaps * 2), list(-gaps))
    axis = axes.factor_axes(stats.Evidence(runs))[0]
    assert axis.recommendation.startswith("prefer stride over max: better on test accuracy, shift consistency, "
                                          "expected calibration error")
    assert axis.verdict == "better"


def test_the_recommendation_leaves_out_a_network_as_accurate_but_worse_on_an_axis():
    register_metrics()
    runs = grid(acc_gap=[1e-4, -1e-4, 2e-4, -2e-4, 0.0, 0.0],
                consistency_gap=[-0.021, -0.019, -0.020, -0.022, -0.018, -0.020],
                ece_gap=[0.0001, -0.0001, 0.0, 0.0002, -0.0002, 0.0])
    kept, why = axes.prefer_robust(stats.Evidence(runs), ["net-max", "net-stride"])
    assert kept == ["net-max"]
    assert why == ("; of the networks as accurate, those worse on robustness are left out "
                   "(net-stride is worse than net-max on shift consistency)")
    assert axes.prefer_robust(stats.Evidence(runs.drop(columns=["shift_consistency", "ece"])),
                              ["net-max", "net-stride"]) == (["net-max", "net-stride"], "")
