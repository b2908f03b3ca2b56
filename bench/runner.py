"""Running a grid: reuse finished runs, execute the rest, store each as it finishes.

The runner is the only writer of an output directory.  Records are saved the moment a
run finishes, and the tables are rebuilt from records, so an interruption loses at most
the runs in flight.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import CheckpointPlan
from .config import RunConfig
from .executors import Executor
from .records import STATUS_FAILED, RunRecord, failed_record
from .storage import (
    checkpoint_path, default_targets, load_record, remove_checkpoint, save_record, write_tables,
)
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
    checkpoint_every: int = 0,
    target: float | None = None,
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
    # Every run may resume from a checkpoint an interrupted attempt left (any run, even
    # without --checkpoint-every now); --force starts over.
    tasks = [RunTask(cfg, data, CheckpointPlan(str(checkpoint_path(out, cfg.run_id())),
                                               every=checkpoint_every, resume=not force))
             for cfg in todo]
    with _signals_raise_interrupted() as signals:

        def epoch_event(cfg: RunConfig, epoch: dict[str, float]) -> None:
            signals.check()  # an Interrupted that was swallowed on its way (see below) is raised here
            if on_epoch is not None:
                on_epoch(cfg, epoch)

        try:
            results = executor.run(tasks, epoch_event)
            try:
                for record in results:
                    record = _same_identity(record)
                    with signals.deferred():  # a signal now waits until the record is stored
                        save_record(out, record)
                        if record.status != STATUS_FAILED:  # a failed run may resume on retry
                            remove_checkpoint(out, record.run_id)
                        finished[record.run_id] = record
                    record.state_dict = record.misclassified = None  # stored; free the memory
                    if on_run is not None:
                        on_run(record)
            finally:
                results.close()  # cancel and reap workers, also when interrupted
        except Interrupted as exc:
            interrupted = exc
        # Tables hold the grid's finished runs in grid order, however the runs were scheduled.
        # Still inside the handler: a second Ctrl-C is ignored while they are written.
        records = [finished[c.run_id()] for c in configs if c.run_id() in finished]
        if records:
            with signals.deferred(raise_after=False):
                targets = default_targets(records) if target is None else {
                    d: target for d in {r.config.dataset for r in records}}
                write_tables(out, records, targets)
        if interrupted is None and signals.pending is not None:
            interrupted = Interrupted(signals.pending)
    return GridOutcome(
        records=records,
        reused=reused,
        trained=len(records) - reused,
        wall_seconds=time.perf_counter() - started,
        interrupted=interrupted,
        failed=[r for r in records if r.status == STATUS_FAILED],
    )


def _same_identity(record: RunRecord) -> RunRecord:
    """The record, or a failed one when the worker named the run differently from us.

    A worker computes the run id from the architecture source it imported; if a module
    was edited after this grid started, that is a different network than the one asked
    for, and its result must not be stored under (or mistaken for) this run.
    """
    expected = record.config.run_id()
    if record.run_id == expected:
        return record
    return failed_record(record.config, (
        f"the architecture's source changed while the grid ran (the worker trained "
        f"{record.run_id}); rerun to train the current definition"), record.env)


class _signals_raise_interrupted:
    """Turn SIGINT and SIGTERM into ``Interrupted`` in the main thread for a block.

    Inside ``deferred()`` (while a record or table is being written) a signal is only
    noted, and raised when the write is done: what finished is always stored whole.
    Once a signal arrived, further ones are ignored while we shut down.

    A handler's exception surfaces in whatever the main thread runs at that moment, and a
    few places swallow it: a weakref callback or ``__del__`` (an import lock's cleanup,
    seen when SIGTERM came as the driver started its first run) only reports it to
    ``sys.unraisablehook``, and the grid trained on to the end.  So a swallowed
    ``Interrupted`` is not printed as a traceback but raised again at the next safe
    point: an epoch event (``check``) or the end of a write.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.pending: int | None = None
        self._deferring = False
        self._raised = False  # an Interrupted for ``pending`` is on its way to the runner

    def __enter__(self):
        self._previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s in self.SIGNALS:
            signal.signal(s, self._handle)
        self._previous_unraisable = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = self._previous_unraisable
        return False

    @contextmanager
    def deferred(self, raise_after: bool = True):
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if raise_after:
            self.check()

    def check(self) -> None:
        """Raise ``Interrupted`` if a signal arrived and its exception did not get through."""
        if self.pending is not None and not self._raised and not self._deferring \
                and threading.current_thread() is threading.main_thread():
            self._raised = True
            raise Interrupted(self.pending)

    def _handle(self, signum, _frame):
        if self.pending is not None:
            return  # a second signal while we shut down and write what is finished
        self.pending = signum
        if not self._deferring:
            self._raised = True
            raise Interrupted(signum)

    def _unraisable(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, Interrupted):
            self._raised = False  # swallowed: ``check`` raises it again at the next safe point
            return
        self._previous_unraisable(unraisable)
