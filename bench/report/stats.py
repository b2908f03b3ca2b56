"""The report's statistics: pure functions on the runs table (one row per finished run).

Seeds are the unit of replication.  Two architectures trained with the same seed see the
same data order and validation split, so comparisons are *paired by seed*: the per-seed
differences carry the comparison, and seed-to-seed noise shared by both cancels.

* spread over seeds: mean, sample std (ddof=1), 95% Student-t confidence interval;
* a comparison: mean of per-seed differences, its 95% t-CI, and a paired t-test
  (``scipy.stats.ttest_rel``); p-values of one table are Holm-corrected together;
* factor main effects: per seed, the mean over the other factors' levels at one level minus
  the same at the reference level, then the t-CI and one-sample t-test over seeds.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference at these seeds"
ONE_SEED = "no test possible: needs at least two shared seeds"
ZERO_VARIANCE = "no test possible: the difference is identical at every seed"
# Preferred reference level of a factor (the "plain" choice) when present.
REFERENCE_LEVELS = ("std", "standard", "plain", "conv", "max", "maxpool", "none")


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(mean, sample std, CI low, CI high) of ``values``; std and CI are NaN below 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
    return mean, std, mean - half, mean + half


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down), NaN entries left out and kept NaN.

    Sorted ascending, the k-th smallest (k = 0..m-1) becomes max over j <= k of
    min(1, (m - j) * p_(j)); this controls the family-wise error rate at alpha.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    valid = ~np.isnan(p)
    q = p[valid]
    m = q.size
    if m == 0:
        return adjusted
    order = np.argsort(q, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * q[order]))
    result = np.empty(m)
    result[order] = stepped
    adjusted[valid] = result
    return adjusted


def leaderboard(runs: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """One row per architecture, sorted by mean ``metric`` (best first; ties by name)."""
    rows = []
    for arch, group in runs.groupby("arch", sort=True):
        mean, std, lo, hi = t_interval(group[metric])
        rows.append({
            "arch": arch,
            "seeds": int(group["seed"].nunique()),
            "mean": mean, "std": std, "ci_low": lo, "ci_high": hi,
            "best_val_acc": _mean(group, "best_val_acc"),
            "test_loss": _mean(group, "test_loss"),
            "params": _first(group, "params"),
            "flops_per_image": _first(group, "flops_per_image"),
            "mean_epoch_seconds": _mean(group, "mean_epoch_seconds"),
            "train_seconds": _mean(group, "train_seconds"),
            "train_images_per_s": _mean(group, "train_images_per_s"),
        })
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.sort_values(["mean", "arch"], ascending=[False, True], kind="stable")
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame.reset_index(drop=True)


def _mean(group: pd.DataFrame, col: str) -> float:
    return float(group[col].mean()) if col in group else math.nan


def _first(group: pd.DataFrame, col: str) -> float:
    if col not in group or group[col].isna().all():
        return math.nan
    return float(group[col].dropna().iloc[0])


def by_seed(runs: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """arch x seed table of ``metric``."""
    return runs.pivot_table(index="seed", columns="arch", values=metric, aggfunc="mean")


def paired(a, b) -> dict[str, float | int | str]:
    """Compare paired samples: statistics of the differences ``a - b``."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = a - b
    mean, std, lo, hi = t_interval(d)
    result = {"n": int(d.size), "diff": mean, "diff_std": std, "ci_low": lo, "ci_high": hi,
              "p": math.nan, "note": ""}
    if d.size < 2:
        result["note"] = ONE_SEED
    elif np.allclose(d, d[0], rtol=1e-9, atol=1e-12):
        # ttest_rel is undefined here (0/0 or x/0, or rounding noise around it); say so
        # instead of a NaN or a bogus tiny p.
        zero = abs(d[0]) <= 1e-12
        result["note"] = NO_DIFFERENCE if zero else ZERO_VARIANCE
        result["p"] = 1.0 if zero else math.nan
        result["diff_std"], result["ci_low"], result["ci_high"] = 0.0, mean, mean
    else:
        with warnings.catch_warnings():
            # Near-constant differences make scipy warn about precision; the p-value it
            # returns is still the right (tiny or large) one, and the report shows the CI.
            warnings.simplefilter("ignore", RuntimeWarning)
            result["p"] = float(stats.ttest_rel(a, b).pvalue)
    return result


