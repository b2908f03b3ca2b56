"""The tests behind a verdict, vectorised so a simulation can run the very same rule.

* difference: two-sided t-test of diff = 0, p = 2 * t.sf(|diff| / SE, df);
* equivalence: two one-sided tests (TOST) of diff <= -margin and diff >= +margin,
  p = max of the two; p <= alpha exactly when the (1 - 2 alpha) t interval lies inside
  ±margin;
* verdict at level alpha from Holm-adjusted p-values: equivalence rejected -> equivalent
  (even when the difference test also rejects: the difference is real but inside the
  margin); otherwise difference rejected -> better or worse by the sign; else undecided.

Entries with SE = 0 or NaN give NaN p-values: the caller decides what zero spread means.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from bench.stats.methods import BETTER, EQUIVALENT, UNDECIDED, WORSE


def _ratio(x, se) -> np.ndarray:
    x, se = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(se, dtype=float))
    usable = np.isfinite(se) & (se > 0)
    return np.divide(x, se, out=np.full(x.shape, np.nan), where=usable)


def difference_p(diff, se, df) -> np.ndarray:
    """Two-sided p-value of diff = 0."""
    return 2.0 * stats.t.sf(np.abs(_ratio(diff, se)), df)


def equivalence_p(diff, se, df, margin: float) -> np.ndarray:
    """TOST p-value of |diff| >= margin (small: equivalent within ±margin)."""
    diff = np.asarray(diff, dtype=float)
    above_lower = stats.t.sf(_ratio(diff + margin, se), df)
    below_upper = stats.t.sf(_ratio(margin - diff, se), df)
    return np.maximum(above_lower, below_upper)


def verdicts(diff, p_holm, p_equivalence_holm, alpha) -> np.ndarray:
    """better / worse / equivalent / undecided for each entry (NaN p-values never reject)."""
    diff = np.asarray(diff, dtype=float)
    with np.errstate(invalid="ignore"):
        different = np.asarray(p_holm) <= alpha
        equivalent = np.asarray(p_equivalence_holm) <= alpha
    return np.select([equivalent, different & (diff > 0), different & (diff < 0)],
                     [EQUIVALENT, BETTER, WORSE], default=UNDECIDED)
