"""Seeds until decided: alpha spending across looks, proved by simulation.

The simulation runs the engine's own decision functions (``bench.stats.decision``,
``bench.stats.intervals.holm``, ``Look.alpha``) on thousands of simulated grids at once;
``test_vectorised_rule_is_compare_table`` checks that this is the rule ``compare_table``
applies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.stats import (ALPHA, BETTER, DEFAULT_MARGIN, EQUIVALENT, UNDECIDED, WORSE, Look,
                         all_decided, compare_table, obrien_fleming_spent, should_stop)
from bench.stats.decision import difference_p, equivalence_p, verdicts
from bench.stats.intervals import holm

GRIDS = 4000
ARCHS = 4          # architectures compared with one reference
MAX_SEEDS = 21     # looks after 3, 6, ..., 21 seeds
SEED_SD = 0.001    # per-seed accuracy noise: 0.1 pp
# A simulation's false-verdict rate may exceed 5% by chance; beyond this, only with probability 0.001.
BOUND = stats.binom.ppf(0.999, GRIDS, ALPHA) / GRIDS


def test_spending_function_by_hand():
    # Look 1 of 3/21 seeds: 2 - 2 Phi(1.959964 / sqrt(1/7)) = 2 Phi(-5.185577) = 2.1535e-7.
    assert obrien_fleming_spent(3 / 21) == pytest.approx(2.15347e-7, rel=1e-4)
    # Half the information: 2 Phi(-1.959964 sqrt 2) = 2 Phi(-2.771808) = 0.0055746.
    assert obrien_fleming_spent(0.5) == pytest.approx(0.0055746, abs=1e-7)
    assert obrien_fleming_spent(1.0) == pytest.approx(ALPHA)
    assert obrien_fleming_spent(0.0) == 0.0
    looks = [Look.regular(k, max_seeds=MAX_SEEDS) for k in range(7)]
    assert [look.n_seeds for look in looks] == [3, 6, 9, 12, 15, 18, 21]
    assert sum(look.alpha() for look in looks) == pytest.approx(ALPHA)
    assert looks[1].alpha() == pytest.approx(obrien_fleming_spent(6 / 21) - obrien_fleming_spent(3 / 21))
    assert looks[-1].is_last and not looks[-2].is_last
    with pytest.raises(ValueError, match="past the planned maximum"):
        Look.regular(7, max_seeds=MAX_SEEDS)
    with pytest.raises(ValueError, match="rise strictly"):
        Look((3, 3), max_seeds=21)
    # A last round that overshoots is cut at the maximum.
    assert Look.regular(2, initial=4, per_round=4, max_seeds=10).seeds == (4, 8, 10)


def _grids(rng, shift):
    """Per-seed accuracies (grids, archs, seeds) and the reference's (grids, seeds)."""
    shared = rng.normal(0, SEED_SD, (GRIDS, 1, MAX_SEEDS))  # the same seed: the same data order
    acc = 0.99 + shared + rng.normal(0, SEED_SD, (GRIDS, ARCHS, MAX_SEEDS)) + np.asarray(shift)[:, None]
    ref = 0.99 + shared[:, 0] + rng.normal(0, SEED_SD, (GRIDS, MAX_SEEDS))
    return acc, ref


def _run(acc, ref, margin, spend):
    """Rounds of 3 seeds until every comparison is decided or 21 seeds; spend=False re-tests at alpha.

    Returns per grid and architecture: whether any look said better/worse, whether any look
    said equivalent, and the verdict at the look where the grid stopped.
    """
    d = acc - ref[:, None, :]
    stopped = np.zeros(GRIDS, dtype=bool)
    said_different = np.zeros(acc.shape[:2], dtype=bool)
    said_equivalent = np.zeros(acc.shape[:2], dtype=bool)
    final = np.full(acc.shape[:2], UNDECIDED, dtype=object)
    for k in range(7):
        look = Look.regular(k, max_seeds=MAX_SEEDS)
        x = d[:, :, :look.n_seeds]
        diff = x.mean(axis=2)
        se = x.std(axis=2, ddof=1) / np.sqrt(look.n_seeds)
        df = look.n_seeds - 1
        v = verdicts(diff, holm(difference_p(diff, se, df)), holm(equivalence_p(diff, se, df, margin)),
                     look.alpha() if spend else ALPHA)
        live = ~stopped
        final[live] = v[live]
        said_different[live] |= (v[live] == BETTER) | (v[live] == WORSE)
        said_equivalent[live] |= v[live] == EQUIVALENT
        stopped |= (v != UNDECIDED).all(axis=1)
    return said_different, said_equivalent, final


