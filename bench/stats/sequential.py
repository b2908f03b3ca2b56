"""Seeds until decided: looks after rounds of seeds, valid under optional stopping.

The runner trains a first round of seeds, looks, and trains another round while some
comparison is undecided, up to a planned maximum ``max_seeds``.  Re-testing at the full
alpha after every round would find false differences far more often than alpha.  Instead,
look k spends part of alpha by a Lan-DeMets O'Brien-Fleming-type spending function of the
information fraction t = n_k / max_seeds (n_k: the seeds planned at look k),

    spent(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)),   spent(1) = alpha,

and tests look k at the increment spent(t_k) - spent(t_{k-1}), Holm within the look.

What is controlled: over all looks up to ``max_seeds`` and all comparisons of the table,
the probability of any better/worse verdict when the true difference is 0, and of any
equivalent verdict when the true |difference| >= margin, is at most alpha: each look's Holm
family errs with probability at most its increment, and the increments sum to alpha (the
union bound, valid whatever the correlation between looks).  Stopping early only drops
looks, so it cannot raise that probability.  Because the bound covers a wrong verdict at
any look, the runner may report the last look's verdicts or keep each comparison's first
decision: both are covered.  The look schedule must be fixed in advance
(not chosen from the data); seeds that fail do not change it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from scipy import stats

from bench.stats.methods import ALPHA, UNDECIDED


def obrien_fleming_spent(fraction: float, alpha: float = ALPHA) -> float:
    """Alpha spent by information fraction ``fraction`` in (0, 1]: 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))."""
    if fraction <= 0:
        return 0.0
    fraction = min(fraction, 1.0)
    return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / fraction ** 0.5))


@dataclass(frozen=True)
class Look:
    """A planned look: the seed counts at this and every earlier look, and the maximum."""

    seeds: tuple[int, ...]
    max_seeds: int

    def __post_init__(self) -> None:
        s = self.seeds
        if not s or s[0] < 1 or any(b <= a for a, b in pairwise(s)) or s[-1] > self.max_seeds:
            raise ValueError(f"look seed counts must rise strictly from >= 1 to <= max_seeds="
                             f"{self.max_seeds}: {s}")

    @classmethod
    def regular(cls, index: int, *, initial: int = 3, per_round: int = 3, max_seeds: int = 21) -> Look:
        """Look ``index`` (0 = after the first ``initial`` seeds) of rounds of ``per_round`` seeds."""
        counts: list[int] = []
        n = initial
        while len(counts) <= index:
            if counts and counts[-1] >= max_seeds:
                raise ValueError(f"look {index} is past the planned maximum of {max_seeds} seeds")
            counts.append(min(n, max_seeds))
            n += per_round
        return cls(tuple(counts), max_seeds)

    @property
    def index(self) -> int:
        return len(self.seeds) - 1

    @property
    def n_seeds(self) -> int:
        return self.seeds[-1]

    @property
    def is_last(self) -> bool:
        return self.seeds[-1] >= self.max_seeds

    def alpha(self, alpha: float = ALPHA) -> float:
        """The level this look tests at: alpha spent since the previous look."""
        before = self.seeds[-2] if len(self.seeds) > 1 else 0
        return (obrien_fleming_spent(self.seeds[-1] / self.max_seeds, alpha)
                - obrien_fleming_spent(before / self.max_seeds, alpha))


def all_decided(comparisons: Iterable) -> bool:
    """True when no comparison is undecided (the runner may stop adding seeds)."""
    return all(c.verdict != UNDECIDED for c in comparisons)


def should_stop(comparisons: Iterable, look: Look) -> bool:
    """Stop after this look: everything decided, or the planned maximum reached."""
    return look.is_last or all_decided(comparisons)
