"""Ranks that claim no more than the comparisons decided.

The architecture with the highest mean is compared with every other; those not decided
worse than it (undecided, equivalent) share its rank ("tied 1st").  A leader exists only
when every other architecture is decided worse.  Below the tied group, architectures are
placed by mean with competition ranks (1, 1, 3, 4): their order among themselves is not
tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.stats.compare import Comparison
from bench.stats.methods import WORSE


@dataclass(frozen=True)
class Rank:
    arch: str
    position: int
    tied: bool
    label: str


@dataclass(frozen=True)
class Ranking:
    ranks: tuple[Rank, ...]
    leader: str | None


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def top(means: Mapping[str, float]) -> str:
    """The architecture with the highest mean (ties broken by name): the reference to compare with."""
    return min(means, key=lambda a: (-means[a], a))


def rank(means: Mapping[str, float], versus_top: Sequence[Comparison]) -> Ranking:
    """Rank architectures from their means and their comparisons against ``top(means)``."""
    first = top(means)
    verdict = {c.arch: c.verdict for c in versus_top if c.reference == first}
    by_mean = sorted(means, key=lambda a: (-means[a], a))
    tied = [a for a in by_mean if a == first or verdict.get(a) != WORSE]
    below = [a for a in by_mean if a not in tied]
    group = len(tied) > 1
    ranks = [Rank(a, 1, group, "tied 1st" if group else "1st") for a in tied]
    ranks += [Rank(a, len(tied) + i + 1, False, ordinal(len(tied) + i + 1)) for i, a in enumerate(below)]
    return Ranking(tuple(ranks), None if group else first)
