"""One dataset's finished runs as the engine's evidence, and the tables computed from it.

The runner (``--until-decided``) and the report both ask these questions; neither imports the other.

Seeds are the unit of replication: two architectures trained with the same seed saw the same
data order, so comparisons are paired by seed.  When the records hold which test images each
run got right, intervals also carry test-image noise (``bench.stats.variance``).  Every
comparison ends in one of four verdicts: better, worse, equivalent within the margin, or
undecided with the seeds that would decide it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import (
    ALPHA, CONFIDENCE, DEFAULT_MARGIN, Comparison, Look, accuracy_interval, compare_effects,
    compare_table, rank, t_interval, top,
)
from .metrics import ACCURACY, Metric, metric as metric_of
from .power import TEST_SET_LIMIT

# Preferred reference level of a factor (the "plain" choice) when present.
REFERENCE_LEVELS = ("std", "standard", "plain", "conv", "max", "maxpool", "none")


@dataclass
class Evidence:
    """What one dataset's statistics are computed from, and at which level."""

    runs: pd.DataFrame  # finished runs
    correct: dict[str, np.ndarray] = field(default_factory=dict)  # run_id -> per-image results
    margin: float = DEFAULT_MARGIN  # test accuracy's (--margin); other metrics keep their declared one
    alpha: float = ALPHA
    look: Look | None = None  # the last look of a --until-decided grid
    # An evaluation's per-image results (bench.evaluations), used like ``correct``: column -> run_id -> values
    per_image: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = self._length(self.correct)
        self.image_counts = {column: self._length(v) for column, v in self.per_image.items()}

    def _length(self, vectors: dict[str, np.ndarray]) -> int | None:
        lengths = {len(v) for k, v in vectors.items() if k in set(self.runs["run_id"])}
        # Per-image results compare only on one test set; otherwise per-seed accuracies serve.
        return lengths.pop() if len(lengths) == 1 else None

    def scores(self, arch: str, metric: str = "test_acc", images: np.ndarray | None = None
               ) -> pd.Series | pd.DataFrame:
        """``arch``'s results by seed: a seed x image matrix when every run has per-image
        results (restricted to ``images`` when given), else the per-seed ``metric``."""
        runs = self.runs[self.runs["arch"] == arch].sort_values("seed")
        vectors = self.correct if metric == "test_acc" else self.per_image.get(metric, {})
        length = self.images if metric == "test_acc" else self.image_counts.get(metric)
        if length is not None and all(r in vectors for r in runs["run_id"]):
            matrix = np.stack([vectors[r] for r in runs["run_id"]]).astype(float)
            columns = np.arange(length) if images is None else images
            return pd.DataFrame(matrix[:, columns], index=runs["seed"].to_numpy(), columns=columns)
        return pd.Series(runs[metric].to_numpy(dtype=float), index=runs["seed"].to_numpy())

    @property
    def archs(self) -> list[str]:
        return sorted(set(self.runs["arch"]))

    def metric(self, column: str) -> Metric:
        return metric_of(column)

    def margin_of(self, column: str) -> float:
        return self.margin if column == ACCURACY.column else self.metric(column).margin

    def compare(self, reference: str, order: list[str] | None = None, metric: str = "test_acc") -> list[Comparison]:
        """Every other architecture against ``reference``, Holm across them."""
        results = {a: self.scores(a, metric) for a in self.archs}
        return compare_table(results, reference, margin=self.margin_of(metric), alpha=self.alpha,
                             look=self.look, order=order, metric=self.metric(metric))


def comparison_frame(comparisons: list[Comparison]) -> pd.DataFrame:
    fields = [f.name for f in dataclasses.fields(Comparison)]
    return pd.DataFrame([dataclasses.asdict(c) for c in comparisons], columns=fields)


