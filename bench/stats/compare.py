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

Intervals are per comparison, not adjusted for multiplicity: ``ci_*`` at 1 - alpha_used
(the difference test's), ``eq_*`` at 1 - 2 alpha_used (the equivalence test's), clipped to
[-1, 1].  Zero spread, where a t-test is undefined, is handled by exact tests: identical
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
from bench.stats.methods import (ALPHA, DEFAULT_MARGIN, EQUIVALENT, MIN_TRUSTED_SEEDS,
                                 UNDECIDED)
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

    ``diff`` > 0: the architecture is more accurate.  ``seeds_needed`` is the total number
    of seeds that would decide an undecided comparison with 80% power (None when decided,
    or when seeds cannot decide it: ``undecided_reason`` says why).  ``alpha_used`` is the
    level the verdict was taken at; ``family_size`` the number of comparisons Holm saw.
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


@dataclass(frozen=True)
class _Tested:
    """One comparison's estimate and raw p-values and intervals, before Holm."""

    est: Estimate
    p: float
    p_equivalence: float
    ci: tuple[float, float]
    eq: tuple[float, float]
    reason: str
    # Zero spread: the exact sign test over seeds replaced the t-tests.
    sign_test: bool = False


def compare(arch: Scores, reference: Scores, *, arch_name: str = "arch",
            reference_name: str = "reference", margin: float = DEFAULT_MARGIN,
            alpha: float = ALPHA, look: Look | None = None) -> Comparison:
    """One architecture against a reference, paired by seed (a table of one)."""
    return _decide([arch_name], reference_name, [pair(arch, reference)], margin, alpha, look)[0]


def compare_table(results: Mapping[str, Scores], reference: str, *,
                  margin: float = DEFAULT_MARGIN, alpha: float = ALPHA,
                  look: Look | None = None, order: Sequence[str] | None = None) -> list[Comparison]:
    """Every architecture of ``results`` but ``reference`` against it, Holm across the table."""
    if reference not in results:
        raise BenchError(f"reference architecture {reference!r} has no results")
    names = [a for a in (order or list(results)) if a != reference and a in results]
    diffs = [pair(results[a], results[reference]) for a in names]
    return _decide(names, reference, diffs, margin, alpha, look)


def compare_effects(contrasts: Mapping[str, Scores], reference: str, *,
                    margin: float = DEFAULT_MARGIN, alpha: float = ALPHA,
                    look: Look | None = None) -> list[Comparison]:
    """A factor's main effects: per level, per-seed (or seed x image) contrasts level - reference.

    Each contrast is already a difference (marginal mean at the level minus at the
    reference level, same seed); Holm runs across the factor's levels.
    """
    names = list(contrasts)
    return _decide(names, reference, [contrast(contrasts[n]) for n in names], margin, alpha, look)


def _decide(names: list[str], reference: str, diffs: list[PairedDifference], margin: float,
            alpha: float, look: Look | None) -> list[Comparison]:
    if not 0 <= margin < 1:
        raise BenchError(f"the equivalence margin must be a fraction in [0, 1), not {margin}")
    if not 0 < alpha < 0.5:
        raise BenchError(f"alpha must lie in (0, 0.5), not {alpha}")
    alpha_used = look.alpha(alpha) if look is not None else alpha
    tested = [_test(d, margin, alpha_used) for d in diffs]
    p = np.array([t.p for t in tested], dtype=float)
    p_eq = np.array([t.p_equivalence for t in tested], dtype=float)
    p_holm, p_eq_holm = holm(p), holm(p_eq)
    diff = np.array([t.est.diff for t in tested], dtype=float)
    verdicts = decision.verdicts(diff, p_holm, p_eq_holm, alpha_used)
    family = max(int((~np.isnan(p)).sum()), 1)
    # Power is planned at the fixed-design level of Holm's strictest step.
    level = alpha / family
    out = []
    for name, d, t, ph, peh, verdict in zip(names, diffs, tested, p_holm, p_eq_holm, verdicts):
        est = t.est
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
        notes = _notes(d, t, float(ph), str(verdict), alpha_used, family, needed, reason, look)
        out.append(Comparison(
            arch=name, reference=reference, n_seeds=d.n_seeds, n_images=d.n_images,
            diff=est.diff, se=est.se, df=est.df, ci_low=t.ci[0], ci_high=t.ci[1],
            eq_low=t.eq[0], eq_high=t.eq[1], p=t.p, p_holm=float(ph),
            p_equivalence=t.p_equivalence, p_equivalence_holm=float(peh), verdict=str(verdict),
            variance=est.variance, mde=mde, seeds_needed=needed, undecided_reason=reason,
            wins=d.wins, ties=d.ties, losses=d.losses, note="; ".join(notes), margin=margin,
            alpha_used=alpha_used, family_size=family,
            look=None if look is None else look.index))
    return out


