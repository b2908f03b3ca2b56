"""The evaluation registry: one decorator declares what an evaluation measures and stores.

An evaluation is one function ``(subject, test) -> Measured``: it gets the tested weights
(``subject.Subject``: logits of uint8 images) and the test split (``EvalSet``), and returns
per-run numbers, optionally which images it got right (per-image results pair comparisons
by seed and image, like ``test_correct``), and details the report draws (JSON).  Its
``Output`` declarations are its ``runs.csv`` columns (``bench.schema.RUNS`` lists them) and,
for those compared, the ``bench.stats.metrics.Metric`` the verdicts use.  Evaluations are not
part of a run's identity: adding or rerunning one never retrains anything.

This module imports nothing heavy: the schema asks it for columns before torch is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BenchError
from ..schema import RUNS, Column, declare_columns

INF = math.inf


@dataclass(frozen=True)
class Output:
    """One number an evaluation stores per run: a ``runs.csv`` column (a family when its name
    holds ``<...>``), and, when ``compared``, a metric with verdicts like test accuracy."""

    name: str
    doc: str
    label: str = ""  # plain words for the report: "shift consistency"
    unit: str = "%"
    delta_unit: str = "pp"
    scale: float = 100.0
    low: float = 0.0
    high: float = 1.0
    higher_is_better: bool = True
    margin: float = 0.005  # stored units: differences within ±margin count as the same
    digits: int = 2
    compared: bool = False  # verdicts, factor effects and the answer box weigh it
    per_image: bool = False  # the evaluation returns its per-image values under this name

    def column(self) -> Column:
        return Column(self.name, "float", self.doc)

    def metric(self):
        """The ``bench.stats.metrics.Metric`` of this output, registered on first use."""
        from ..stats.metrics import METRICS, Metric, register_metric

        if self.name not in METRICS:
            register_metric(Metric(self.name, self.label or self.name.replace("_", " "), self.unit,
                                   self.delta_unit, scale=self.scale, low=self.low, high=self.high,
                                   higher_is_better=self.higher_is_better, margin=self.margin,
                                   digits=self.digits))
        return METRICS[self.name]


@dataclass
class Measured:
    """What one evaluation of one run returns.

    ``values``: column -> number (every column is a declared ``Output`` or a member of one);
    ``per_image``: column -> per-image values in [0, 1], each a multiple of 1/``denominators``
    (booleans: 1), in a fixed image order, so that runs pair by image; ``details``: JSON-able
    data the report draws (reliability bins, per-class tables).
    """

    values: dict[str, float]
    per_image: dict[str, Any] = field(default_factory=dict)  # column -> numpy array
    denominators: dict[str, int] = field(default_factory=dict)  # column -> 1/step of its values
    details: dict[str, Any] = field(default_factory=dict)


Evaluate = Callable[..., Measured]
Examples = Callable[..., dict]


@dataclass(frozen=True)
class Evaluation:
    name: str
    evaluate: Evaluate  # (subject.Subject, EvalSet) -> Measured
    outputs: tuple[Output, ...]
    description: str
    default: bool = True  # run by a grid unless --evaluations says otherwise
    # (uint8 images, EvalSet) -> {caption: uint8 images}: what the report shows was tested
    examples: Examples | None = None

    def output(self, column: str) -> Output | None:
        for out in self.outputs:
            if out.name == column or (out.column().pattern is not None and out.column().pattern.match(column)):
                return out
        return None


EVALUATIONS: dict[str, Evaluation] = {}


def register_evaluation(name: str, *, outputs: tuple[Output, ...] | list[Output], description: str,
                        default: bool = True, examples: Examples | None = None) -> Callable[[Evaluate], Evaluate]:
    """Decorator: register ``fn`` as the evaluation ``name`` with its ``outputs`` (its columns)."""
    def decorate(fn: Evaluate) -> Evaluate:
        # Its wall time first, declared one by one (not as a family) so ``schema.varying`` names it.
        seconds = Column(f"evaluation_seconds_{name}", "float", f"wall time of evaluation {name} on the tested "
                                                                 "weights", varies=True)
        declare_columns(RUNS, [seconds, *(o.column() for o in outputs)], owner=f"evaluation {name}")
        EVALUATIONS[name] = Evaluation(name, fn, tuple(outputs), description, default, examples)
        return fn

    return decorate


def unregister_evaluation(name: str) -> None:
    """Forget an evaluation (tests define their own)."""
    if EVALUATIONS.pop(name, None) is not None:
        declare_columns(RUNS, [], owner=f"evaluation {name}")


def get_evaluation(name: str) -> Evaluation:
    try:
        return EVALUATIONS[name]
    except KeyError:
        raise BenchError(f"unknown evaluation {name!r}; known: {', '.join(EVALUATIONS) or 'none'}") from None


def default_evaluations() -> tuple[str, ...]:
    return tuple(name for name, e in EVALUATIONS.items() if e.default)


def resolve_evaluations(text: str | None) -> tuple[str, ...]:
    """``--evaluations``: a comma list of names, ``default``, ``all`` or ``none``."""
    if text is None or text.strip() == "default":
        return default_evaluations()
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return ()
    if names == ["all"]:
        return tuple(EVALUATIONS)
    for n in names:
        get_evaluation(n)
    return tuple(dict.fromkeys(names))


def compared_outputs() -> list[Output]:
    """Every compared output of every registered evaluation, in declaration order."""
    return [o for e in EVALUATIONS.values() for o in e.outputs if o.compared]


def register_metrics() -> None:
    """Register every compared output's ``Metric`` (imports the statistics: call it where they run)."""
    for out in compared_outputs():
        out.metric()


def output_of(column: str) -> Output | None:
    for e in EVALUATIONS.values():
        found = e.output(column)
        if found is not None:
            return found
    return None
