"""A stored grid against the same runs trained one after another with the tutorial recipe.

``bench perf --grid RESULTS`` reads what a finished ``python -m bench`` invocation trained
(architectures, seeds, epochs, dataset: its ``config.json``) and its wall time, then trains
every one of those runs with the recipe, one after another, as a user without cnnbench
would: per run a fresh seeded model and Adam, ``epochs`` epochs over the DataLoader, and
after each epoch the tutorial's test pass (``model.eval()``, ``torch.no_grad()``, test
batches of 1000).  Both walls are measured; nothing is extrapolated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import BenchError
from .recipe import RecipeSession

TEST_BATCH = 1000  # pytorch/examples mnist's --test-batch-size
ALL_RUNS_ROW = "all runs"


@dataclass(frozen=True)
class StoredGrid:
    """The runs a finished invocation trained, and how long it took."""

    out: Path
    dataset: str
    archs: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int
    batch_size: int
    wall_seconds: float

    @property
    def runs(self) -> list[tuple[str, int]]:
        return [(arch, seed) for arch in self.archs for seed in self.seeds]


def read_grid(out: Path) -> StoredGrid:
    """The grid stored in ``out``; one ``BenchError`` line when it cannot be compared."""
    from ..report.load import load  # the report's validation: one line per problem

    stored = load(Path(out))
    inv = stored.invocation
    grid, base = inv.get("grid") or {}, inv.get("base_config") or {}
    if len(grid.get("datasets", [])) != 1:
        raise BenchError(f"{out}: --grid compares a grid over one dataset, this one has {grid.get('datasets')}")
    if inv.get("reused_runs") or inv.get("interrupted") or inv.get("trained_runs") != len(inv.get("run_ids", [])):
        raise BenchError(
            f"{out}: its wall time does not cover the whole grid (runs were reused or it was "
            "interrupted); rerun it with --force into a fresh --out to time it")
    return StoredGrid(
        out=Path(out), dataset=grid["datasets"][0], archs=tuple(grid["archs"]),
        seeds=tuple(int(s) for s in grid["seeds"]), epochs=int(base["epochs"]),
        batch_size=int(base["batch_size"]), wall_seconds=float(inv["wall_seconds"]),
    )


def tutorial_test_pass(model: torch.nn.Module, test_loader, device: str) -> tuple[float, int]:
    """The tutorial's ``test()``: summed loss and correct count over the test set."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            loss += F.cross_entropy(output, target, reduction="sum").item()
            correct += (output.argmax(1) == target).sum().item()
    model.train()
    return loss, correct


def sequential_recipe(
    grid: StoredGrid, loader, test_loader, device: str,
    on_run: Callable[[str, int, float], None] | None = None,
) -> list[tuple[str, int, float]]:
    """Train every run of ``grid`` with the recipe, one after another: (arch, seed, seconds)."""
    timings = []
    for arch, seed in grid.runs:
        t0 = time.perf_counter()
        session = RecipeSession(arch, loader, device=device, seed=seed)
        for _ in range(grid.epochs):
            session.block(None)
            tutorial_test_pass(session.model, test_loader, device)
        seconds = time.perf_counter() - t0
        timings.append((arch, seed, seconds))
        if on_run is not None:
            on_run(arch, seed, seconds)
    return timings


def grid_table(timings: list[tuple[str, int, float]], grid: StoredGrid) -> pd.DataFrame:
    """One row per recipe run, then the total against the grid's wall time."""
    rows = pd.DataFrame(timings, columns=["arch", "seed", "recipe_seconds"])
    total = pd.DataFrame([{"arch": ALL_RUNS_ROW, "seed": pd.NA, "recipe_seconds": rows["recipe_seconds"].sum()}])
    table = pd.concat([rows, total], ignore_index=True)
    table["epochs"] = grid.epochs
    table["grid_wall_seconds"] = grid.wall_seconds
    table["speedup"] = float("nan")  # only the total compares with the grid's wall time
    table.loc[table.index[-1], "speedup"] = table["recipe_seconds"].iloc[-1] / grid.wall_seconds
    table["grid"] = str(grid.out)
    return table
