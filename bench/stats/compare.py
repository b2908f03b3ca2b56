"""Comparisons against a reference, each ending in better, worse, equivalent or undecided.

For every architecture of a table (or every level of a factor) against one reference:

* the paired difference and its SE from seeds and, when given, test images
  (:mod:`bench.stats.variance`);
* the difference test and the equivalence test (TOST within ±margin) of
  :mod:`bench.stats.decision`, Holm-adjusted across the table, each family separately;
* the verdict at ``alpha`` (or, at a sequential look, at the alpha that look spends);
* power: the minimum detectable effect and, when undecided, the total seeds that would
  decide it (:mod:`bench.stats.power`), both at alpha / comparisons;
* how many seeds the architecture won, tied and lost.

Intervals tell the same story as the verdicts: they are Holm-consistent, each at the level
its Holm step tested it at (``ci_level``: 1 - alpha_used / (m - j) at step j, and from the
first step that fails on, that step's level), so a difference interval excludes 0 exactly
when the Holm-adjusted difference test rejects, and an equivalence interval (``eq_level``, at
1 - 2 x its step's alpha) lies inside ±margin exactly when the Holm-adjusted TOST does.  Their
family-wise confidence is 1 - alpha_used (difference) and 1 - 2 alpha_used (equivalence).  They
are clipped only by the metric's real bounds (:mod:`bench.stats.metrics`): a difference of two
accuracies lies in [-1, 1], one of two epoch times in seconds is unbounded.
Zero spread, where a t-test is undefined, is handled by exact tests: identical
predictions on every image at every seed (no discordant image among n_images has
probability at most (1 - margin)^n_images when the true |difference| >= margin); otherwise
the same difference at every seed (exact sign tests over the seeds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.errors import BenchError
from bench.stats import decision, power
from bench.stats.intervals import holm
from bench.stats.methods import ALPHA, EQUIVALENT, MIN_TRUSTED_SEEDS, UNDECIDED
from bench.stats.metrics import ACCURACY, Metric
from bench.stats.paired import PairedDifference, Scores, contrast, pair
from bench.stats.sequential import Look
from bench.stats.variance import Estimate, estimate

SMALLER_THAN_MARGIN = "a real difference smaller than the margin was detected"
NO_SHARED_SEEDS = "no seeds shared with the reference"
ONE_SEED_NO_IMAGES = "one seed and no per-image results: nothing to measure the spread from"
SAME_AT_EVERY_SEED = ("the difference is the same at every seed: with no spread for a t-test, "
                      "the exact sign test decides")
IDENTICAL = "identical predictions on every test image at every seed"


@dataclass(frozen=True)
class Comparison:
    """``arch`` (for a factor: the level) minus ``reference``, with its verdict.

    ``diff`` > 0: the architecture's ``metric`` is higher (for accuracy: more accurate).
    ``seeds_needed`` is the total number of seeds that would decide an undecided comparison
    with 80% power (None when decided, or when seeds cannot decide it: ``undecided_reason``
    says why).  ``alpha_used`` is the family-wise level the verdict was taken at;
    ``family_size`` the number of comparisons Holm saw; ``ci_level`` and ``eq_level`` the
    confidence of this comparison's own Holm-consistent intervals.
    """

    arch: str
    reference: str
    n_seeds: int
    n_images: int | None
    diff: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    eq_low: float
    eq_high: float
    p: float
    p_holm: float
    p_equivalence: float
    p_equivalence_holm: float
    verdict: str
    variance: str
    mde: float
    seeds_needed: int | None
    undecided_reason: str
    wins: int
    ties: int
    losses: int
    note: str
    margin: float
    alpha_used: float
    family_size: int
    look: int | None = None
    metric: str = ACCURACY.column
    ci_level: float = math.nan
    eq_level: float = math.nan


@dataclass(frozen=True)
class _Tested:
    """One comparison's estimate and raw p-values, before Holm."""

    est: Estimate
    p: float
    p_equivalence: float
    reason: str
    # Zero spread: the exact sign test over seeds replaced the t-tests.
    sign_test: bool = False
    # Zero spread and no image differs at any seed: exact bounds from zero discordant images.
    identical: bool = False


def compare(arch: Scores, reference: Scores, *, arch_name: str = "arch",
            reference_name: str = "reference", margin: float | None = None,
            alpha: float = ALPHA, look: Look | None = None, metric: Metric = ACCURACY) -> Comparison:
    """One architecture against a reference, paired by seed (a table of one).

    ``margin`` (the metric's stored units) defaults to the metric's declared one."""
    return _decide([arch_name], reference_name, [pair(arch, reference)], margin, alpha, look, metric)[0]


