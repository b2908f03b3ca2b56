"""What a compared number is: its units, its bounds, which way is better, and its margin.

Every metric the statistics handle is declared here once.  Intervals of a metric are clipped
only by its real bounds (a difference of two accuracy fractions lies in [-1, 1]; a difference
of two epoch times in seconds has no bound), and every figure and sentence takes its units
from the declaration: ``Metric.value`` writes a level, ``Metric.delta`` a difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.errors import BenchError
from bench.stats.methods import DEFAULT_MARGIN

INF = math.inf


@dataclass(frozen=True)
class Metric:
    """A compared quantity as stored (``column``): ``scale`` times a stored value is what is shown
    in ``unit`` (a fraction 0.9912 is shown as 99.12 %), a difference in ``delta_unit``."""

    column: str
    label: str  # plain words: "test accuracy", "epoch time"
    unit: str  # of a level as shown: "%", "s"
    delta_unit: str  # of a difference as shown: "pp", "s"
    scale: float = 1.0
    low: float = -INF  # the stored value's real bounds
    high: float = INF
    higher_is_better: bool = True
    margin: float = 0.0  # stored units: differences within ±margin count as the same
    digits: int = 2

    @property
    def diff_bounds(self) -> tuple[float, float]:
        """The bounds of a difference of two values (or of two means of values)."""
        span = self.high - self.low
        return (-span, span)

    def clip_diff(self, lo: float, hi: float) -> tuple[float, float]:
        """An interval for a difference, kept inside the difference's real bounds only."""
        b_lo, b_hi = self.diff_bounds
        return max(lo, b_lo), min(hi, b_hi)

    def clip_value(self, lo: float, hi: float) -> tuple[float, float]:
        return max(lo, self.low), min(hi, self.high)

    def value(self, x: float, digits: int | None = None) -> str:
        """A level as shown, without its unit: 0.99123 -> "99.12" for accuracy."""
        if x is None or math.isnan(x):
            return "–"
        return f"{x * self.scale:.{self.digits if digits is None else digits}f}"

    def delta(self, x: float, digits: int | None = None) -> str:
        """A signed difference as shown, without its unit; an infinite end is "unbounded"."""
        if x is None or math.isnan(x):
            return "–"
        if math.isinf(x):
            return "−∞" if x < 0 else "+∞"
        return f"{x * self.scale:+.{self.digits if digits is None else digits}f}"

    def interval(self, lo: float, hi: float, digits: int | None = None, unit: bool = True) -> str:
        """A difference's interval as shown, e.g. "[-0.35, -0.02] pp", or "unbounded"."""
        if lo is None or math.isnan(lo) or hi is None or math.isnan(hi):
            return "–"
        if math.isinf(lo) and math.isinf(hi):
            return "unbounded"
        shown = f"[{self.delta(lo, digits)}, {self.delta(hi, digits)}]"
        return f"{shown} {self.delta_unit}" if unit and self.delta_unit else shown


ACCURACY = Metric("test_acc", "test accuracy", "%", "pp", scale=100.0, low=0.0, high=1.0,
                  margin=DEFAULT_MARGIN)
VAL_ACCURACY = Metric("best_val_acc", "best validation accuracy", "%", "pp", scale=100.0, low=0.0,
                      high=1.0, margin=DEFAULT_MARGIN)
LOSS = Metric("test_loss", "test loss", "", "", low=0.0, higher_is_better=False, digits=4)
EPOCH_SECONDS = Metric("mean_epoch_seconds", "epoch time", "s", "s", low=0.0,
                       higher_is_better=False, digits=3)
TRAIN_SECONDS = Metric("train_seconds", "training time", "s", "s", low=0.0, higher_is_better=False,
                       digits=1)
IMAGES_PER_S = Metric("train_images_per_s", "training throughput", "images/s", "images/s", low=0.0,
                      digits=0)
PARAMS = Metric("params", "parameters", "", "", low=0.0, higher_is_better=False, digits=0)
FLOPS = Metric("flops_per_image", "training FLOP per image", "MFLOP", "MFLOP", scale=1e-6, low=0.0,
               higher_is_better=False)

METRICS: dict[str, Metric] = {m.column: m for m in (
    ACCURACY, VAL_ACCURACY, LOSS, EPOCH_SECONDS, TRAIN_SECONDS, IMAGES_PER_S, PARAMS, FLOPS)}


def register_metric(metric: Metric) -> Metric:
    """Declare a compared metric (an evaluation's column, say); its column names it."""
    METRICS[metric.column] = metric
    return metric


def metric(column: str) -> Metric:
    try:
        return METRICS[column]
    except KeyError:
        raise BenchError(f"no metric is declared for column {column!r}; "
                         f"known: {', '.join(sorted(METRICS))}") from None