# -- the leaderboard ---------------------------------------------------------------------
def leaderboard(evidence: Evidence) -> tuple[pd.DataFrame, list[Comparison]]:
    """One row per architecture, best mean test accuracy first, with its rank.

    Ranks claim only what was decided: the architectures not decided worse than the top one
    share its rank ("tied 1st").  Also returns the comparisons against the top one.
    """
    runs = evidence.runs
    means = runs.groupby("arch")["test_acc"].mean().to_dict()
    best = top(means)
    versus_top = evidence.compare(best)
    ranking = rank(means, versus_top)
    rows = []
    for r in ranking.ranks:
        group = runs[runs["arch"] == r.arch]
        interval = accuracy_interval(evidence.scores(r.arch))
        rows.append({
            "rank": r.position, "rank_label": r.label, "arch": r.arch,
            "seeds": int(group["seed"].nunique()),
            "mean": interval.mean, "std": _std(group["test_acc"]),
            "ci_low": interval.low, "ci_high": interval.high, "interval_from": interval.variance,
            "trustworthy": interval.trustworthy,
            "best_val_acc": _mean(group, "best_val_acc"), "test_loss": _mean(group, "test_loss"),
            "params": _first(group, "params"), "flops_per_image": _first(group, "flops_per_image"),
            "mean_epoch_seconds": _mean(group, "mean_epoch_seconds"),
            "train_seconds": _mean(group, "train_seconds"),
            "train_images_per_s": _mean(group, "train_images_per_s"),
        })
    return pd.DataFrame(rows), versus_top


def _std(values: pd.Series) -> float:
    return float(values.std(ddof=1)) if values.notna().sum() > 1 else math.nan


def _mean(group: pd.DataFrame, col: str) -> float:
    return float(group[col].mean()) if col in group else math.nan


def _first(group: pd.DataFrame, col: str) -> float:
    if col not in group or group[col].isna().all():
        return math.nan
    return float(group[col].dropna().iloc[0])


# -- factor effects (the factorial ablation family) --------------------------------------
def factor_columns(runs: pd.DataFrame) -> list[str]:
    """``factor_*`` columns with at least two levels among the runs that have them."""
    return [c for c in sorted(runs.columns) if c.startswith("factor_")
            and runs[c].dropna().astype(str).nunique() >= 2]


def reference_level(levels: list[str]) -> str:
    for preferred in REFERENCE_LEVELS:
        if preferred in levels:
            return preferred
    return sorted(levels)[0]