def compare_table(results: Mapping[str, Scores], reference: str, *,
                  margin: float | None = None, alpha: float = ALPHA,
                  look: Look | None = None, order: Sequence[str] | None = None,
                  metric: Metric = ACCURACY) -> list[Comparison]:
    """Every architecture of ``results`` but ``reference`` against it, Holm across the table."""
    if reference not in results:
        raise BenchError(f"reference architecture {reference!r} has no results")
    names = [a for a in (order or list(results)) if a != reference and a in results]
    diffs = [pair(results[a], results[reference]) for a in names]
    return _decide(names, reference, diffs, margin, alpha, look, metric)


def compare_effects(contrasts: Mapping[str, Scores], reference: str, *,
                    margin: float | None = None, alpha: float = ALPHA,
                    look: Look | None = None, metric: Metric = ACCURACY) -> list[Comparison]:
    """A factor's main effects: per level, per-seed (or seed x image) contrasts level - reference.

    Each contrast is already a difference (marginal mean at the level minus at the
    reference level, same seed); Holm runs across the factor's levels.
    """
    names = list(contrasts)
    return _decide(names, reference, [contrast(contrasts[n]) for n in names], margin, alpha, look,
                   metric)


def holm_levels(p: np.ndarray, alpha: float) -> np.ndarray:
    """Per comparison, the level Holm's step-down tested it at, made consistent with its verdict.

    Sorted ascending, step j of m tests at alpha / (m - j); from the first step that fails on,
    every later comparison keeps that step's level (Holm stops there, and their p-values are no
    smaller).  Testing each comparison at its level rejects exactly the Holm-rejected ones, so
    intervals at these levels exclude 0 exactly when the verdict says a difference.  NaN: alpha.
    """
    p = np.asarray(p, dtype=float)
    levels = np.full(p.shape, alpha, dtype=float)
    usable = np.flatnonzero(~np.isnan(p))
    order = usable[np.argsort(p[usable], kind="stable")]
    m, current, failed = len(order), alpha, False
    for j, i in enumerate(order):
        if not failed:
            current = alpha / (m - j)
            failed = p[i] > current
        levels[i] = current
    return levels


def _decide(names: list[str], reference: str, diffs: list[PairedDifference], margin: float | None,
            alpha: float, look: Look | None, metric: Metric = ACCURACY) -> list[Comparison]:
    margin = metric.margin if margin is None else margin
    span = metric.diff_bounds[1]
    if not 0 <= margin < span:
        raise BenchError(f"the equivalence margin for {metric.label} must lie in [0, {span:g}), not {margin}")
    if not 0 < alpha < 0.5:
        raise BenchError(f"alpha must lie in (0, 0.5), not {alpha}")
    alpha_used = look.alpha(alpha) if look is not None else alpha
    tested = [_test(d, margin) for d in diffs]
    p = np.array([t.p for t in tested], dtype=float)
    p_eq = np.array([t.p_equivalence for t in tested], dtype=float)
    p_holm, p_eq_holm = holm(p), holm(p_eq)
    levels, eq_levels = holm_levels(p, alpha_used), holm_levels(p_eq, alpha_used)
    diff = np.array([t.est.diff for t in tested], dtype=float)
    good = diff if metric.higher_is_better else -diff
    verdicts = decision.verdicts(good, p_holm, p_eq_holm, alpha_used)
    family = max(int((~np.isnan(p)).sum()), 1)
    # Power is planned at the fixed-design level of Holm's strictest step.
    level = alpha / family
    out = []
    for name, d, t, ph, peh, verdict, lev, eq_lev in zip(names, diffs, tested, p_holm, p_eq_holm,
                                                          verdicts, levels, eq_levels):
        est = t.est
        ci, eq = _intervals(t, float(lev), float(eq_lev), metric)
        mde = power.minimum_detectable_effect(est.se, est.df, level)
        needed, reason = None, ""
        if verdict == UNDECIDED:
            if t.reason:
                reason = t.reason
            elif t.sign_test:
                needed, reason = _sign_test_seeds(est, margin, level)
            else:
                plan = power.seeds_needed(est, margin, level)
                needed, reason = plan.total, plan.reason
        notes = _notes(d, t, float(ph), str(verdict), alpha_used, needed, reason, look)
        out.append(Comparison(
            arch=name, reference=reference, n_seeds=d.n_seeds, n_images=d.n_images,
            diff=est.diff, se=est.se, df=est.df, ci_low=ci[0], ci_high=ci[1],
            eq_low=eq[0], eq_high=eq[1], p=t.p, p_holm=float(ph),
            p_equivalence=t.p_equivalence, p_equivalence_holm=float(peh), verdict=str(verdict),
            variance=est.variance, mde=mde, seeds_needed=needed, undecided_reason=reason,
            wins=d.wins, ties=d.ties, losses=d.losses, note="; ".join(notes), margin=margin,
            alpha_used=alpha_used, family_size=family,
            look=None if look is None else look.index, metric=metric.column,
            ci_level=1 - float(lev), eq_level=1 - 2 * float(eq_lev)))
    return out


