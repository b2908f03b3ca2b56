"""``--until-decided``: train seeds in rounds until every question the grid asks is decided.

The rounds are fixed before any result is seen: ``--seeds`` seeds a round, up to
``--max-seeds``.  After each round the questions (``bench.stats.evidence.questions``: factor
effects, or every architecture against the reference) are tested at the alpha that look
spends (``bench.stats.sequential``), so stopping once all are decided keeps the chance of a
false better/worse at alpha over all rounds.  Finished runs are reused, as always.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .schema import RUNS, STATUS_OK

if TYPE_CHECKING:  # scipy and torch load when a round is tested, not for --help
    from .records import RunRecord
    from .stats import Comparison, Look


@dataclass(frozen=True)
class SeedRounds:
    per_round: int
    max_seeds: int

    def look(self, index: int) -> Look:
        from .stats import Look

        return Look.regular(index, initial=self.per_round, per_round=self.per_round, max_seeds=self.max_seeds)

    def describe(self, looks: int) -> dict[str, Any]:
        """What config.json keeps, so the report tests at the same look."""
        return {"per_round": self.per_round, "max_seeds": self.max_seeds,
                "seeds": list(self.look(looks - 1).seeds)}


def look_of(plan: dict[str, Any]) -> Look:
    """The last look of a stored plan (``SeedRounds.describe``)."""
    from .stats import Look

    return Look(tuple(plan["seeds"]), int(plan["max_seeds"]))


def answers(records: list[RunRecord], *, margin: float, look: Look | None, baseline: str | None,
            order: list[str]) -> list[Comparison]:
    """Every question of every dataset of the grid, answered from ``records``."""
    from .stats.evidence import Evidence, default_reference, questions
    from .storage import tables_from_records

    ok = [r for r in records if r.status == STATUS_OK]
    if not ok:
        return []
    runs = tables_from_records(ok)[RUNS.file]
    correct = {r.run_id: r.test_correct for r in ok if r.test_correct is not None}
    found: list[Comparison] = []
    for _dataset, group in runs.groupby("dataset", sort=False):
        evidence = Evidence(group, correct, margin=margin, look=look)
        reference = baseline or default_reference(group, order)
        for comparisons in questions(evidence, reference, order, baseline is not None).values():
            found.extend(comparisons)
    return found

