"""The answer box's last line: which network to use, derived from the verdicts and the costs.

The rule, in order:

1. Fewer than three seeds: nothing is recommended (no interval is trustworthy); the line gives
   the command with three seeds.
2. The contenders are the networks no other is decided more accurate than.  Of those, the
   cheapest - the earliest median time to the target accuracy, then the fastest epochs, then
   the fewest parameters - is recommended.  Beyond clean accuracy, a contender another contender
   beats on some evaluation's axis and loses to on none (``robust``: ``axes.prefer_robust``) is
   left out, and the line says why.
3. When a network with a higher mean is undecided against it, the line says so and gives the
   ``--until-decided`` command that would settle it (at the seeds the power analysis asks for);
   when only the test set could settle it, it says that instead.
4. When most runs were still improving, the line adds the command with twice the epochs.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

import pandas as pd

from ..stats import BETTER, EQUIVALENT, UNDECIDED, WORSE, Comparison
from ..stats.methods import MIN_TRUSTED_SEEDS
from ..stats.sentences import pp
from .format import seconds

# Beyond this many seeds per network, a command to settle a comparison is not one anyone runs.
MAX_SETTLE_SEEDS = 60


@dataclass(frozen=True)
class Recommendation:
    text: str
    arch: str | None  # None: nothing can be recommended yet
    # (command, what it would do): what would settle what is still open
    next_steps: tuple[tuple[str, str], ...] = ()

    @property
    def command(self) -> str:
        return self.next_steps[0][0] if self.next_steps else ""

    @property
    def line(self) -> str:
        """The whole recommendation as one line of text (the console's, the tests')."""
        return " ".join([self.text] + [f"{cmd} {what}." for cmd, what in self.next_steps])


def costs(board: pd.DataFrame, to_target: dict[str, float]) -> pd.DataFrame:
    """Per network: median seconds to the target (inf: never reached), mean epoch seconds, params."""
    frame = board.set_index("arch")[["mean", "mean_epoch_seconds", "params", "seeds"]].copy()
    frame["to_target"] = [to_target.get(a, math.nan) for a in frame.index]
    return frame


def cheapest_first(frame: pd.DataFrame, names: list[str]) -> list[str]:
    def key(a: str) -> tuple[float, float, float, str]:
        row = frame.loc[a]
        return (_num(row["to_target"]), _num(row["mean_epoch_seconds"]), _num(row["params"]), a)
    return sorted(names, key=key)


def _num(x) -> float:
    return math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def recommend(board: pd.DataFrame, against: dict[str, list[Comparison]], to_target: dict[str, float],
              target: float | None, margin: float, command: str, still_improving: bool,
              levels: dict[str, str] | None = None, robust=None) -> Recommendation | None:
    """``against[a]``: every other network compared with ``a`` as the reference (Holm across them)."""
    if len(board) < 2:
        return None
    levels = levels or {}
    frame = costs(board, to_target)
    seeds = int(frame["seeds"].min())
    if seeds < MIN_TRUSTED_SEEDS:
        cmd = with_seeds(command, MIN_TRUSTED_SEEDS)
        return Recommendation(f"No recommendation yet: {seeds} seed{'s' if seeds != 1 else ''} per network "
                              f"cannot support one; run {MIN_TRUSTED_SEEDS} or more.", None,
                              ((cmd, f"would train {MIN_TRUSTED_SEEDS} seeds of each"),))
    beaten = {a: [c for c in against[a] if c.verdict == BETTER] for a in frame.index}
    contenders = [a for a in frame.index if not beaten[a]]
    if not contenders:  # every network decided worse than some other: a cycle cannot happen, but be safe
        contenders = list(frame.index)
    contenders, robustness = robust(contenders) if robust is not None else (contenders, "")
    order = cheapest_first(frame, contenders)
    chosen = order[0]
    found = against[chosen]
    name = chosen + (f" ({levels[chosen]})" if levels.get(chosen) else "")
    open_ = [c for c in found if c.verdict == UNDECIDED and c.diff > 0]
    accuracy = _accuracy_reason(found, margin, bool(open_))
    cost = _cost_reason(frame, chosen, order, target)
    text = f"Use {name}: {accuracy}{', and ' + cost if cost else ''}{robustness}."
    steps = []
    if open_:
        rivals = ", ".join(c.arch for c in open_)
        most = max(c.ci_high for c in open_)
        bounded = math.isfinite(most) and most < 1.0
        text += (f" Still open: {rivals} {'has' if len(open_) == 1 else 'have'} a higher mean, undecided"
                 + (f" (up to {pp(most)} pp more accurate at the interval's end)." if bounded else "."))
        needed = [c.seeds_needed for c in open_ if c.seeds_needed is not None]
        if needed:
            seeds_to = min(max(max(needed), seeds + 1), MAX_SETTLE_SEEDS)
            steps.append((until_decided(command, seeds, seeds_to), "would settle it"))
        else:
            text += " More seeds cannot settle it: the test set is the limit."
    if still_improving:
        text += " Most runs were still improving at their last epoch."
        steps.append((with_epochs(command, 2), "would show whether more training changes this"))
    return Recommendation(text, chosen, tuple(steps))


def _accuracy_reason(found: list[Comparison], margin: float, open_: bool) -> str:
    verdicts = {c.verdict for c in found}
    within = f"±{margin * 100:g} pp"
    if verdicts <= {WORSE}:
        least = min(-c.ci_high for c in found)  # how much more accurate it is, at the least
        return f"it is more accurate than every other network (by at least {pp(least)} pp)"
    if verdicts <= {WORSE, EQUIVALENT}:
        return f"no network is more accurate (the others are equivalent within {within} or less accurate)"
    if open_:
        return f"no network is detectably more accurate (all within {within}, less accurate or undecided)"
    return f"no network is detectably more accurate (the others are equivalent within {within}, less accurate " \
           f"or undecided with a lower mean)"


def _cost_reason(frame: pd.DataFrame, chosen: str, contenders: list[str], target: float | None) -> str:
    row = frame.loc[chosen]
    parts = []
    others = [a for a in contenders if a != chosen]
    if not others:
        return ""
    epoch = _num(row["mean_epoch_seconds"])
    fastest = min(_num(frame.loc[a, "mean_epoch_seconds"]) for a in contenders)
    if math.isfinite(epoch) and epoch <= fastest:
        parts.append(f"of those it has the fastest epochs ({seconds(epoch)})")
    reach = _num(row["to_target"])
    if target is not None and math.isfinite(reach):
        first = min(_num(frame.loc[a, "to_target"]) for a in contenders)
        if reach <= first:
            parts.append(f"reaches {target * 100:.2f}% validation accuracy first ({seconds(reach)}, median)")
    if not parts and math.isfinite(epoch):
        parts.append(f"is the cheapest of them ({seconds(epoch)} epochs)")
    return " and ".join(parts)


def _words(command: str) -> list[str]:
    return shlex.split(command) if command else ["python", "-m", "bench"]


def _drop(words: list[str], flags: dict[str, bool]) -> list[str]:
    """``words`` without ``flags`` (flag -> whether it takes a value)."""
    kept, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        if w in flags:
            skip = flags[w]
            continue
        kept.append(w)
    return kept


def until_decided(command: str, round_seeds: int, max_seeds: int) -> str:
    """The grid's command, adding seeds in rounds until every comparison is decided."""
    words = _drop(_words(command), {"--seed-list": True, "--seeds": True, "--until-decided": False,
                                    "--max-seeds": True})
    round_seeds = max(round_seeds, 1)
    max_seeds = round_seeds * math.ceil(max_seeds / round_seeds)
    return _join(words + ["--seeds", str(round_seeds), "--until-decided", "--max-seeds", str(max_seeds)])


def with_seeds(command: str, seeds: int) -> str:
    words = _drop(_words(command), {"--seed-list": True, "--seeds": True})
    return _join(words + ["--seeds", str(seeds)])


def with_epochs(command: str, factor: int) -> str:
    words = _words(command)
    epochs = next((int(b) for a, b in zip(words, words[1:]) if a == "--epochs" and b.isdigit()), None)
    words = _drop(words, {"--epochs": True})
    return _join(words + ["--epochs", str(factor * epochs if epochs else 10)])


def _join(words: list[str]) -> str:
    # Placeholders the reproduce command names as shell variables stay unquoted variables.
    return " ".join(f'"{w}"' if w.startswith("$") else shlex.quote(w) for w in words)
