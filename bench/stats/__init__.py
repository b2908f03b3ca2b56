"""The statistics engine: per-seed (and per-test-image) results in, verdicts out.

Modules, one job each:

* ``paired``: results -> differences paired by seed (and test image);
* ``variance``: the standard error from seeds and test images;
* ``intervals``: t interval, Holm, per-architecture accuracy interval inside [0, 1].
"""

from bench.stats.intervals import AccuracyInterval, accuracy_interval, holm, t_interval
from bench.stats.methods import (ALPHA, CONFIDENCE, DEFAULT_MARGIN, IMAGES_ONLY, METHODS, SEEDS,
                                 SEEDS_AND_IMAGES)

__all__ = [
    "ALPHA", "CONFIDENCE", "DEFAULT_MARGIN", "IMAGES_ONLY", "METHODS", "SEEDS", "SEEDS_AND_IMAGES",
    "AccuracyInterval", "accuracy_interval", "holm", "t_interval",
]
