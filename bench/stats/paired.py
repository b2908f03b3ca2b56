"""Turn per-architecture results into paired differences, matched by seed.

An architecture's results are either per-seed accuracies (a ``pandas.Series`` or a mapping
seed -> accuracy) or a correctness matrix (a ``pandas.DataFrame``: index seeds, one column per
test image, True/1 where that seed's run classified the image correctly).  The same seed
means the same data order, so the difference is taken seed by seed; seeds missing or NaN on
either side are dropped.  With matrices on both sides the difference keeps its image axis:
D[seed, image] = correct_arch - correct_ref.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.stats.methods import ZERO_SPREAD

Scores = pd.Series | pd.DataFrame | Mapping[int, float]


@dataclass(frozen=True)
class SeedTable:
    """One architecture's results: per-seed values and, when known, the seed x image matrix."""

    seeds: np.ndarray
    per_seed: np.ndarray
    matrix: np.ndarray | None
    images: pd.Index | None = None

    @property
    def n_images(self) -> int | None:
        return None if self.matrix is None else int(self.matrix.shape[1])


@dataclass(frozen=True)
class PairedDifference:
    """Differences over shared seeds: per seed, and per seed x image when both had matrices."""

    seeds: tuple[int, ...]
    per_seed: np.ndarray
    matrix: np.ndarray | None
    wins: int
    ties: int
    losses: int
    # True when the matrix holds -1/0/+1 pairs of correct/incorrect (McNemar applies).
    discordance: bool = False

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def n_images(self) -> int | None:
        return None if self.matrix is None else int(self.matrix.shape[1])


def seed_table(scores: Scores) -> SeedTable:
    """Validate ``scores`` and drop NaN seeds (a failed run has no result)."""
    if isinstance(scores, pd.DataFrame):
        _unique_seeds(scores.index)
        values = scores.to_numpy(dtype=float)
        keep = ~np.isnan(values).any(axis=1)
        matrix = values[keep]
        if matrix.shape[1] < 2:
            raise BenchError("a correctness matrix needs at least two test images (columns)")
        return SeedTable(np.asarray(scores.index[keep]), matrix.mean(axis=1), matrix, scores.columns)
    if isinstance(scores, Mapping):
        scores = pd.Series(dict(scores), dtype=float)
    if not isinstance(scores, pd.Series):
        raise TypeError("scores must be a pandas Series/DataFrame or a mapping seed -> value, "
                        f"not {type(scores).__name__}: seeds are needed to pair results")
    _unique_seeds(scores.index)
    values = scores.to_numpy(dtype=float)
    keep = ~np.isnan(values)
    return SeedTable(np.asarray(scores.index[keep]), values[keep], None)


def pair(arch: Scores, reference: Scores) -> PairedDifference:
    """``arch`` minus ``reference`` over the seeds both have."""
    a, r = seed_table(arch), seed_table(reference)
    shared = np.intersect1d(a.seeds, r.seeds)
    ia, ir = _positions(a.seeds, shared), _positions(r.seeds, shared)
    if a.matrix is not None and r.matrix is not None:
        if not a.images.equals(r.images):
            raise BenchError(f"correctness matrices cover different test sets or image orders "
                             f"({a.matrix.shape[1]} and {r.matrix.shape[1]} images)")
        for m in (a.matrix, r.matrix):
            # 1/0 per image, or the share of an image's variants got right (an evaluation's shifts)
            if not ((m >= 0.0) & (m <= 1.0)).all():
                raise BenchError("a correctness matrix must hold True/False (1/0) or shares in [0, 1]")
        d = a.matrix[ia] - r.matrix[ir]
        # Counts of correct images are integers (shares: multiples of 1/k): compare them rounded,
        # not float accuracies.
        sign = np.sign(np.round(a.matrix[ia].sum(axis=1) - r.matrix[ir].sum(axis=1), 9))
        return PairedDifference(tuple(shared.tolist()), d.mean(axis=1), d, *_tally(sign),
                                discordance=True)
    d = a.per_seed[ia] - r.per_seed[ir]
    return PairedDifference(tuple(shared.tolist()), d, None, *_tally(_sign(d)))


def contrast(scores: Scores) -> PairedDifference:
    """A difference already formed per seed (a factor's marginal-mean contrast)."""
    t = seed_table(scores)
    order = np.argsort(t.seeds, kind="stable")
    matrix = None if t.matrix is None else t.matrix[order]
    per_seed = t.per_seed[order]
    return PairedDifference(tuple(t.seeds[order].tolist()), per_seed, matrix,
                            *_tally(_sign(per_seed)))


def _sign(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) <= ZERO_SPREAD, 0, np.sign(d))


def _tally(sign: np.ndarray) -> tuple[int, int, int]:
    return int((sign > 0).sum()), int((sign == 0).sum()), int((sign < 0).sum())


def _positions(seeds: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    order = np.argsort(seeds, kind="stable")
    return order[np.searchsorted(seeds[order], wanted)]


def _unique_seeds(index: pd.Index) -> None:
    if not index.is_unique:
        raise BenchError(f"seeds repeat in the results: {sorted(index[index.duplicated()].tolist())}")
