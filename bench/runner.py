"""Running a grid: reuse finished runs, execute the rest, store each as it finishes.

The runner is the only writer of an output directory.  Records are saved the moment a
run finishes, and the tables are rebuilt from records, so an interruption loses at most
the runs in flight.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import RunConfig
from .executors import Executor
from .records import STATUS_FAILED, RunRecord
from .storage import load_record, save_record, write_tables
from .tasks import DataRequest, RunTask
from .train import EpochCallback


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; what was finished has been kept."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class GridOutcome:
    records: list[RunRecord]
    reused: int
    trained: int
    wall_seconds: float
    interrupted: Interrupted | None = None
    failed: list[RunRecord] = field(default_factory=list)


def plan(configs: Sequence[RunConfig], out: Path, force: bool) -> tuple[dict[str, RunRecord], list[RunConfig]]:
    """Split the grid into finished records to reuse and configs still to run.

    A failed run is retried; an ``ok`` or ``diverged`` one is an answer and is reused.
    """
    finished: dict[str, RunRecord] = {}
    todo: list[RunConfig] = []
    for cfg in configs:
        record = None if force else load_record(out, cfg.run_id())
        if record is not None and record.status != STATUS_FAILED:
            finished[cfg.run_id()] = record
        else:
            todo.append(cfg)
    return finished, todo


def run_grid(
    configs: Sequence[RunConfig],
    out: Path,
    executor: Executor,
    data: DataRequest,
    *,
    force: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_epoch: EpochCallback | None = None,
    on_run: Callable[[RunRecord], None] | None = None,
) -> GridOutcome:
    started = time.perf_counter()
    finished, todo = plan(configs, out, force)
    if on_start is not None:
        on_start(len(configs), len(finished))
    reused = len(finished)
    interrupted: Interrupted | None = None
    with _signals_raise_interrupted():
        try:
            results = executor.run([RunTask(cfg, data) for cfg in todo], on_epoch)
            try:
                for record in results:
                    save_record(out, record)
                    record.state_dict = record.misclassified = None  # stored; free the memory
                    finished[record.run_id] = record
                    if on_run is not None:
                        on_run(record)
            finally:
                results.close()  # cancel and reap workers, also when interrupted
        except Interrupted as exc:
            interrupted = exc
    # Tables hold the grid's finished runs in grid order, however the runs were scheduled.
    records = [finished[c.run_id()] for c in configs if c.run_id() in finished]
    if records:
        write_tables(out, records)
    return GridOutcome(
        records=records,
        reused=reused,
        trained=len(records) - reused,
        wall_seconds=time.perf_counter() - started,
        interrupted=interrupted,
        failed=[r for r in records if r.status == STATUS_FAILED],
    )


class _signals_raise_interrupted:
    """Turn SIGINT and SIGTERM into ``Interrupted`` in the main thread for a block."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self._previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s in self.SIGNALS:
            signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False

    @staticmethod
    def _handle(signum, _frame):
        # Ignore a second signal while we shut down and write what is finished.
        for s in _signals_raise_interrupted.SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)
