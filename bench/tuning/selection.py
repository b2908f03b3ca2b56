"""Trials from candidate points, the tuning table, and each architecture's choice.

The choice reads validation accuracy only (``best_val_acc``): the test set never
influences it.  Trials are ordinary RunConfigs with their own seeds, so they are cached,
resumed and verified like every other run.
"""

from __future__ import annotations

import math

import pandas as pd

from ..config import RunConfig
from ..learning import record_learning
from .space import SearchSpace

TUNE_SEED_BASE = 1000  # trial seeds start here: disjoint from the comparison's 0, 1, ...


def trial_configs(bases: list[RunConfig], points: list[dict], epochs: int, seeds: int,
                  fraction: float) -> list[RunConfig]:
    """Every base (one per architecture and dataset) at every point, each point with its own seeds
    (the same for every architecture, so trials pair like the comparison's runs)."""
    trials = []
    for base in bases:
        for i, point in enumerate(points):
            for j in range(seeds):
                trial = base.replace(seed=TUNE_SEED_BASE + i * seeds + j, epochs=epochs, train_fraction=fraction,
                                     warmup_epochs=min(base.warmup_epochs, epochs - 1))
                trials.append(trial.replace(**point))
    return trials


def trial_index(cfg: RunConfig, seeds: int) -> int:
    return (cfg.seed - TUNE_SEED_BASE) // seeds


def tuning_table(trials: list[RunConfig], records: dict, space: SearchSpace, seeds: int) -> pd.DataFrame:
    """One row per finished trial (``records``: run id -> RunRecord), with the choice marked."""
    rows = []
    for cfg in trials:
        record = records.get(cfg.run_id())
        if record is None:
            continue
        rows.append({
            "dataset": cfg.dataset, "arch": cfg.arch, "trial": trial_index(cfg, seeds), "seed": cfg.seed,
            "run_id": cfg.run_id(), "status": record.status, "learning": record_learning(record),
            **{f"param_{name}": getattr(cfg, name) for name in space.names},
            "val_acc": float(record.summary.get("best_val_acc", math.nan)),
            "seconds": float(record.summary.get("total_seconds", math.nan)),
        })
    return mark_choices(pd.DataFrame(rows), space.names)


def mark_choices(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Add ``chosen`` and ``edge``: per architecture and dataset, the point of highest mean
    validation accuracy over its seeds (a failed or diverged trial counts as the worst)."""
    table = table.copy()
    table["chosen"] = False
    table["edge"] = ""
    if table.empty:
        return table
    for _, group in table.groupby(["dataset", "arch"], sort=False):
        score = group["val_acc"].fillna(-math.inf).groupby(group["trial"]).mean()
        if not (score > -math.inf).any():
            continue  # nothing learned a validation accuracy: no choice (the base config stays)
        best = int(score[score == score.max()].index.min())
        rows = group.index[group["trial"] == best]
        table.loc[rows, "chosen"] = True
        edges = [n for n in names
                 if group.loc[rows[0], f"param_{n}"] in (group[f"param_{n}"].min(), group[f"param_{n}"].max())]
        table.loc[rows, "edge"] = ",".join(edges)
    return table


def choices(table: pd.DataFrame, names: list[str]) -> dict[tuple[str, str], dict]:
    """(dataset, arch) -> the chosen point's values (cast back to the config's types)."""
    chosen = {}
    for (dataset, arch), group in table[table["chosen"]].groupby(["dataset", "arch"], sort=False):
        row = group.iloc[0]
        chosen[(dataset, arch)] = {n: _as_field(n, row[f"param_{n}"]) for n in names}
    return chosen


def _as_field(name: str, value):
    default = RunConfig.__dataclass_fields__[name].default
    return int(value) if isinstance(default, int) and not isinstance(default, bool) else float(value)