def _test(d: PairedDifference, margin: float, alpha: float) -> _Tested:
    est = estimate(d)
    nan2 = (math.nan, math.nan)
    if d.n_seeds == 0:
        return _Tested(est, math.nan, math.nan, nan2, nan2, NO_SHARED_SEEDS)
    if math.isnan(est.se):
        return _Tested(est, math.nan, math.nan, nan2, nan2, ONE_SEED_NO_IMAGES)
    if est.zero_spread:
        if d.matrix is not None and est.diff == 0.0:
            return _identical(est, margin, alpha)
        return _same_at_every_seed(est, margin, alpha)
    p = float(decision.difference_p(est.diff, est.se, est.df))
    if d.n_seeds == 1 and d.discordance:
        p = _mcnemar(d.matrix[0])
    p_eq = float(decision.equivalence_p(est.diff, est.se, est.df, margin))
    return _Tested(est, p, p_eq, _interval(est, alpha / 2), _interval(est, alpha), "")


def _identical(est: Estimate, margin: float, alpha: float) -> _Tested:
    """No image differs at any seed: exact bounds from zero discordant images among m."""
    m = est.n_images
    # If the true |difference| >= margin, at least a share margin of images differ; none
    # of m differing then has probability at most (1 - margin)^m.
    p_eq = (1.0 - margin) ** m
    two_sided = 1.0 - (alpha / 2) ** (1.0 / m)
    one_sided = 1.0 - alpha ** (1.0 / m)
    # Training that gives identical predictions will keep doing so: seeds cannot help.
    return _Tested(est, 1.0, p_eq, (-two_sided, two_sided), (-one_sided, one_sided),
                   power.TEST_SET_LIMIT)


def _same_at_every_seed(est: Estimate, margin: float, alpha: float) -> _Tested:
    """Every seed shows the same difference: exact sign tests over the n seeds.

    Difference: all n seeds on one side has probability 2 * 0.5^n when the median is 0.
    Equivalence: all n seeds above -margin has probability <= 0.5^n when the median is
    <= -margin (and likewise below +margin).  The distribution-free interval for the
    median is then [diff, diff] when the sign test reaches its level, else unbounded.
    """
    n, diff = est.n_seeds, est.diff
    p = 1.0 if diff == 0.0 else min(1.0, 2 * 0.5 ** n)
    p_eq = 0.5 ** n if abs(diff) < margin else 1.0
    ci = (diff, diff) if 2 * 0.5 ** n <= alpha else (-1.0, 1.0)
    eq = (diff, diff) if 0.5 ** n <= alpha else (-1.0, 1.0)
    return _Tested(est, p, p_eq, ci, eq, "", sign_test=True)


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


def _interval(est: Estimate, tail: float) -> tuple[float, float]:
    half = float(stats.t.ppf(1 - tail, est.df)) * est.se
    return max(est.diff - half, -1.0), min(est.diff + half, 1.0)


def _notes(d: PairedDifference, t: _Tested, p_holm: float, verdict: str, alpha_used: float,
           family: int, needed: int | None, reason: str, look: Look | None) -> list[str]:
    notes = []
    if t.est.zero_spread and t.est.diff == 0.0 and d.matrix is not None:
        notes.append(IDENTICAL)
    if t.sign_test:
        notes.append(SAME_AT_EVERY_SEED)
    if verdict == EQUIVALENT and p_holm <= alpha_used:
        notes.append(SMALLER_THAN_MARGIN)
    if verdict == UNDECIDED and family > 1 and (t.ci[0] > 0 or t.ci[1] < 0):
        notes.append(f"the interval excludes 0, but not after Holm's correction for {family} comparisons")
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
