"""The search space of the tuning stage: which RunConfig fields are tuned, over what range."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import DEFAULT_LR

# The fields a trial may tune, and whether each is searched on a log axis (a rate) or as an
# integer (epochs).
TUNABLE = {"lr": "log", "weight_decay": "log", "momentum": "linear", "warmup_epochs": "int"}
LR_SPAN = 10.0  # the default range: this many times either side of the optimizer's default rate


@dataclass(frozen=True)
class Param:
    name: str
    low: float
    high: float

    @property
    def scale(self) -> str:
        return TUNABLE[self.name]

    def distribution(self):
        from optuna.distributions import FloatDistribution, IntDistribution

        if self.scale == "int":
            return IntDistribution(int(self.low), int(self.high))
        return FloatDistribution(self.low, self.high, log=self.scale == "log")

    def text(self) -> str:
        return f"{self.name}={self.low:g}:{self.high:g}"


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]

    def distributions(self) -> dict:
        return {p.name: p.distribution() for p in self.params}

    def text(self) -> str:
        return ",".join(p.text() for p in self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]


def parse_space(text: str) -> SearchSpace:
    """``lr=1e-4:1e-2,weight_decay=1e-6:1e-3``: each tuned field with its low and high end.

    Raises ValueError with the reason (argparse turns it into one ``error:`` line).
    """
    params = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, bounds = part.partition("=")
        name = name.strip().replace("-", "_")
        if name not in TUNABLE:
            raise ValueError(f"cannot tune {name!r}; tunable: {', '.join(TUNABLE)}")
        low_text, colon, high_text = bounds.partition(":")
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            raise ValueError(f"{part!r}: expected {name}=LOW:HIGH") from None
        if not (eq and colon and math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"{part!r}: expected {name}=LOW:HIGH with LOW < HIGH")
        if TUNABLE[name] == "log" and low <= 0:
            raise ValueError(f"{part!r}: {name} is searched on a log axis, so LOW must be > 0")
        if low < 0:
            raise ValueError(f"{part!r}: {name} cannot be negative")
        if TUNABLE[name] == "int" and not (low.is_integer() and high.is_integer()):
            raise ValueError(f"{part!r}: {name} takes whole numbers")
        if any(p.name == name for p in params):
            raise ValueError(f"{name} is named twice in the search space")
        params.append(Param(name, low, high))
    if not params:
        raise ValueError("the search space is empty")
    return SearchSpace(tuple(params))


def default_space(optimizer: str) -> SearchSpace:
    """The learning rate, log-uniform within ``LR_SPAN`` times either side of the optimizer's
    default (Adam 1e-4..1e-2, SGD 1e-3..1e-1)."""
    lr = DEFAULT_LR[optimizer]
    return SearchSpace((Param("lr", lr / LR_SPAN, lr * LR_SPAN),))
