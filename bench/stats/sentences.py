"""One plain-words sentence per comparison, in the metric's own units, for the report.

Accuracy speaks percentage points ("more accurate by 0.20 pp"); any other metric names itself
and its unit ("worse on epoch time: higher by 3.52 s").  Each interval names its confidence and,
when Holm adjusted it for a table of several comparisons, says so: the interval printed beside a
verdict is the one that decided it (``bench.stats.compare``).
"""

from __future__ import annotations

import math

from bench.stats.compare import IDENTICAL, SMALLER_THAN_MARGIN, Comparison
from bench.stats.methods import BETTER, EQUIVALENT, WORSE
from bench.stats.metrics import ACCURACY, Metric, metric


def pp(fraction: float) -> str:
    """A fraction as percentage points with two decimals ("-0.00" never appears)."""
    return number(ACCURACY, fraction)


def number(m: Metric, x: float) -> str:
    """A stored value or difference in the metric's shown units, without sign or unit decoration."""
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{round(m.scale * x, m.digits) + 0.0:.{m.digits}f}"


def level(confidence: float) -> str:
    """95% for 0.95; sequential looks spend tiny alphas, so keep enough digits to differ from 100%."""
    return f"{100 * confidence:.5g}%"


def interval_label(c: Comparison, equivalence: bool = False) -> str:
    """E.g. "95% CI", or "95% CI, Holm-adjusted" when Holm saw several comparisons."""
    confidence = 1 - (2 if equivalence else 1) * c.alpha_used
    adjusted = ", Holm-adjusted" if c.family_size > 1 else ""
    return f"{level(confidence)} CI{adjusted}"


def _span(m: Metric, lo: float, hi: float) -> str:
    if math.isinf(lo) and math.isinf(hi):
        return "unbounded"
    return f"{number(m, lo)} to {number(m, hi)}"


def _unit(m: Metric) -> str:
    return f" {m.delta_unit}" if m.delta_unit else ""


def describe(c: Comparison) -> str:
    """E.g. "convnet is more accurate than dilated by 1.46 pp (95% CI 1.29 to 1.63), 3 of 3 seeds agree"."""
    m = metric(c.metric)
    u = _unit(m)
    ci = interval_label(c)
    if c.verdict in (BETTER, WORSE):
        agree = _agree(c.wins if c.verdict == BETTER else c.losses, c.n_seeds)
        flip = c.diff < 0  # show a positive amount
        lo, hi = (-c.ci_high, -c.ci_low) if flip else (c.ci_low, c.ci_high)
        amount = f"{number(m, abs(c.diff))}{u} ({ci} {_span(m, lo, hi)}), {agree}"
        if m.column == ACCURACY.column:
            return f"{c.arch} is {'more' if c.verdict == BETTER else 'less'} accurate than {c.reference} by {amount}"
        return (f"{c.arch} is {c.verdict} than {c.reference} on {m.label}: "
                f"{'lower' if flip else 'higher'} by {amount}")
    if c.verdict == EQUIVALENT:
        on = "" if m.column == ACCURACY.column else f" on {m.label}"
        text = (f"{c.arch} and {c.reference} are equivalent{on} within ±{number(m, c.margin)}{u} "
                f"(difference {number(m, c.diff)}{u}, {interval_label(c, equivalence=True)} "
                f"{_span(m, c.eq_low, c.eq_high)})")
        return text + (f"; {SMALLER_THAN_MARGIN}" if SMALLER_THAN_MARGIN in c.note else "")
    on = "" if m.column == ACCURACY.column else f" on {m.label}"
    head = f"{c.arch} vs {c.reference}{on} is undecided"
    if math.isnan(c.diff) or math.isnan(c.ci_low):
        return f"{head}: {c.undecided_reason}"
    if c.seeds_needed is not None:
        more = c.seeds_needed - c.n_seeds
        seeds = f"about {more} more {_seeds(more)} would decide it"
    else:
        seeds = c.undecided_reason
    if IDENTICAL in c.note:
        spread = f"{IDENTICAL}, {ci.replace(' CI', '')} bound ±{number(m, c.ci_high)}{u}"
    elif c.se == 0.0:
        spread = "the same at every seed"
    else:
        spread = f"{ci} {_span(m, c.ci_low, c.ci_high)}"
    text = f"{head}: a difference of {number(m, c.diff)}{u} ({spread}); {seeds}"
    if not math.isnan(c.mde):
        text += (f" (the smallest difference {c.n_seeds} {_seeds(c.n_seeds)} can detect is "
                 f"{number(m, c.mde)}{u})")
    return text


def _seeds(n: int) -> str:
    return "seed" if n == 1 else "seeds"


def _agree(k: int, n: int) -> str:
    return f"{k} of {n} {_seeds(n)} {'agrees' if n == 1 else 'agree'}"
