"""Time to target, ranks that claim only what was decided, and the still-improving check."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.stats.curves import improving
from bench.stats import (default_target, per_epoch_reversals, rank, still_improving,
                         target_summary, time_to_target, top)
from bench.stats.compare import compare_table
from bench.stats.ranking import ordinal


def _epochs() -> pd.DataFrame:
    # fast: 1 s/epoch, val 0.90, 0.95, 0.96 (seed 0) and 0.90, 0.93, 0.94 (seed 1);
    # slow: 3 s/epoch, val 0.96, 0.97, 0.98 (both seeds).
    rows = []
    curves = {("fast", 0): [0.90, 0.95, 0.96], ("fast", 1): [0.90, 0.93, 0.94],
              ("slow", 0): [0.96, 0.97, 0.98], ("slow", 1): [0.96, 0.97, 0.98]}
    for run_id, ((arch, seed), vals) in enumerate(curves.items()):
        secs = 1.0 if arch == "fast" else 3.0
        # rows out of epoch order: the functions must sort
        for epoch, val in reversed(list(enumerate(vals, start=1))):
            rows.append({"run_id": f"r{run_id}", "arch": arch, "seed": seed, "epoch": epoch,
                         "val_acc": val, "train_seconds": secs})
    return pd.DataFrame(rows)


def test_default_target_is_the_lowest_mean_final_accuracy():
    # final val_acc: fast (0.96 + 0.94)/2 = 0.95, slow 0.98 -> 0.95
    assert default_target(_epochs()) == pytest.approx(0.95)


def test_time_to_target_per_run_with_a_run_that_never_reaches_it():
    times = time_to_target(_epochs(), 0.95).set_index("run_id")
    # fast seed 0 reaches 0.95 at epoch 2 after 2 s; fast seed 1 never (0.94 at best).
    assert times.loc["r0", ["epochs_to_target", "seconds_to_target"]].tolist() == [2.0, 2.0]
    assert times.loc["r1", "epochs_to_target"] == math.inf
    assert times.loc["r1", "seconds_to_target"] == math.inf
    assert not times.loc["r1", "reached"]
    # slow reaches it at epoch 1 after 3 s.
    assert times.loc["r2", ["epochs_to_target", "seconds_to_target"]].tolist() == [1.0, 3.0]
    assert list(times.columns) == ["arch", "seed", "epochs_to_target", "seconds_to_target", "reached"]


def test_summary_and_the_faster_per_epoch_network_that_is_slower_to_target():
    summary = target_summary(_epochs()).set_index("arch")
    # fast: times 2 s and inf -> median inf, 1 of 2 seeds reached; slow: 3 s, 3 s.
    assert summary.loc["fast", ["seeds", "reached"]].tolist() == [2, 1]
    assert summary.loc["fast", "median_seconds"] == math.inf
    assert summary.loc["slow", ["median_epochs", "median_seconds", "seconds_per_epoch"]].tolist() == [1.0, 3.0, 3.0]
    assert summary.loc["fast", "target"] == pytest.approx(0.95)
    reversals = per_epoch_reversals(summary.reset_index())
    assert reversals[["faster_per_epoch", "faster_to_target"]].values.tolist() == [["fast", "slow"]]
    # With a target both reach quickly the per-epoch order holds: fast 1 s, slow 3 s.
    easy = target_summary(_epochs(), target=0.90)
    assert easy.set_index("arch")["median_seconds"].tolist() == [1.0, 3.0]
    assert per_epoch_reversals(easy).empty


def test_tied_first_and_leader():
    rng = np.random.default_rng(2)
    ref = pd.Series(0.99 + rng.normal(0, 0.001, 10))
    results = {"a": ref + 0.01, "b": ref + 0.01 + rng.normal(0, 0.002, 10),
               "c": ref, "d": ref - 0.01 + rng.normal(0, 0.001, 10)}
    means = {k: float(v.mean()) for k, v in results.items()}
    first = top(means)
    table = compare_table(results, first)
    verdict = {c.arch: c.verdict for c in table}
    ranking = rank(means, table)
    assert ranking.leader is None
    tied = {r.arch for r in ranking.ranks if r.label == "tied 1st"}
    assert tied == {"a", "b"} and verdict[({"a", "b"} - {first}).pop()] != "worse"
    assert [(r.arch, r.position, r.label) for r in ranking.ranks[2:]] == [("c", 3, "3rd"), ("d", 4, "4th")]
    # Without b every other architecture is decided worse than a: a leads.
    del results["b"], means["b"]
    ranking = rank(means, compare_table(results, "a"))
    assert ranking.leader == "a"
    assert [r.label for r in ranking.ranks] == ["1st", "2nd", "3rd"]


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


def test_still_improving_is_judged_from_the_validation_curve():
    # 10,000 validation images at about 0.9: one accuracy's standard error is 0.003, the bar 0.006.
    assert improving([0.80, 0.89, 0.90, 0.91], 10_000) is True  # +0.02 over the last 3 epochs
    assert improving([0.80, 0.90, 0.903, 0.905], 10_000) is False  # +0.005: within the noise
    assert improving([0.90, 0.90, 0.89], 10_000) is False  # falling
    assert improving([0.80, 0.805], 100) is False  # +0.005 with 100 images: noise 0.04
    assert improving([0.80, math.nan], 100) is False  # one epoch is not a trend
    # A decaying schedule's last epoch is its best, yet the curve is flat: not improving.
    flat = [0.90, 0.9050, 0.9060, 0.9062]
    assert improving(flat, 10_000) is False
    assert still_improving([[0.8, 0.85, 0.9], [0.8, 0.85, 0.9], flat], 10_000) is True
    # half is not most; curves of one epoch are left out
    assert still_improving([[0.8, 0.85, 0.9], flat, [0.5]], 10_000) is False
    assert still_improving([], 10_000) is False