def verdict(diff: float, p_holm: float, note: str = "", alpha: float = ALPHA) -> str:
    if note and note != NO_DIFFERENCE:
        return note
    if not math.isnan(p_holm) and p_holm < alpha:
        return BETTER if diff > 0 else WORSE
    return NO_DIFFERENCE


def compare_to(runs: pd.DataFrame, reference: str, metric: str = "test_acc",
               order: list[str] | None = None) -> pd.DataFrame:
    """Every other architecture minus ``reference``, paired by seed, Holm-corrected together.

    ``diff`` > 0 means the architecture beats the reference; the verdict reads
    "<arch> is <verdict> than <reference>".
    """
    table = by_seed(runs, metric)
    others = [a for a in (order or list(table.columns)) if a != reference and a in table.columns]
    rows = []
    for arch in others:
        both = table[[arch, reference]].dropna()
        rows.append({"arch": arch, "reference": reference, **paired(both[arch], both[reference])})
    frame = pd.DataFrame(rows, columns=["arch", "reference", "n", "diff", "diff_std", "ci_low",
                                        "ci_high", "p", "note"])
    frame["p_holm"] = holm(frame["p"].to_numpy(dtype=float)) if len(frame) else []
    frame["verdict"] = [verdict(d, p, n) for d, p, n in zip(frame["diff"], frame["p_holm"], frame["note"])]
    return frame


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


def factor_effects(runs: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """Main effect of each level of each factor against the factor's reference level.

    Per seed: marginal mean of ``metric`` over the runs at that level (averaging over the
    other factors' levels) minus the same at the reference level; then mean, 95% t-CI and a
    one-sample t-test of those per-seed contrasts (= paired t-test by seed).
    """
    sub = factorial_runs(runs)
    rows = []
    for col in factor_columns(sub):
        levels = sorted(sub[col].unique())
        ref = reference_level(levels)
        marginal = sub.groupby(["seed", col])[metric].mean().unstack(col)
        for level in levels:
            if level == ref:
                continue
            both = marginal[[level, ref]].dropna()
            rows.append({"factor": col.removeprefix("factor_"), "level": level, "reference": ref,
                         "metric": metric, **paired(both[level], both[ref])})
    return pd.DataFrame(rows, columns=["factor", "level", "reference", "metric", "n", "diff",
                                       "diff_std", "ci_low", "ci_high", "p", "note"])


def interaction_table(runs: pd.DataFrame, x: str, hue: str, metric: str = "test_acc") -> pd.DataFrame:
    """Cell means with t-CIs over seeds for an interaction plot of factors ``x`` by ``hue``."""
    sub = factorial_runs(runs)
    rows = []
    for (xl, hl), group in sub.groupby([f"factor_{x}", f"factor_{hue}"], sort=True):
        mean, std, lo, hi = t_interval(group.groupby("seed")[metric].mean())
        rows.append({x: xl, hue: hl, "mean": mean, "ci_low": lo, "ci_high": hi, "n": group["seed"].nunique()})
    return pd.DataFrame(rows)


def class_accuracy(confusion: pd.DataFrame) -> pd.DataFrame:
    """arch x class accuracy from the confusion counts summed over seeds."""
    summed = confusion.groupby(["arch", "true", "predicted"])["count"].sum().reset_index()
    totals = summed.groupby(["arch", "true"])["count"].sum()
    correct = summed[summed["true"] == summed["predicted"]].set_index(["arch", "true"])["count"]
    acc = (correct.reindex(totals.index, fill_value=0) / totals.where(totals > 0)).rename("acc")
    return acc.reset_index().pivot(index="arch", columns="true", values="acc")


def largest_class_gaps(per_class: pd.DataFrame, top: int = 8) -> pd.DataFrame:
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
                             kind="stable").head(top).reset_index(drop=True)


def seed_group_sizes(runs: pd.DataFrame) -> dict[str, int]:
    """Per architecture, how many runs were trained together (``bench.seed_group``; 1: alone).

    Records stored before seed groups existed have no such column: they trained alone.
    """
    if "seed_group" not in runs.columns:
        return {arch: 1 for arch in runs["arch"].unique()}
    sizes = runs.assign(seed_group=runs["seed_group"].fillna(1)).groupby("arch", sort=True)["seed_group"].max()
    return {arch: int(size) for arch, size in sizes.items()}


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
