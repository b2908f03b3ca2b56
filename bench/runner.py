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
from typing import TYPE_CHECKING

from .checkpoint import checkpoint_plan
from .config import RunConfig
from .executors import Executor
from .records import STATUS_FAILED, RunRecord, failed_record
from .storage import (
    check_run, checkpoint_path, move_aside, remove_checkpoint, remove_temporaries,
    run_dir, save_record, write_tables,
)
from .tasks import DataRequest, RunTask
from .train import EpochCallback

if TYPE_CHECKING:
    from .planner import Plan


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; what was finished has been kept."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class DamagedRun:
    """A run whose stored folder could not be trusted: moved aside and trained again."""

    config: RunConfig
    problem: str
    moved_to: Path

    def message(self, out: Path) -> str:
        cfg = self.config
        return (f"damaged run {cfg.arch} {cfg.dataset} seed {cfg.seed} ({cfg.run_id()}): {self.problem}; "
                f"moved to {_relative(self.moved_to, out)}, training it again")


@dataclass
class GridOutcome:
    records: list[RunRecord]
    reused: int
    trained: int
    wall_seconds: float
    interrupted: Interrupted | None = None
    failed: list[RunRecord] = field(default_factory=list)
    damaged: list[DamagedRun] = field(default_factory=list)


@dataclass
class Plan:
    finished: dict[str, RunRecord]  # run id -> a record to reuse
    todo: list[RunConfig]
    damaged: list[DamagedRun]


def plan(configs: Sequence[RunConfig], out: Path, force: bool) -> Plan:
    """Split the grid into finished records to reuse and configs still to run.

    A failed run is retried; an ``ok`` or ``diverged`` one is an answer and is reused.  A
    damaged run folder (``storage.check_run``) is moved aside, not deleted, and retrained.
    """
    result = Plan({}, [], [])
    for cfg in configs:
        folder = check_run(out, cfg.run_id())
        if folder.problem is not None:
            result.damaged.append(DamagedRun(cfg, folder.problem, move_aside(out, cfg.run_id())))
        record = None if force else folder.record
        if record is not None and record.status != STATUS_FAILED:
            result.finished[cfg.run_id()] = record
            # A kill between storing the record and dropping the checkpoint left it behind.
            remove_checkpoint(out, cfg.run_id())
        else:
            result.todo.append(cfg)
    return result


def _relative(path: Path, out: Path) -> Path:
    try:
        return Path(path).relative_to(out)
    except ValueError:
        return Path(path)


def run_grid(
    configs: Sequence[RunConfig],
    out: Path,
    executor: Executor,
    data: DataRequest,
    *,
    force: bool = False,
    checkpoint_every: int | None = None,
    target: float | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_epoch: EpochCallback | None = None,
    on_run: Callable[[RunRecord], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    evaluations: tuple[str, ...] = (),
    packing: Plan | None = None,
) -> GridOutcome:
    """Train what ``configs`` still need into ``out``.

    ``checkpoint_every``: N saves each N epochs, 0 never, None the default policy
    (``bench.checkpoint.checkpoint_plan``).  ``on_note`` gets one-line messages for the
    console: damaged runs moved aside, workers that died, runs waiting for a cluster; an
    executor may call it from another thread.  ``evaluations`` run on each trained run's
    tested weights where it trains (``bench.evaluations``).
    ``packing``: which runs train together
    (``bench.planner.plan_grid``); None: every run alone.
    """
    started = time.perf_counter()
    planned = plan(configs, out, force)
    finished = planned.finished
    for damaged in planned.damaged:
        if on_note is not None:
            on_note(damaged.message(out))
    if on_start is not None:
        on_start(len(configs), len(finished))
    reused = len(finished)
    interrupted: Interrupted | None = None
    if checkpoint_every is None and not executor.sees_output_dir:
        checkpoint_every = 0  # a cluster's nodes may not see --out: save nowhere by default
    # Every run may resume from a checkpoint an interrupted attempt left (any run, even
    # with checkpoints off now); --force starts over.  The path is absolute: the process
    # that trains may not share this one's working directory (a Ray worker).
    tasks = [RunTask(cfg, data, checkpoint_plan(str(checkpoint_path(Path(out).absolute(), cfg.run_id())),
                                                checkpoint_every, resume=not force), tuple(evaluations))
             for cfg in planned.todo]
    with _signals_raise_interrupted() as signals:

        def epoch_event(cfg: RunConfig, epoch: dict[str, float]) -> None:
            signals.check()  # an Interrupted that was swallowed on its way (see below) is raised here
            if on_epoch is not None:
                on_epoch(cfg, epoch)

        try:
            results = executor.run(tasks, epoch_event, on_note, packing)
            try:
                for record in results:
                    record = _same_identity(record)
                    with signals.deferred():  # a signal now waits until the record is stored
                        save_record(out, record)
                        if record.status != STATUS_FAILED:  # a failed run may resume on retry
                            remove_checkpoint(out, record.run_id)
                        remove_temporaries(run_dir(out, record.run_id))  # left by a worker that was killed
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
                write_tables(out, records, target)
        if interrupted is None and signals.pending is not None:
            interrupted = Interrupted(signals.pending)
    return GridOutcome(
        records=records,
        reused=reused,
        trained=len(records) - reused,
        wall_seconds=time.perf_counter() - started,
        interrupted=interrupted,
        failed=[r for r in records if r.status == STATUS_FAILED],
        damaged=planned.damaged,
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
