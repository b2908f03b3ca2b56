"""The report's Tuning section: what each architecture's tuning found, what it cost, and
whether the ranking would hold at half the budget (Dodge et al.'s expected best).

It reads ``tuning.csv`` and config.json's ``tuning`` (stored files only); a grid run with
--no-tune has neither, and no section.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..schema import TUNING
from ..tuning.expected_max import expected_max, expected_max_curve
from ..tuning.protocol import protocol_sentence
from . import tuning_figures
from .format import pct, seconds

if TYPE_CHECKING:
    from .sections import DatasetView, Section


def load_tuning(out: Path) -> pd.DataFrame | None:
    """tuning.csv, or None when the grid was not tuned or the table is not ours."""
    path = Path(out) / TUNING.file
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    if any(c not in table.columns for c in TUNING.required):
        return None
    table["chosen"] = table["chosen"].astype(str).str.lower() == "true"
    return table


def point_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture and candidate point: mean validation accuracy over its seeds."""
    params = [c for c in table.columns if c.startswith("param_")]
    return (table.groupby(["arch", "trial"], sort=False)
            .agg(**{p: (p, "first") for p in params}, val_acc=("val_acc", "mean"), chosen=("chosen", "any"),
                 seconds=("seconds", "sum"), edge=("edge", "first"))
            .reset_index())


def ranking_at(points: pd.DataFrame, archs: list[str], n: int) -> list[str]:
    """Architectures by expected best validation accuracy of ``n`` trials, best first."""
    best = {a: expected_max(points.loc[points["arch"] == a, "val_acc"], n) for a in archs}
    return sorted((a for a in archs if best[a] == best[a]), key=lambda a: -best[a])


def half_budget_line(points: pd.DataFrame, archs: list[str]) -> str:
    """Whether the ranking by expected best validation accuracy at N trials holds at N/2: its top,
    and which pairs swap."""
    trials = int(points.groupby("arch")["trial"].nunique().min())
    half = max(trials // 2, 1)
    full, halved = ranking_at(points, archs, trials), ranking_at(points, archs, half)
    order = " > ".join(full)
    if half == trials or len(full) < 2:
        return f"Ranking by expected best validation accuracy at {trials} trial(s): {order}."
    if full == halved:
        return (f"The ranking by expected best validation accuracy ({order}) holds at half the budget "
                f"({half} of {trials} trials).")
    place = {a: i for i, a in enumerate(halved)}
    swapped = [f"{a}/{b}" for i, a in enumerate(full) for b in full[i + 1:] if place.get(a, 0) > place.get(b, 0)]
    pairs = len(full) * (len(full) - 1) // 2
    if full[0] != halved[0]:
        return (f"The ranking by expected best validation accuracy changes its top at half the budget: "
                f"{full[0]} at {trials} trials, {halved[0]} at {half}: the tuning budget decides which is best "
                f"({len(swapped)} of {pairs} pairs swap).")
    return (f"At half the budget ({half} of {trials} trials) the ranking by expected best validation accuracy "
            f"keeps its top ({full[0]}) and swaps {len(swapped)} of {pairs} pairs: {', '.join(swapped)}.")


def tuning(v: DatasetView) -> Section | None:
    from .sections import Section

    table = load_tuning(v.stored.out)
    if table is None:
        return None
    table = table[table["dataset"] == v.dataset]
    if table.empty:
        return None
    described = v.stored.invocation.get("tuning") or {}
    params = [c.removeprefix("param_") for c in table.columns if c.startswith("param_")]
    archs = [a for a in v.stored.archs if a in set(table["arch"])]
    points = point_table(table)
    rows = []
    for arch in archs:
        mine = points[points["arch"] == arch]
        chosen = mine[mine["chosen"]]
        row: dict[str, Any] = {"arch": arch, "trials": len(mine), "seconds": seconds(float(mine["seconds"].sum())),
                               "stuck": int((table[(table["arch"] == arch)]["learning"].astype(str) == "False").sum())}
        if chosen.empty:
            row.update(chosen="none (no trial finished)", val_acc="", edge="")
        else:
            best = chosen.iloc[0]
            row.update(chosen=", ".join(f"{p} {best[f'param_{p}']:.3g}" for p in params),
                       val_acc=pct(best["val_acc"]), edge=str(best["edge"]) if isinstance(best["edge"], str) else "")
        rows.append(row)
    curves = {a: pd.DataFrame(expected_max_curve(points.loc[points["arch"] == a, "val_acc"])) for a in archs}
    context = {
        "protocol": protocol_sentence(v.stored.invocation),
        "space": described.get("space", ", ".join(params)),
        "epochs": described.get("epochs"), "seeds": described.get("seeds"),
        "fraction": described.get("train_fraction"),
        "wall": seconds(float(described["wall_seconds"])) if described.get("wall_seconds") else None,
        "rows": rows, "verdict": half_budget_line(points, archs),
        "sensitivity": v.figure(tuning_figures.sensitivity, "tuning-sensitivity", points, params, archs, v.styles),
        "expected": v.figure(tuning_figures.expected_best, "tuning-expected-best", curves, v.styles),
    }
    return Section("tuning", "Tuning", v.dataset, context)


def tuning_seconds(out: Path, dataset: str) -> dict[str, float]:
    """Per architecture, the seconds its tuning trials took (for the cost section)."""
    table = load_tuning(out)
    if table is None:
        return {}
    table = table[table["dataset"] == dataset]
    return {str(a): float(s) for a, s in table.groupby("arch", sort=False)["seconds"].sum().items()}
