"""Training-curve checks: were the runs still improving when training stopped?"""

from __future__ import annotations

import numpy as np


def still_improving(best_epochs, epochs_run) -> bool:
    """True when most runs (more than half) had their best validation epoch at the last epoch.

    ``best_epochs``: per run, the epoch with the best validation accuracy; ``epochs_run``:
    per run (or one number for all), how many epochs it trained.  NaN runs are left out.
    Then more epochs would likely still help, and the comparison is of unfinished training.
    """
    best = np.asarray(best_epochs, dtype=float)
    last = np.broadcast_to(np.asarray(epochs_run, dtype=float), best.shape)
    keep = ~(np.isnan(best) | np.isnan(last))
    if not keep.any():
        return False
    return bool(2 * (best[keep] >= last[keep]).sum() > keep.sum())
