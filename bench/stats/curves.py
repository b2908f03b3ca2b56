"""Training-curve checks: were the runs still improving when training stopped?

Judged from each run's validation curve, not from its best epoch being the last: under a
decaying schedule the last epoch is usually the best even once the curve is flat.
"""

from __future__ import annotations

import math

import numpy as np

LAST_EPOCHS = 3  # the tail of the curve whose trend is judged
NOISE_SES = 2.0  # a gain counts when it exceeds this many standard errors of one validation accuracy


def improving(val_acc, n_val: int, last: int = LAST_EPOCHS) -> bool:
    """True when the least-squares line through the last ``last`` validation accuracies gains
    more over them than ``NOISE_SES`` binomial standard errors of one accuracy on ``n_val`` images.

    NaN epochs are left out; a curve of fewer than two epochs is not judged (False).
    """
    y = np.asarray(val_acc, dtype=float)
    y = y[~np.isnan(y)][-last:]
    if len(y) < 2:
        return False
    slope = np.polyfit(np.arange(len(y), dtype=float), y, 1)[0]
    p = min(max(float(y.mean()), 0.0), 1.0)
    noise = math.sqrt(p * (1 - p) / n_val) if n_val > 0 else 0.0
    return bool(slope * (len(y) - 1) > NOISE_SES * noise)


def still_improving(curves, n_val: int, last: int = LAST_EPOCHS) -> bool:
    """True when most runs (more than half of those judged) were still ``improving``.

    ``curves``: per run, its validation accuracies in epoch order; ``n_val``: validation images.
    Then more epochs would likely still help, and the comparison is of unfinished training.
    """
    judged = [c for c in (np.asarray(c, dtype=float) for c in curves) if (~np.isnan(c)).sum() >= 2]
    if not judged:
        return False
    return 2 * sum(improving(c, n_val, last) for c in judged) > len(judged)