def test_optional_stopping_keeps_false_verdicts_at_alpha():
    rng = np.random.default_rng(20240611)
    acc, ref = _grids(rng, np.zeros(ARCHS))
    # Realistic: the default margin, stop when every comparison is decided.
    rule, _, final = _run(acc, ref, DEFAULT_MARGIN, spend=True)
    assert rule.any(axis=1).mean() <= BOUND
    assert (final == EQUIVALENT).mean() >= 0.99
    # Worst case for optional stopping: no equivalence margin, so rounds go on until some
    # difference shows.  Re-testing at the full alpha after each round finds one far more
    # often than 5%; spending alpha across looks does not.
    rule, _, _ = _run(acc, ref, 0.0, spend=True)
    naive, _, _ = _run(acc, ref, 0.0, spend=False)
    assert rule.any(axis=1).mean() <= BOUND
    assert naive.any(axis=1).mean() > 2 * BOUND


def test_false_equivalence_stays_at_alpha():
    # Every architecture truly differs by exactly the margin: no equivalent verdict is right.
    rng = np.random.default_rng(7)
    acc, ref = _grids(rng, np.full(ARCHS, DEFAULT_MARGIN))
    _, said_equivalent, _ = _run(acc, ref, DEFAULT_MARGIN, spend=True)
    assert said_equivalent.any(axis=1).mean() <= BOUND


def test_the_rule_finds_a_real_difference():
    # One architecture is 0.3 pp better, the others equal the reference.
    rng = np.random.default_rng(99)
    acc, ref = _grids(rng, np.r_[0.003, np.zeros(ARCHS - 1)])
    said_different, _, final = _run(acc, ref, DEFAULT_MARGIN, spend=True)
    assert (final[:, 0] == BETTER).mean() >= 0.95
    assert (final[:, 1:] == EQUIVALENT).mean() >= 0.95
    assert said_different[:, 1:].any(axis=1).mean() <= BOUND


def test_vectorised_rule_is_compare_table():
    rng = np.random.default_rng(3)
    acc, ref = _grids(rng, np.r_[0.002, 0.0, 0.0, 0.001])
    names = [f"arch{i}" for i in range(ARCHS)]
    for g in range(3):
        for k in (0, 2, 4, 6):
            look = Look.regular(k, max_seeds=MAX_SEEDS)
            n = look.n_seeds
            results = {"ref": pd.Series(ref[g, :n])}
            results.update({name: pd.Series(acc[g, i, :n]) for i, name in enumerate(names)})
            table = compare_table(results, "ref", look=look)
            x = acc[g, :, :n] - ref[g, None, :n]
            diff, se = x.mean(axis=1), x.std(axis=1, ddof=1) / np.sqrt(n)
            expected = verdicts(diff, holm(difference_p(diff, se, n - 1)),
                                holm(equivalence_p(diff, se, n - 1, DEFAULT_MARGIN)), look.alpha())
            assert [c.verdict for c in table] == list(expected)
            assert should_stop(table, look) == (look.is_last or all_decided(table))


def test_all_decided():
    rng = np.random.default_rng(4)
    ref = pd.Series(0.99 + rng.normal(0, SEED_SD, 21))
    far = ref + 0.01 + rng.normal(0, SEED_SD, 21)
    near = ref + rng.normal(0, SEED_SD, 21)
    table = compare_table({"ref": ref, "far": far, "near": near}, "ref")
    assert [c.verdict for c in table] == [BETTER, EQUIVALENT]
    assert all_decided(table)
    early = compare_table({"ref": ref[:3], "far": far[:3], "near": near[:3]}, "ref",
                          look=Look.regular(0, max_seeds=21))
    assert [c.verdict for c in early] == [UNDECIDED, UNDECIDED]
    assert not all_decided(early)
