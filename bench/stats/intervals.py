"""Intervals for one architecture's accuracy, and Holm's multiplicity adjustment.

``accuracy_interval`` answers "how accurate is this architecture?" with an interval that
cannot leave [0, 1]: a t interval for logit(accuracy) with the delta-method SE
SE(acc) / (acc (1 - acc)), mapped back through the logistic function.  SE(acc) combines
the seed-to-seed spread and, with a correctness matrix, the test-image spread (as in
:mod:`bench.stats.variance`).  With every image right (or wrong) the logit is infinite;
then the exact Clopper-Pearson bound for zero errors among the images is used.
Fewer than three seeds make no interval trustworthy: the result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit, logit

from bench.stats.methods import (CONFIDENCE, IMAGES_ONLY, MIN_TRUSTED_SEEDS, SEEDS,
                                 SEEDS_AND_IMAGES, ZERO_SPREAD)
from bench.stats.paired import Scores, seed_table
from bench.stats.variance import combine


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(mean, sample std, CI low, CI high) of ``values``, NaN dropped; std and CI NaN below 2 values.

    The plain Student-t interval of a mean (it can leave [0, 1]; see ``accuracy_interval``).
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
    return mean, std, mean - half, mean + half


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values along the last axis; NaN entries are left out and stay NaN.

    Sorted ascending, the k-th smallest of m (k = 0..m-1) becomes max over j <= k of
    min(1, (m - j) p_(j)); rejecting adjusted p <= alpha controls the family-wise error.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim == 0:
        return p.copy()
    order = np.argsort(p, axis=-1, kind="stable")  # NaN sort last
    ranked = np.take_along_axis(p, order, axis=-1)
    m = (~np.isnan(p)).sum(axis=-1, keepdims=True)
    factor = m - np.arange(p.shape[-1])
    stepped = np.fmax.accumulate(np.minimum(1.0, factor * ranked), axis=-1)
    stepped = np.where(np.isnan(ranked), np.nan, stepped)
    adjusted = np.empty_like(stepped)
    np.put_along_axis(adjusted, order, stepped, axis=-1)
    return adjusted


@dataclass(frozen=True)
class AccuracyInterval:
    """Mean accuracy with an interval inside [0, 1]; ``trustworthy`` False with a reason."""

    mean: float
    low: float
    high: float
    n_seeds: int
    n_images: int | None
    variance: str
    trustworthy: bool
    reason: str


def accuracy_interval(scores: Scores, confidence: float = CONFIDENCE) -> AccuracyInterval:
    """Interval for the accuracy of one architecture from per-seed accuracies or a correctness matrix."""
    t = seed_table(scores)
    n, m = t.seeds.size, t.n_images
    few = f"fewer than {MIN_TRUSTED_SEEDS} seeds: no interval is trustworthy"
    if n == 0:
        return AccuracyInterval(math.nan, math.nan, math.nan, 0, m, SEEDS, False, "no seeds")
    if t.matrix is None:
        mean = float(t.per_seed.mean())
        if n == 1:
            return AccuracyInterval(mean, math.nan, math.nan, 1, None, SEEDS, False,
                                    "one seed and no per-image results: no spread to build an interval from")
        seed_term = float(t.per_seed.var(ddof=1)) / n if np.ptp(t.per_seed) > ZERO_SPREAD else 0.0
        se, df, variance = math.sqrt(seed_term), float(n - 1), SEEDS
    else:
        mean = float(t.matrix.mean())
        variance = IMAGES_ONLY if n == 1 else SEEDS_AND_IMAGES
        if mean in (0.0, 1.0):
            # Zero errors (or zero hits) among m images: exact one-sided bound (alpha/2)^(1/m).
            bound = ((1 - confidence) / 2) ** (1 / m)
            low, high = (bound, 1.0) if mean == 1.0 else (0.0, 1 - bound)
            return AccuracyInterval(mean, low, high, n, m, variance, n >= MIN_TRUSTED_SEEDS,
                                    "" if n >= MIN_TRUSTED_SEEDS else few)
        image_term = float(t.matrix.mean(axis=0).var(ddof=1)) / m
        if n == 1:
            se, df = math.sqrt(image_term), float(m - 1)
        else:
            se, df = combine(float(t.per_seed.var(ddof=1)) / n, n - 1, image_term, m - 1)
    if se == 0.0 or mean in (0.0, 1.0):
        return AccuracyInterval(mean, mean, mean, n, m, variance, False,
                                "the same accuracy at every seed: no spread to build an interval from")
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se / (mean * (1 - mean))
    centre = float(logit(mean))
    low, high = float(expit(centre - half)), float(expit(centre + half))
    trusted = n >= MIN_TRUSTED_SEEDS
    return AccuracyInterval(mean, low, high, n, m, variance, trusted, "" if trusted else few)
