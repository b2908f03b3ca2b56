"""An output directory's runs as a tracker sees them: config, tags, metrics, curves, confusion."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import BenchError
from ..schema import EPOCH_METRICS, KEY, OUTCOME, RUNS
from ..storage import read_invocation, read_tables

# Run-level columns that share a name with a per-epoch curve get a name of their own.
RENAMED_FINAL = {"train_seconds": "total_train_seconds", "train_images_per_s": "mean_train_images_per_s"}
TAG_PREFIX = "cnnbench."


@dataclass
class StoredRun:
    run_id: str
    arch: str
    dataset: str
    seed: int
    status: str
    params: dict[str, str]  # the run's config
    tags: dict[str, str]
    metrics: dict[str, float]  # final, one value each
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # name -> (epoch, value)
    confusion: list[list[int]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.arch} seed {self.seed}"


def read_runs(out: Path) -> tuple[dict[str, Any], list[StoredRun]]:
    """config.json and every run of the tables in ``out``, in table order."""
    out = Path(out)
    invocation = read_invocation(out)
    tables = read_tables(out)
    runs, epochs, confusion = tables["runs.csv"], tables["epochs.csv"], tables["confusion.csv"]
    if runs.empty:
        raise BenchError(f"{out / 'runs.csv'} holds no runs; nothing to export")
    config_names = [f.name for f in dataclass_fields(RunConfig) if f.name not in {k.name for k in KEY}]
    outcome = [c for c in OUTCOME if c.numeric]  # the run's results (and its size and cost)
    curve_names = [c.name for c in EPOCH_METRICS if c.numeric and c.name != "epoch"]
    datasets = invocation.get("datasets", {})
    stored = []
    for row in runs.to_dict("records"):
        run_id = str(row["run_id"])
        params = {"arch": str(row["arch"]), "dataset": str(row["dataset"]), "seed": str(row["seed"])}
        params |= {name: _text(row.get(name)) for name in config_names if name in row}
        tags = {f"{TAG_PREFIX}run_id": run_id, f"{TAG_PREFIX}status": str(row["status"]),
                f"{TAG_PREFIX}out": str(out.resolve())}
        for name in ("error", "family", "arch_digest", "torch_version", "device_name", "git_commit"):
            if _text(row.get(name)):
                tags[f"{TAG_PREFIX}{name}"] = _text(row.get(name))
        tags |= {f"{TAG_PREFIX}{k}": _text(v) for k, v in row.items() if str(k).startswith("factor_") and _text(v)}
        metrics = {RENAMED_FINAL.get(name, name): float(value) for name, value in row.items()
                   if RUNS.column(str(name)) in outcome and _finite(value)}
        mine = epochs[epochs["run_id"] == run_id].sort_values("epoch")
        curves = {name: [(int(e), float(v)) for e, v in zip(mine["epoch"], mine[name]) if _finite(v)]
                  for name in curve_names if name in mine}
        cells = confusion[confusion["run_id"] == run_id]
        classes = list(datasets.get(str(row["dataset"]), {}).get("classes", []))
        stored.append(StoredRun(run_id, str(row["arch"]), str(row["dataset"]), int(row["seed"]), str(row["status"]),
                                params, tags, metrics, {k: v for k, v in curves.items() if v},
                                _matrix(cells, len(classes)), classes))
    return invocation, stored


def grid_name(invocation: dict[str, Any], runs: list[StoredRun]) -> str:
    """The grid in words: ``cnnbench: lenet, dilated on mnist``."""
    grid = invocation.get("grid", {})
    archs = grid.get("archs") or list(dict.fromkeys(r.arch for r in runs))
    datasets = grid.get("datasets") or list(dict.fromkeys(r.dataset for r in runs))
    return f"cnnbench: {', '.join(archs)} on {', '.join(datasets)}"


def _matrix(cells, size: int) -> list[list[int]]:
    if cells.empty:
        return []
    size = max(size, int(cells["true"].max()) + 1, int(cells["predicted"].max()) + 1)
    matrix = [[0] * size for _ in range(size)]
    for t, p, c in zip(cells["true"], cells["predicted"], cells["count"]):
        matrix[int(t)][int(p)] = int(c)
    return matrix


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)
