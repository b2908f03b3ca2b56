"""One plain-words sentence per comparison, in percentage points, for the report."""

from __future__ import annotations

import math

from bench.stats.compare import IDENTICAL, SMALLER_THAN_MARGIN, Comparison
from bench.stats.methods import BETTER, EQUIVALENT, WORSE


def pp(fraction: float) -> str:
    """A fraction as percentage points with two decimals ("-0.00" never appears)."""
    return f"{round(100 * fraction, 2) + 0.0:.2f}"


def level(confidence: float) -> str:
    """95% for 0.95; sequential looks spend tiny alphas, so keep enough digits to differ from 100%."""
    return f"{100 * confidence:.5g}%"


def describe(c: Comparison) -> str:
    """E.g. "convnet is more accurate than dilated by 1.46 pp (95% CI 1.29 to 1.63), 3 of 3 seeds agree"."""
    ci = level(1 - c.alpha_used)
    if c.verdict == BETTER:
        return (f"{c.arch} is more accurate than {c.reference} by {pp(c.diff)} pp "
                f"({ci} CI {pp(c.ci_low)} to {pp(c.ci_high)}), {_agree(c.wins, c.n_seeds)}")
    if c.verdict == WORSE:
        return (f"{c.arch} is less accurate than {c.reference} by {pp(-c.diff)} pp "
                f"({ci} CI {pp(-c.ci_high)} to {pp(-c.ci_low)}), {_agree(c.losses, c.n_seeds)}")
    if c.verdict == EQUIVALENT:
        text = (f"{c.arch} and {c.reference} are equivalent within ±{pp(c.margin)} pp "
                f"(difference {pp(c.diff)} pp, {level(1 - 2 * c.alpha_used)} CI "
                f"{pp(c.eq_low)} to {pp(c.eq_high)})")
        return text + (f"; {SMALLER_THAN_MARGIN}" if SMALLER_THAN_MARGIN in c.note else "")
    head = f"{c.arch} vs {c.reference} is undecided"
    if math.isnan(c.diff) or math.isnan(c.ci_low):
        return f"{head}: {c.undecided_reason}"
    if c.seeds_needed is not None:
        more = c.seeds_needed - c.n_seeds
        seeds = f"about {more} more {_seeds(more)} would decide it"
    else:
        seeds = c.undecided_reason
    if IDENTICAL in c.note:
        spread = f"{IDENTICAL}, {ci} bound ±{pp(c.ci_high)} pp"
    elif c.se == 0.0:
        spread = "the same at every seed"
    else:
        spread = f"{ci} CI {pp(c.ci_low)} to {pp(c.ci_high)}"
    text = f"{head}: a difference of {pp(c.diff)} pp ({spread}); {seeds}"
    if not math.isnan(c.mde):
        text += (f" (the smallest difference {c.n_seeds} {_seeds(c.n_seeds)} can detect is "
                 f"{pp(c.mde)} pp)")
    return text


def _seeds(n: int) -> str:
    return "seed" if n == 1 else "seeds"


def _agree(k: int, n: int) -> str:
    return f"{k} of {n} {_seeds(n)} {'agrees' if n == 1 else 'agree'}"
