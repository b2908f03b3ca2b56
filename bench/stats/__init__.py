"""The statistics engine: per-seed (and per-test-image) results in, verdicts out.

Every comparison ends in better, worse, equivalent (within ±margin) or undecided, with how
many more seeds would decide it.  Modules, one job each:

* ``paired``: results -> differences paired by seed (and test image);
* ``variance``: the standard error from seeds and test images;
* ``decision``: difference test, equivalence test (TOST), verdict rule;
* ``compare``: comparisons of a table against a reference, Holm across the table;
* ``power``: minimum detectable effect and seeds needed;
* ``sequential``: alpha spending across looks after rounds of seeds;
* ``intervals``: t interval, Holm, per-architecture accuracy interval inside [0, 1];
* ``sentences``: plain-words sentences for the report;
* ``ranking``, ``curves``, ``target``: ranks, still-improving, time to target.

``METHODS`` names the function behind each number, for the report's methods section.
"""

from bench.stats.compare import Comparison, compare, compare_effects, compare_table
from bench.stats.curves import still_improving
from bench.stats.intervals import AccuracyInterval, accuracy_interval, holm, t_interval
from bench.stats.methods import (ALPHA, BETTER, CONFIDENCE, DEFAULT_MARGIN, EQUIVALENT,
                                 IMAGES_ONLY, METHODS, SEEDS, SEEDS_AND_IMAGES, UNDECIDED,
                                 VERDICTS, WORSE)
from bench.stats.power import minimum_detectable_effect, power_difference, power_equivalence
from bench.stats.ranking import Rank, Ranking, rank, top
from bench.stats.sentences import describe
from bench.stats.sequential import Look, all_decided, obrien_fleming_spent, should_stop
from bench.stats.target import default_target, per_epoch_reversals, target_summary, time_to_target

__all__ = [
    "ALPHA", "BETTER", "CONFIDENCE", "DEFAULT_MARGIN", "EQUIVALENT", "IMAGES_ONLY", "METHODS",
    "SEEDS", "SEEDS_AND_IMAGES", "UNDECIDED", "VERDICTS", "WORSE",
    "AccuracyInterval", "Comparison", "Look", "Rank", "Ranking",
    "accuracy_interval", "all_decided", "compare", "compare_effects", "compare_table",
    "default_target", "describe", "holm", "minimum_detectable_effect", "obrien_fleming_spent",
    "per_epoch_reversals", "power_difference", "power_equivalence", "rank", "should_stop",
    "still_improving", "t_interval", "target_summary", "time_to_target", "top",
]
