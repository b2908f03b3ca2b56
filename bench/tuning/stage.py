"""The tuning stage: train every architecture at the same candidate points, choose by
validation accuracy, and hand the comparison each architecture's chosen configuration.

``bench.commands.run`` calls ``run_tuning`` once before the comparison, with a function
that trains a list of configs into a folder (its own ``train_grid``): trials go through the
runner like any grid, into ``OUT/tuning/`` (a cnnbench output folder of its own, so
``verify`` and ``report`` work on it), and never mix with the comparison's tables.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..config import RunConfig
from ..errors import BenchError
from ..schema import TUNING
from ..storage import atomic_write_text
from .selection import choices, trial_configs, tuning_table
from .space import SearchSpace, default_space
from .study import candidate_points, record_values

TUNING_DIR = "tuning"  # OUT/tuning: the trials' runs and tables
STUDY_FILE = "optuna.db"


def space_of(args: argparse.Namespace) -> SearchSpace:
    return args.tune_space if getattr(args, "tune_space", None) is not None else default_space(args.optimizer)


def storage_of(args: argparse.Namespace, out: Path) -> str:
    return args.tune_storage or f"sqlite:///{(Path(out) / STUDY_FILE).absolute()}"


@dataclass
class Tuning:
    """What the stage found: the trials' table, each architecture's choice, what it cost."""

    space: SearchSpace
    trials: int
    epochs: int
    seeds: int
    fraction: float
    storage: str
    table: pd.DataFrame
    chosen: dict[tuple[str, str], dict] = field(default_factory=dict)
    wall_seconds: float = 0.0
    interrupted: object | None = None  # the runner's Interrupted, when a signal stopped the stage
    outcome: object | None = None  # the trials' GridOutcome

    def apply(self, configs: list[RunConfig]) -> list[RunConfig]:
        """The comparison's configs, each at its architecture's chosen point."""
        return [c.replace(**self.chosen.get((c.dataset, c.arch), {})) for c in configs]

    def describe(self) -> dict:
        """What config.json records under ``tuning``."""
        return {
            "space": self.space.text(), "trials": self.trials, "epochs": self.epochs, "seeds": self.seeds,
            "train_fraction": self.fraction, "storage": self.storage, "sampler": "optuna QMCSampler (sobol, scrambled)",
            "tuned": self.space.names, "wall_seconds": self.wall_seconds,
            "trial_seconds": float(self.table["seconds"].sum()) if not self.table.empty else 0.0,
            "chosen": [{"dataset": d, "arch": a, **params} for (d, a), params in self.chosen.items()],
            "run_ids": list(self.table["run_id"]) if not self.table.empty else [],
        }


def run_tuning(args: argparse.Namespace, bases: list[RunConfig], out: Path,
               train: Callable[[list[RunConfig], Path], object], say: Callable[[str], None]) -> Tuning:
    """Tune ``bases`` (one config per architecture and dataset) as ``args`` asks."""
    t0 = time.perf_counter()
    space, storage = space_of(args), storage_of(args, out)
    points = _study_call(storage, candidate_points, storage, space, args.tune_trials, args.tune_sampler_seed)
    trials = trial_configs(bases, points, args.tune_epochs, args.tune_seeds, args.tune_fraction)
    archs = len({(c.dataset, c.arch) for c in bases})
    if getattr(args, "lr", None) is not None and "lr" in space.names:
        say(f"--lr {args.lr:g} is not used: the learning rate is tuned (--no-tune trains at it)")
    say(f"tuning {space.text()}: {archs} architecture(s) x {len(points)} candidate points x {args.tune_seeds} "
        f"seed(s) = {len(trials)} trials of {args.tune_epochs} epoch(s) on {args.tune_fraction:g} of the "
        f"training split, in {Path(out) / TUNING_DIR}")
    outcome = train(trials, Path(out) / TUNING_DIR)
    records = {r.run_id: r for r in outcome.records}
    table = tuning_table(trials, records, space, args.tune_seeds)
    tuning = Tuning(space, args.tune_trials, args.tune_epochs, args.tune_seeds, args.tune_fraction, storage, table,
                    interrupted=outcome.interrupted, outcome=outcome)
    if outcome.interrupted is not None:
        return tuning
    tuning.chosen = choices(table, space.names)
    tuning.wall_seconds = time.perf_counter() - t0
    atomic_write_text(Path(out) / TUNING.file, table.to_csv(index=False))
    _study_call(storage, record_values, storage, space, args.tune_sampler_seed, _values_by_point(table))
    stuck = int((table["learning"] == False).sum()) if not table.empty else 0  # noqa: E712 (None: not ok)
    if stuck:
        say(f"{stuck} of {len(table)} trials stayed at chance accuracy (not learning at their point)")
    for line in choice_lines(table, space.names):
        say(line)
    return tuning


def _study_call(storage: str, function, *args):
    """``function(*args)`` on the Optuna study; a storage that cannot be opened or used is one line."""
    try:
        return function(*args)
    except BenchError:
        raise
    except Exception as exc:  # optuna and SQLAlchemy raise many kinds; the user needs the one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"the tuning study at {storage} cannot be used: {first} (see --tune-storage)") from None


def _values_by_point(table: pd.DataFrame) -> dict[int, dict[str, float]]:
    means = table.groupby(["trial", "dataset", "arch"], sort=False)["val_acc"].mean()
    values: dict[int, dict[str, float]] = {}
    for (trial, dataset, arch), value in means.items():
        values.setdefault(int(trial), {})[f"{dataset}/{arch}"] = float(value)
    return values


def choice_lines(table: pd.DataFrame, names: list[str]) -> list[str]:
    """Per architecture: its chosen values and validation accuracy, and any edge flag."""
    lines = []
    for (dataset, arch), group in table.groupby(["dataset", "arch"], sort=False):
        chosen = group[group["chosen"]]
        if chosen.empty:
            lines.append(f"tuned {arch} on {dataset}: no trial finished with a validation accuracy; "
                         "it trains at the untuned setting")
            continue
        row = chosen.iloc[0]
        values = ", ".join(f"{n} {row[f'param_{n}']:.3g}" for n in names)
        lines.append(f"tuned {arch} on {dataset}: {values} (validation {chosen['val_acc'].mean():.2%}, "
                     f"trial {int(row['trial'])} of {group['trial'].nunique()})")
        if row["edge"]:
            lines.append(f"  {arch}: the chosen {row['edge']} is the {'/'.join(_which_edge(group, row, names))} "
                         "tried: the range may be too narrow (widen --tune-space)")
    return lines


def _which_edge(group: pd.DataFrame, row, names: list[str]) -> list[str]:
    sides = []
    for n in str(row["edge"]).split(","):
        column = group[f"param_{n}"]
        sides.append("lowest" if row[f"param_{n}"] == column.min() else "highest")
    return sides
