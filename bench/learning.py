"""Is a run learning at all?  A run stuck at chance accuracy is an answer worth saying aloud.

Chance is what a constant guess scores: the share of the largest test class.  A run whose
best validation accuracy and test accuracy both stay within ``LEARNING_SHARE`` of the way
from chance to perfect is not learning (``--lr 1000`` trains to status ok at chance).
"""

from __future__ import annotations

import math

import numpy as np

LEARNING_SHARE = 0.1


def chance_accuracy(confusion) -> float:
    """The accuracy of always guessing the largest class of the confusion matrix's rows."""
    matrix = np.asarray(confusion, dtype=float)
    total = matrix.sum()
    return float(matrix.sum(1).max() / total) if total > 0 else math.nan


def learned(accuracies, chance: float) -> bool:
    """True when the best of ``accuracies`` (NaN ignored) clears chance by ``LEARNING_SHARE``."""
    finite = [a for a in accuracies if a is not None and math.isfinite(a)]
    return bool(finite) and max(finite) > chance + LEARNING_SHARE * (1 - chance)


def record_learning(record) -> bool | None:
    """For a finished (ok) run, whether it learned; None for a diverged or failed one."""
    if record.status != "ok" or not record.confusion:
        return None
    accuracies = [e.get("val_acc") for e in record.epochs] + [record.summary.get("test_acc")]
    return learned(accuracies, chance_accuracy(record.confusion))


def not_learning_lines(records) -> list[str]:
    """One console line per finished run that stayed at chance."""
    return [f"not learning: {r.config.arch} seed {r.config.seed} on {r.config.dataset} stayed at chance accuracy "
            f"(test {r.summary.get('test_acc', math.nan):.1%}, chance {chance_accuracy(r.confusion):.1%}); "
            f"check --lr ({r.config.lr:g})"
            for r in records if record_learning(r) is False]
