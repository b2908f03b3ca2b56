"""Console output: a live rich display on a terminal, one short line per run elsewhere."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
    TimeRemainingColumn,
)

from .config import RunConfig
from .records import STATUS_OK, RunRecord


def run_label(cfg: RunConfig) -> str:
    return f"{cfg.arch} {cfg.dataset} seed {cfg.seed}"


class GridProgress:
    """Overall grid progress plus one bar per run in flight, with its latest metrics.

    Not on a terminal (CI, a pipe) it prints one line per finished run and nothing else.
    """

    def __init__(self, console: Console, total: int, reused: int) -> None:
        self.console = console
        self.live = console.is_terminal
        self.total = total
        self.done = reused
        self._runs: dict[str, int] = {}
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=console,
            transient=True,
            disable=not self.live,
        )
        self._grid = self._progress.add_task("grid", total=total, completed=reused, metrics="")

    def __enter__(self) -> GridProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def on_epoch(self, cfg: RunConfig, epoch: dict[str, float]) -> None:
        key = cfg.run_id()
        if key not in self._runs:
            self._runs[key] = self._progress.add_task(f"  {run_label(cfg)}", total=cfg.epochs, metrics="")
        val = "" if math.isnan(epoch["val_acc"]) else f" val acc {epoch['val_acc']:.4f}"
        self._progress.update(
            self._runs[key], completed=epoch["epoch"],
            metrics=f"loss {epoch['train_loss']:.4f}{val} {epoch['train_images_per_s']:,.0f} img/s",
        )

    def on_run(self, record: RunRecord) -> None:
        self.done += 1
        task = self._runs.pop(record.run_id, None)
        if task is not None:
            self._progress.remove_task(task)
        self._progress.update(self._grid, completed=self.done)
        self.console.print(f"[{self.done}/{self.total}] {describe_outcome(record)}", highlight=False, soft_wrap=True)


def describe_outcome(record: RunRecord) -> str:
    cfg, s = record.config, record.summary
    if record.status == STATUS_OK:
        return (f"{run_label(cfg)}: test acc {s['test_acc']:.4f} ({s['tested_weights']} weights, "
                f"epoch {s['best_epoch']}), {s['total_seconds']:.1f} s")
    return f"{run_label(cfg)}: {record.status}: {record.error}"