def _test(d: PairedDifference, margin: float) -> _Tested:
    est = estimate(d)
    if d.n_seeds == 0:
        return _Tested(est, math.nan, math.nan, NO_SHARED_SEEDS)
    if math.isnan(est.se):
        return _Tested(est, math.nan, math.nan, ONE_SEED_NO_IMAGES)
    if est.zero_spread:
        if d.matrix is not None and est.diff == 0.0:
            # If the true |difference| >= margin, at least a share margin of images differ; none
            # of m differing then has probability at most (1 - margin)^m.  Training that gives
            # identical predictions will keep doing so: seeds cannot help.
            return _Tested(est, 1.0, (1.0 - margin) ** est.n_images, power.TEST_SET_LIMIT, identical=True)
        return _same_at_every_seed(est, margin)
    p = float(decision.difference_p(est.diff, est.se, est.df))
    if d.n_seeds == 1 and d.discordance:
        p = _mcnemar(d.matrix[0])
    p_eq = float(decision.equivalence_p(est.diff, est.se, est.df, margin))
    return _Tested(est, p, p_eq, "")


def _same_at_every_seed(est: Estimate, margin: float) -> _Tested:
    """Every seed shows the same difference: exact sign tests over the n seeds.

    Difference: all n seeds on one side has probability 2 * 0.5^n when the median is 0.
    Equivalence: all n seeds above -margin has probability <= 0.5^n when the median is
    <= -margin (and likewise below +margin).
    """
    n, diff = est.n_seeds, est.diff
    p = 1.0 if diff == 0.0 else min(1.0, 2 * 0.5 ** n)
    p_eq = 0.5 ** n if abs(diff) < margin else 1.0
    return _Tested(est, p, p_eq, "", sign_test=True)


def _intervals(t: _Tested, level: float, eq_level: float, metric: Metric
               ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The difference interval at confidence 1 - level and the equivalence one at 1 - 2 eq_level.

    Identical predictions: the exact bound for zero discordant images among m.  Zero spread
    otherwise: the sign test's distribution-free interval for the median, [diff, diff] when the
    sign test reaches its level, else unbounded (the metric's real bounds).
    """
    est = t.est
    nan2 = (math.nan, math.nan)
    if math.isnan(t.p):
        return nan2, nan2
    if t.identical:
        m = est.n_images
        two_sided, one_sided = 1.0 - (level / 2) ** (1.0 / m), 1.0 - eq_level ** (1.0 / m)
        return metric.clip_diff(-two_sided, two_sided), metric.clip_diff(-one_sided, one_sided)
    if t.sign_test:
        unbounded = metric.diff_bounds
        n, diff = est.n_seeds, est.diff
        ci = (diff, diff) if 2 * 0.5 ** n <= level else unbounded
        eq = (diff, diff) if 0.5 ** n <= eq_level else unbounded
        return ci, eq
    return _interval(est, level / 2, metric), _interval(est, eq_level, metric)


def _sign_test_seeds(est: Estimate, margin: float, level: float) -> tuple[int | None, str]:
    """Seeds at which the sign tests decide, if further seeds repeat the same difference."""
    options = []
    if est.diff != 0.0:
        options.append(math.ceil(math.log2(2 / level)))
    if abs(est.diff) < margin:
        options.append(math.ceil(math.log2(1 / level)))
    if not options:
        return None, power.NO_SPREAD
    return max(min(options), est.n_seeds + 1), ""


def _mcnemar(row: np.ndarray) -> float:
    """Exact McNemar p-value of one seed: images only the architecture got right vs only the reference."""
    # Imported here: statsmodels takes a second to import and only one-seed comparisons need it.
    from statsmodels.stats.contingency_tables import mcnemar

    b, c = int((row > 0).sum()), int((row < 0).sum())
    return float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)


def _interval(est: Estimate, tail: float, metric: Metric) -> tuple[float, float]:
    half = float(stats.t.ppf(1 - tail, est.df)) * est.se
    return metric.clip_diff(est.diff - half, est.diff + half)


def _notes(d: PairedDifference, t: _Tested, p_holm: float, verdict: str, alpha_used: float,
           needed: int | None, reason: str, look: Look | None) -> list[str]:
    notes = []
    if t.identical:
        notes.append(IDENTICAL)
    if t.sign_test:
        notes.append(SAME_AT_EVERY_SEED)
    if verdict == EQUIVALENT and p_holm <= alpha_used:
        notes.append(SMALLER_THAN_MARGIN)
    if 0 < d.n_seeds < MIN_TRUSTED_SEEDS:
        notes.append(f"fewer than {MIN_TRUSTED_SEEDS} seeds: no interval is trustworthy")
    if verdict == UNDECIDED:
        if needed is not None:
            more = needed - d.n_seeds
            notes.append(f"about {more} more {'seed' if more == 1 else 'seeds'} would decide it")
            if look is not None and needed > look.max_seeds:
                notes.append(f"that is beyond the planned maximum of {look.max_seeds} seeds")
        elif reason:
            notes.append(reason)
        if look is not None and look.is_last:
            notes.append(f"the planned maximum of {look.max_seeds} seeds is reached")
    return notes
