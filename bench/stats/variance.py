"""The standard error of a paired difference, from seeds and, when known, test images.

Two things vary between what we measured and what we want to know: the seed (data order,
initialisation) and the test images (a sample of all the images the task could show).
With per-image results, D[i, j] = correct_arch - correct_ref for seed i and image j, and

    SE^2 = s^2(row means) / n_seeds + s^2(column means) / n_images,

which overstates the variance of the grand mean of a crossed seed x image design by
s^2_interaction / (n_seeds * n_images): a safe side.  Degrees of freedom come from
Welch-Satterthwaite with n_seeds - 1 and n_images - 1 for the two terms.  With one seed only
the image term exists; with per-seed values only, only the seed term (conditional on the
test set: the claim is about this test set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.stats.methods import IMAGES_ONLY, SEEDS, SEEDS_AND_IMAGES, ZERO_SPREAD
from bench.stats.paired import PairedDifference


@dataclass(frozen=True)
class Estimate:
    """A paired difference with its standard error and where that error comes from.

    ``seed_var``: s^2 of the per-seed differences (NaN below two seeds); ``image_var``: s^2
    of the per-image differences averaged over seeds (NaN without images);
    ``interaction_var``: seed x image residual mean square (NaN unless both axes have two
    or more levels).  ``se`` is 0 when nothing varies, NaN when nothing can be said.
    """

    diff: float
    se: float
    df: float
    variance: str
    n_seeds: int
    n_images: int | None
    seed_var: float
    image_var: float
    interaction_var: float

    @property
    def zero_spread(self) -> bool:
        return self.se == 0.0


def estimate(d: PairedDifference) -> Estimate:
    n = d.n_seeds
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, SEEDS, 0, d.n_images, math.nan, math.nan, math.nan)
    if d.matrix is None:
        return _seeds_only(d.per_seed)
    return _seeds_and_images(d.matrix)


def _seeds_only(per_seed: np.ndarray) -> Estimate:
    n = per_seed.size
    diff = float(per_seed.mean())
    if n < 2:
        return Estimate(diff, math.nan, math.nan, SEEDS, 1, None, math.nan, math.nan, math.nan)
    if np.ptp(per_seed) <= ZERO_SPREAD:
        return Estimate(diff, 0.0, math.nan, SEEDS, n, None, 0.0, math.nan, math.nan)
    var = float(per_seed.var(ddof=1))
    return Estimate(diff, math.sqrt(var / n), float(n - 1), SEEDS, n, None, var, math.nan, math.nan)


def _seeds_and_images(D: np.ndarray) -> Estimate:
    n, m = D.shape
    diff = float(D.mean())
    label = IMAGES_ONLY if n == 1 else SEEDS_AND_IMAGES
    if np.ptp(D) <= ZERO_SPREAD:
        return Estimate(diff, 0.0, math.nan, label, n, m, 0.0 if n > 1 else math.nan, 0.0,
                        0.0 if n > 1 else math.nan)
    rows, cols = D.mean(axis=1), D.mean(axis=0)
    image_var = float(cols.var(ddof=1))
    if n == 1:
        return Estimate(diff, math.sqrt(image_var / m), float(m - 1), label, 1, m, math.nan,
                        image_var, math.nan)
    seed_var = float(rows.var(ddof=1))
    residual = D - rows[:, None] - cols[None, :] + diff
    interaction = float((residual ** 2).sum() / ((n - 1) * (m - 1)))
    se, df = combine(seed_var / n, n - 1, image_var / m, m - 1)
    return Estimate(diff, se, df, label, n, m, seed_var, image_var, interaction)


def combine(seed_term: float, seed_df: float, image_term: float, image_df: float) -> tuple[float, float]:
    """SE and Welch-Satterthwaite df of the sum of two independent variance terms."""
    total = seed_term + image_term
    if total <= 0.0:
        return 0.0, math.nan
    df = total ** 2 / (seed_term ** 2 / seed_df + image_term ** 2 / image_df)
    return math.sqrt(total), float(df)


def projected(est: Estimate, n_seeds: int) -> tuple[float, float]:
    """SE and df the same comparison would have with ``n_seeds`` seeds (NaN: unknown).

    The seed term shrinks as 1/n_seeds; of the image term, the interaction share
    (interaction_var / n_seeds) shrinks too and the rest, the images' own difference, stays:
    more seeds cannot remove it.  ``n_seeds`` = inf gives that floor.
    """
    if math.isnan(est.seed_var) or n_seeds < 2:
        return math.nan, math.nan
    if est.n_images is None:
        if math.isinf(n_seeds):
            return 0.0, math.inf
        return math.sqrt(est.seed_var / n_seeds), float(n_seeds - 1)
    m = est.n_images
    stable = max(est.image_var - est.interaction_var / est.n_seeds, 0.0)
    if math.isinf(n_seeds):
        return math.sqrt(stable / m), float(m - 1)
    return combine(est.seed_var / n_seeds, n_seeds - 1, (stable + est.interaction_var / n_seeds) / m, m - 1)
