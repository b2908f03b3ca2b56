"""Verdicts on every axis: each factor's effect on clean accuracy and on every evaluation's metric.

Clean test accuracy cannot tell apart choices that differ in how a network behaves when its
input moves or degrades.  Every compared metric (test accuracy and each evaluation's compared
outputs, ``bench.evaluations``) gets the same factor effects as accuracy
(``stats.factor_effects``: paired by seed, and by image where per-image results exist), and
each factor level gets one sentence naming the axes on which it is decided, e.g. "downsample:
stride vs max is equivalent on test accuracy but worse on shift consistency by 2.10 pp (95% CI
...)", with a recommendation that weighs the decided axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..stats import BETTER, EQUIVALENT, UNDECIDED, WORSE, Comparison
from ..stats.metrics import ACCURACY, metric
from ..stats.sentences import interval_label, number
from ..stats import evidence as stats


def compared_metrics(runs: pd.DataFrame) -> list[str]:
    """Test accuracy, then every evaluation's compared column that all of ``runs`` have."""
    from ..evaluations import compared_outputs

    found = [ACCURACY.column]
    for out in compared_outputs():
        if out.name in runs.columns and runs[out.name].notna().all():
            out.metric()
            found.append(out.name)
    return found


@dataclass(frozen=True)
class Axis:
    """One factor level against the factor's reference, on every compared metric."""

    factor: str
    level: str
    reference: str
    by_metric: dict[str, Comparison]

    def decided(self, verdict: str) -> list[str]:
        return [m for m, c in self.by_metric.items() if c.verdict == verdict]

    @property
    def sentence(self) -> str:
        """E.g. "downsample: stride vs max is equivalent on test accuracy but worse on shift ..."."""
        clauses = [_clause(c) for m, c in self.by_metric.items() if c.verdict != UNDECIDED]
        undecided = [metric(m).label for m in self.decided(UNDECIDED)]
        head = f"{self.factor}: {self.level} vs {self.reference}"
        if not clauses:
            return f"{head} is undecided on every axis ({', '.join(undecided)})"
        verdicts = [c.verdict for c in self.by_metric.values() if c.verdict != UNDECIDED]
        text, turned = f"{head} is {clauses[0]}", False
        for verdict, clause in zip(verdicts[1:], clauses[1:]):
            turn = verdict != verdicts[0] and not turned  # one "but", where the verdicts first part
            text += f"{' but' if turn else ','} {clause}"
            turned |= turn
        if undecided:
            text += f"; undecided on {', '.join(undecided)}"
        return text

    @property
    def recommendation(self) -> str:
        """How the decided axes weigh: which of the two to prefer, and on what grounds."""
        better, worse = self.decided(BETTER), self.decided(WORSE)
        labels = lambda ms: ", ".join(metric(m).label for m in ms)  # noqa: E731
        if better and not worse:
            return f"prefer {self.level} over {self.reference}: better on {labels(better)}, worse on none"
        if worse and not better:
            return (f"prefer {self.reference} over {self.level}: {self.level} is worse on {labels(worse)}, "
                    "better on none")
        if better and worse:
            return (f"a trade-off: {self.level} is better on {labels(better)} and worse on {labels(worse)} "
                    f"than {self.reference}")
        if self.decided(EQUIVALENT) and len(self.decided(EQUIVALENT)) == len(self.by_metric):
            return f"either: {self.level} and {self.reference} are equivalent on every axis"
        return f"no preference yet between {self.level} and {self.reference}: nothing decided differs"

    @property
    def verdict(self) -> str:
        """The line's class in the answer box: better or worse only when every decided axis agrees."""
        better, worse = self.decided(BETTER), self.decided(WORSE)
        if better and not worse:
            return BETTER
        if worse and not better:
            return WORSE
        return "axes"


