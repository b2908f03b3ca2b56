"""Constants of the statistics engine and the plain-words methods text the report shows.

Accuracies and differences are fractions (0.0123 is 1.23 percentage points); only the
sentences in :mod:`bench.stats.sentences` speak percentage points.
"""

from __future__ import annotations

ALPHA = 0.05
CONFIDENCE = 1 - ALPHA
# The smallest margin a 10,000-image test set can establish: one accuracy near 99% has a
# standard error of sqrt(0.99 * 0.01 / 10,000) = 0.1 pp there, so ±0.25 pp is 2.5 of them.
DEFAULT_MARGIN = 0.0025
POWER = 0.8
# Below three seeds a t quantile (df <= 1) and a one-value spread make every interval a guess.
MIN_TRUSTED_SEEDS = 3
# Beyond this, "about N more seeds" is not a plan anyone will run; say so instead.
MAX_PROJECTED_SEEDS = 1000
# Per-seed differences closer than this are equal: float noise of accuracies, not spread.
ZERO_SPREAD = 1e-12

BETTER = "better"
WORSE = "worse"
EQUIVALENT = "equivalent"
UNDECIDED = "undecided"
VERDICTS = (BETTER, WORSE, EQUIVALENT, UNDECIDED)

SEEDS = "seeds"
SEEDS_AND_IMAGES = "seeds and test images"
IMAGES_ONLY = "test images only (one seed)"

METHODS: dict[str, str] = {
    "estimate": (
        "The difference is the mean over shared seeds of (architecture - reference); with "
        "per-image results it is the grand mean of the seed x image matrix of "
        "correct_arch - correct_ref (numpy)."),
    "standard_error": (
        "Seeds only: sample std of the per-seed differences / sqrt(seeds). Seeds and test "
        "images: SE^2 = var(seed means)/seeds + var(image means)/images, which is "
        "conservative for the crossed seed x image design, with Welch-Satterthwaite degrees "
        "of freedom (bench.stats.variance.estimate)."),
    "difference_test": (
        "Two-sided t-test of difference = 0: scipy.stats.t.sf(|diff|/SE, df); with one seed "
        "and per-image results, the exact McNemar test "
        "(statsmodels.stats.contingency_tables.mcnemar, exact=True)."),
    "equivalence_test": (
        "Two one-sided t-tests (TOST) against -margin and +margin: the larger of "
        "scipy.stats.t.sf((diff+margin)/SE, df) and scipy.stats.t.cdf((diff-margin)/SE, df), "
        "the same as statsmodels.stats.weightstats.ttost_paired on per-seed data; rejecting "
        "it at alpha is the (1-2 alpha) interval lying inside ±margin. With identical "
        "predictions on every image, the exact p = (1-margin)^images."),
    "zero_spread": (
        "When every seed shows the same difference a t-test is undefined; exact sign tests "
        "over the n seeds replace it: difference p = 2 * 0.5^n, equivalence p = 0.5^n "
        "(bench.stats.compare); seeds needed then assumes further seeds repeat the "
        "difference."),
    "multiplicity": (
        "Holm step-down over the comparisons of one table, separately for the difference "
        "p-values and the equivalence p-values (bench.stats.intervals.holm, equal to "
        "statsmodels.stats.multitest.multipletests(method='holm'))."),
    "verdict": (
        "better/worse: difference rejected after Holm; equivalent: equivalence rejected after "
        "Holm (when both reject, equivalent, noting a real difference smaller than the "
        "margin); otherwise undecided."),
    "minimum_detectable_effect": (
        "Smallest |difference| the two-sided t-test finds with 80% power at the current SE "
        "and df, at level alpha/comparisons (Holm's strictest step): root of "
        "scipy.stats.nct power by scipy.optimize.brentq."),
    "seeds_needed": (
        "Total seeds at which the difference test (for the observed difference) or TOST "
        "(when |difference| < margin) reaches 80% power at alpha/comparisons, whichever is "
        "fewer: scipy.stats.nct with the SE projected to more seeds (the seed term shrinks; "
        "the image term keeps its stable part, var(image means) - interaction/seeds). When "
        "even infinitely many seeds fall short, the test set is the limit."),
    "sequential": (
        "Looks after rounds of seeds spend alpha with the Lan-DeMets O'Brien-Fleming-type "
        "function 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), t = planned seeds at the look / "
        "max_seeds (scipy.stats.norm); look k tests at the increment spent since look k-1, "
        "Holm within the look. By the union bound the chance of any false better/worse (true "
        "difference 0), or of any false equivalence (true |difference| >= margin), over all "
        "looks and comparisons stays <= alpha, whatever the correlation between looks "
        "(bench.stats.sequential)."),
    "accuracy_interval": (
        "Per-architecture accuracy: a t interval on the logit scale (delta method, SE from "
        "the seed and, when given, the test-image variance), mapped back, so it never leaves "
        "[0, 1]; with every image correct (or wrong), the exact Clopper-Pearson bound "
        "(alpha/2)^(1/images). Fewer than 3 seeds: no interval is trustworthy."),
    "win_counts": "Per shared seed, whether the architecture beat, tied or lost to the reference.",
    "time_to_target": (
        "Per run, the first epoch with validation accuracy >= target and the training seconds "
        "summed up to and including it (inf when never reached); default target: the lowest "
        "of the architectures' mean final validation accuracies (pandas)."),
}
