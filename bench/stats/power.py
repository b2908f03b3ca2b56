"""Power in numbers: the smallest difference the seeds can detect, and the seeds that would decide.

Power of the two-sided t-test at level a for a true difference delta, with standard error
SE and df degrees of freedom, is P(|T| > t_{1-a/2, df}) for T noncentral t with
noncentrality delta / SE (``scipy.stats.nct``).  Power of TOST at a true difference theta
inside ±margin is taken as P(lower test rejects) + P(upper test rejects) - 1, the
Bonferroni lower bound of their joint rejection (exact when the two cannot both fail).

The minimum detectable effect (MDE) solves power = 80% for delta at the current SE and df.
Seeds needed: the smallest total number of seeds whose projected SE (``variance.projected``)
gives 80% power to detect the observed difference or, when it lies inside the margin, to
show equivalence: the smaller of the two.  When infinitely many seeds still fall short
(the image term alone keeps the SE too wide), more seeds cannot decide it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize, stats

from bench.stats.methods import MAX_PROJECTED_SEEDS, POWER
from bench.stats.variance import Estimate, projected

TEST_SET_LIMIT = "more seeds cannot decide it: the test set is the limit"
TOO_MANY = f"more than {MAX_PROJECTED_SEEDS} seeds would be needed to decide it"
ONE_SEED = ("one seed cannot show the seed-to-seed spread: "
            "run at least 2 more seeds to estimate how many would decide it")
NO_SPREAD = "no spread to project from"


def power_difference(effect: float, se: float, df: float, alpha: float) -> float:
    """Power of the two-sided level-``alpha`` t-test when the true difference is ``effect``."""
    if se == 0.0:
        return 1.0 if effect != 0 else alpha
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / se
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def power_equivalence(diff: float, se: float, df: float, margin: float, alpha: float) -> float:
    """Power of TOST (each side at ``alpha``) when the true difference is ``diff``, |diff| < margin."""
    if abs(diff) >= margin:
        return 0.0
    if se == 0.0:
        return 1.0
    crit = stats.t.ppf(1 - alpha, df)
    lower = stats.nct.sf(crit, df, (diff + margin) / se)
    upper = stats.nct.sf(crit, df, (margin - diff) / se)
    return float(max(0.0, lower + upper - 1.0))


def minimum_detectable_effect(se: float, df: float, alpha: float, power: float = POWER) -> float:
    """Smallest |difference| the two-sided t-test detects with ``power`` (NaN without an SE)."""
    if not (math.isfinite(se) and se > 0 and df > 0):
        return math.nan
    def gap(effect: float) -> float:
        return power_difference(effect, se, df, alpha) - power
    high = (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se
    while gap(high) < 0:
        high *= 2
    return float(optimize.brentq(gap, 0.0, high, xtol=se * 1e-9))


@dataclass(frozen=True)
class SeedsNeeded:
    """Total seeds that would decide a comparison with ``POWER``, or None with the reason."""

    total: int | None
    reason: str


def seeds_needed(est: Estimate, margin: float, alpha: float, power: float = POWER) -> SeedsNeeded:
    """Fewest total seeds at which the difference test or TOST reaches ``power`` at ``alpha``."""
    if est.n_seeds == 1 and est.n_images is not None:
        return SeedsNeeded(None, ONE_SEED)
    if not (est.se > 0) or math.isnan(est.seed_var):
        return SeedsNeeded(None, NO_SPREAD)
    def decides(n: float) -> bool:
        se, df = projected(est, n)
        return (power_difference(est.diff, se, df, alpha) >= power
                or power_equivalence(est.diff, se, df, margin, alpha) >= power)
    if not decides(math.inf):
        return SeedsNeeded(None, TEST_SET_LIMIT)
    low, high = est.n_seeds, est.n_seeds + 1  # decides(low) is treated as False: it is undecided now
    while not decides(high):
        if high >= MAX_PROJECTED_SEEDS:
            return SeedsNeeded(None, TOO_MANY)
        low, high = high, min(2 * high, MAX_PROJECTED_SEEDS)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if decides(mid) else (mid, high)
    return SeedsNeeded(high, "")