def factorial_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that belong to the factorial design: a level for every factor column."""
    cols = factor_columns(runs)
    if not cols:
        return runs.iloc[0:0]
    sub = runs.dropna(subset=cols).copy()
    for c in cols:
        sub[c] = sub[c].astype(str)
    return sub


def factor_effects(evidence: Evidence, metric: str = "test_acc") -> dict[str, list[Comparison]]:
    """Per factor, the main effect of each level against the factor's reference level.

    Per seed, the marginal mean over the architectures at a level (averaging over the other
    factors' levels) minus the same at the reference level - per test image too, when the
    runs have per-image results; Holm across a factor's levels.
    """
    sub = factorial_runs(evidence.runs)
    effects: dict[str, list[Comparison]] = {}
    for col in factor_columns(sub):
        levels = sorted(sub[col].unique())
        ref = reference_level(levels)
        marginal = {level: _marginal(evidence, sub[sub[col] == level], metric) for level in levels}
        contrasts = {}
        for level in levels:
            if level == ref:
                continue
            diff = marginal[level] - marginal[ref]
            contrasts[level] = diff.dropna(how="all") if isinstance(diff, pd.DataFrame) else diff.dropna()
        effects[col.removeprefix("factor_")] = compare_effects(
            contrasts, ref, margin=evidence.margin_of(metric), alpha=evidence.alpha, look=evidence.look,
            metric=evidence.metric(metric))
    return effects


def _marginal(evidence: Evidence, runs: pd.DataFrame, metric: str) -> pd.Series | pd.DataFrame:
    """Mean over the architectures in ``runs``, per seed (and per image): only seeds all of them have."""
    parts = [evidence.scores(a, metric) for a in sorted(set(runs["arch"]))]
    seeds = sorted(set.intersection(*(set(p.index) for p in parts)))
    return sum(p.loc[seeds] for p in parts) / len(parts)


def interaction_table(runs: pd.DataFrame, x: str, hue: str, metric: str = "test_acc") -> pd.DataFrame:
    """Cell means with t-CIs over seeds for an interaction plot of factors ``x`` by ``hue``,
    kept inside the metric's real bounds."""
    sub = factorial_runs(runs)
    bounds = metric_of(metric)
    rows = []
    for (xl, hl), group in sub.groupby([f"factor_{x}", f"factor_{hue}"], sort=True):
        mean, _std, lo, hi = t_interval(group.groupby("seed")[metric].mean())
        if not math.isnan(lo):
            lo, hi = bounds.clip_value(lo, hi)
        rows.append({x: xl, hue: hl, "mean": mean, "ci_low": lo, "ci_high": hi, "n": group["seed"].nunique()})
    return pd.DataFrame(rows)


# -- per class --------------------------------------------------------------------------
def class_accuracy(confusion: pd.DataFrame) -> pd.DataFrame:
    """arch x class accuracy from the confusion counts summed over seeds."""
    summed = confusion.groupby(["arch", "true", "predicted"])["count"].sum().reset_index()
    totals = summed.groupby(["arch", "true"])["count"].sum()
    correct = summed[summed["true"] == summed["predicted"]].set_index(["arch", "true"])["count"]
    acc = (correct.reindex(totals.index, fill_value=0) / totals.where(totals > 0)).rename("acc")
    return acc.reset_index().pivot(index="arch", columns="true", values="acc")


def class_differences(evidence: Evidence, arch: str, reference: str, labels: np.ndarray,
                      classes: list[str]) -> list[Comparison]:
    """Per class, ``arch`` minus ``reference`` on that class's test images, paired by seed,
    Holm across the classes (needs per-image results)."""
    results, sizes = {}, {}
    for k, name in enumerate(classes):
        images = np.flatnonzero(labels == k)
        if len(images) >= 2:
            results[name] = evidence.scores(arch, images=images) - evidence.scores(reference, images=images)
            sizes[name] = len(images)
    found = compare_effects(results, reference, margin=evidence.margin, alpha=evidence.alpha, look=evidence.look)
    # A class holds a tenth of the test set: say so where its images, not the seeds, are the limit,
    # so that it does not read as contradicting the whole test set's "more seeds would decide it".
    return [dataclasses.replace(c, undecided_reason=_class_limit(sizes[c.arch]),
                                note=c.note.replace(TEST_SET_LIMIT, _class_limit(sizes[c.arch])))
            if c.undecided_reason == TEST_SET_LIMIT else c for c in found]


def _class_limit(images: int) -> str:
    return f"more seeds cannot decide it: this class's {images:,} test images are the limit"


def confusion_difference(confusion: pd.DataFrame, arch: str, reference: str) -> pd.DataFrame:
    """Mean confusion counts per seed of ``arch`` minus ``reference`` (true x predicted)."""
    def mean_counts(name: str) -> pd.DataFrame:
        rows = confusion[confusion["arch"] == name]
        seeds = rows["seed"].nunique()
        return rows.pivot_table(index="true", columns="predicted", values="count", aggfunc="sum") / max(seeds, 1)

    return mean_counts(arch).sub(mean_counts(reference), fill_value=0)


def largest_class_gaps(per_class: pd.DataFrame, top_n: int = 8) -> pd.DataFrame:
    """The (architecture pair, class) cells where per-class accuracy differs the most."""
    rows = []
    archs = list(per_class.index)
    for i, a in enumerate(archs):
        for b in archs[i + 1:]:
            for cls in per_class.columns:
                va, vb = per_class.at[a, cls], per_class.at[b, cls]
                if np.isnan(va) or np.isnan(vb):
                    continue
                hi, lo = (a, b) if va >= vb else (b, a)
                rows.append({"class": cls, "higher": hi, "lower": lo,
                             "acc_higher": max(va, vb), "acc_lower": min(va, vb), "gap": abs(va - vb)})
    frame = pd.DataFrame(rows, columns=["class", "higher", "lower", "acc_higher", "acc_lower", "gap"])
    return frame.sort_values(["gap", "class", "higher", "lower"], ascending=[False, True, True, True],
                             kind="stable").head(top_n).reset_index(drop=True)


# -- cost --------------------------------------------------------------------------------
def seed_group_sizes(runs: pd.DataFrame) -> dict[str, int]:
    """Per architecture, how many runs were trained together (``bench.drivers.seed_group``; 1: alone).

    Records stored before seed groups existed have no such column: they trained alone.
    """
    if "seed_group" not in runs.columns:
        return {arch: 1 for arch in runs["arch"].unique()}
    sizes = runs.assign(seed_group=runs["seed_group"].fillna(1)).groupby("arch", sort=True)["seed_group"].max()
    return {arch: int(size) for arch, size in sizes.items()}


def mixed_step_modes(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """Per architecture, how its runs stepped - "stacked", "alone" or "stacked for k of n seeds" -
    when the runs compared do not all step the same way (else empty).

    Stacked runs (``--stack-seeds``) differ from runs trained alone in float rounding only;
    records stored before stacking existed trained alone.
    """
    if "step_mode" not in runs.columns or runs.empty:
        return []
    stacked = runs["step_mode"].eq("stacked")
    if stacked.all() or not stacked.any():
        return []
    modes = []
    for arch, flags in stacked.groupby(runs["arch"], sort=True):
        k, n = int(flags.sum()), len(flags)
        modes.append((arch, "stacked" if k == n else "alone" if k == 0 else f"stacked for {k} of {n} seeds"))
    return modes


def pareto_front(cost, value) -> np.ndarray:
    """Indices of points not dominated (no other point both cheaper-or-equal and better)."""
    cost = np.asarray(cost, dtype=float)
    value = np.asarray(value, dtype=float)
    order = np.lexsort((-value, cost))
    front, best = [], -math.inf
    for i in order:
        if value[i] > best:
            front.append(i)
            best = value[i]
    return np.asarray(front, dtype=int)


__all__ = ["ALPHA", "CONFIDENCE", "DEFAULT_MARGIN", "Evidence"]


# -- the questions a grid answers --------------------------------------------------------
def default_reference(runs: pd.DataFrame, order: list[str]) -> str:
    """The architecture others are compared with when no --baseline names one: the factorial
    design's all-reference cell (e.g. standard convs with max-pool) if there is one, else the
    first architecture of the grid."""
    sub = factorial_runs(runs)
    cols = factor_columns(sub)
    if cols:
        refs = {c: reference_level(sorted(sub[c].unique())) for c in cols}
        cell = sub[np.logical_and.reduce([sub[c] == level for c, level in refs.items()])]
        if not cell.empty:
            return sorted(set(cell["arch"]))[0]
    present = set(runs["arch"])
    return next(a for a in order if a in present)


def questions(evidence: Evidence, reference: str, order: list[str], baseline_given: bool
              ) -> dict[str, list[Comparison]]:
    """The comparisons the verdict answers, by heading: each factor's main effects for a
    factorial grid, and every architecture against ``reference`` when the grid is not
    factorial or a baseline was named.  ``--until-decided`` trains until all are decided."""
    asked: dict[str, list[Comparison]] = {}
    for factor, found in factor_effects(evidence).items():
        asked[f"factor {factor}"] = found
    if (not asked or baseline_given) and len(set(evidence.runs["arch"])) > 1:
        asked[f"against {reference}"] = evidence.compare(reference, order=order)
    return asked