def _clause(c: Comparison) -> str:
    m = metric(c.metric)
    unit = f" {m.delta_unit}" if m.delta_unit else ""
    if c.verdict == EQUIVALENT:
        return f"equivalent on {m.label} (within ±{number(m, c.margin)}{unit})"
    flip = c.diff < 0
    lo, hi = (-c.ci_high, -c.ci_low) if flip else (c.ci_low, c.ci_high)
    how = "lower" if flip else "higher"
    return (f"{c.verdict} on {m.label} ({how} by {number(m, abs(c.diff))}{unit}, "
            f"{interval_label(c)} {number(m, lo)} to {number(m, hi)})")


def factor_axes(evidence: stats.Evidence, metrics: list[str] | None = None) -> list[Axis]:
    """Per factor and level, its effect on every compared metric (``stats.factor_effects``)."""
    metrics = metrics or compared_metrics(evidence.runs)
    table: dict[tuple[str, str, str], dict[str, Comparison]] = {}
    for m in metrics:
        for factor, found in stats.factor_effects(evidence, m).items():
            for c in found:
                table.setdefault((factor, c.arch, c.reference), {})[m] = c
    return [Axis(f, level, ref, by) for (f, level, ref), by in table.items()]


def pairwise_axes(evidence: stats.Evidence, reference: str, order: list[str] | None = None,
                  metrics: list[str] | None = None) -> list[Axis]:
    """Every architecture against ``reference`` on every compared metric (``Evidence.compare``)."""
    metrics = metrics or compared_metrics(evidence.runs)
    table: dict[str, dict[str, Comparison]] = {}
    for m in metrics:
        for c in evidence.compare(reference, order=order, metric=m):
            table.setdefault(c.arch, {})[m] = c
    return [Axis("against " + reference, arch, reference, by) for arch, by in table.items()]


def answer_lines(evidence: stats.Evidence, reference: str, order: list[str], factorial: bool) -> list[dict[str, str]]:
    """The answer box's lines on every axis: one per factor level (or architecture, for a grid
    that is not factorial), each with its recommendation.  None when only accuracy is measured."""
    metrics = compared_metrics(evidence.runs)
    if len(metrics) < 2:
        return []
    axes = factor_axes(evidence, metrics) if factorial else pairwise_axes(evidence, reference, order, metrics)
    return [{"text": f"{a.sentence}. On balance: {a.recommendation}.", "verdict": a.verdict} for a in axes]


def dominated(evidence: stats.Evidence, names: list[str], metrics: list[str] | None = None
              ) -> dict[str, tuple[str, list[str]]]:
    """Of ``names``, each one that another of them is decided better than on some evaluation
    axis and worse than on none: name -> (that other, the axes).  Test accuracy is left out
    (the recommendation has already weighed it)."""
    metrics = [m for m in (metrics or compared_metrics(evidence.runs)) if m != ACCURACY.column]
    verdicts: dict[tuple[str, str], dict[str, str]] = {}
    for m in metrics:
        for reference in names:
            for c in evidence.compare(reference, metric=m):
                if c.arch in names:
                    verdicts.setdefault((c.arch, reference), {})[m] = c.verdict
    found: dict[str, tuple[str, list[str]]] = {}
    for a in names:
        for b in names:
            by = verdicts.get((a, b), {})
            worse = [m for m in metrics if by.get(m) == WORSE]
            if a != b and worse and not any(by.get(m) == BETTER for m in metrics):
                found[a] = (b, worse)
                break
    return found


def prefer_robust(evidence: stats.Evidence, names: list[str]) -> tuple[list[str], str]:
    """``names`` without those another of them dominates on the evaluations' axes, and a clause
    saying who was left out and why (none left out, or all of them: ``names`` and "")."""
    if len(names) < 2 or len(compared_metrics(evidence.runs)) < 2:
        return names, ""
    found = dominated(evidence, names)
    kept = [a for a in names if a not in found]
    if not found or not kept:
        return names, ""
    reasons = "; ".join(f"{a} is worse than {b} on {', '.join(metric(m).label for m in on)}"
                        for a, (b, on) in found.items())
    return kept, f"; of the networks as accurate, those worse on robustness are left out ({reasons})"
