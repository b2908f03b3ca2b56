"""The local executor: this process, or ``workers`` processes on this machine.

Small CNNs on a CPU scale better across processes with one thread each than across the
threads of one process, so on CPU the default is one worker per core; this process is one
of them.  On CUDA each worker trains on one GPU (shared round-robin when there are more
workers than GPUs).

A worker that dies (any signal, any exit) costs only the run it was training: its thread
starts a fresh worker and the run is tried again, up to ``retries`` times, then recorded
``failed`` with the cause (``bench.executors.worker``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from ..errors import BenchError
from ..fast.policy import CPU_RUN_THREADS
from ..planner import Plan, group_size
from ..records import RunRecord, failed_record
from ..tasks import RunTask, SeedGroupTask, WorkUnit, execute_unit
from ..user_networks import loaded_sources
from . import DEFAULT_RETRIES
from .base import EpochEvent, Executor, NoteEvent
from .worker import Worker, WorkerDied, WorkerError, die_with_parent, worker_gpu

__all__ = ["LocalExecutor", "default_workers", "die_with_parent", "threads_per_worker", "worker_gpu"]

WAIT_SECONDS = 0.2  # the driver waits for results in slices, forwarding progress meanwhile


def default_workers(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.device_count() if device == "cuda" else 1
    return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, workers: int | None = None, device: str = "cpu", seeds_together: int | None = None,
                 retries: int | None = None, stack_seeds: int = 1) -> None:
        if workers is not None and workers < 1:
            raise BenchError(f"--workers must be a positive integer, got {workers}")
        if seeds_together is not None and seeds_together < 1:
            raise BenchError(f"--seeds-together must be a positive integer, got {seeds_together}")
        self.device = device
        self.workers = workers or default_workers(device)
        # What was asked, as recorded; which runs train together the grid's plan says (bench.planner).
        self.seeds_together = group_size(device, seeds_together)
        self.stack_seeds = stack_seeds
        self.retries = DEFAULT_RETRIES if retries is None else retries
        if self.retries < 0:
            raise BenchError(f"--retries must be 0 or more, got {self.retries}")

    def describe(self) -> dict[str, object]:
        if self.device == "cpu":
            threads = CPU_RUN_THREADS  # tasks.execute trains every CPU run with this many
        else:
            threads = threads_per_worker(self.workers) if self.workers > 1 else torch.get_num_threads()
        return {"executor": self.name, "workers": self.workers, "threads_per_worker": threads,
                "seeds_together": self.seeds_together, "stack_seeds": self.stack_seeds, "retries": self.retries}

    def run(self, tasks: Sequence[RunTask], on_epoch: EpochEvent | None = None,
            on_note: NoteEvent | None = None, plan: Plan | None = None) -> Iterator[RunRecord]:
        if not tasks:
            return
        units = (plan or Plan()).units(tasks)
        if self.workers == 1 or (self.device == "cpu" and len(units) == 1):
            for unit in units:  # this process trains them: no worker to start
                yield from execute_unit(unit, on_epoch)
            return
        yield from self._run_pool(units, on_epoch, on_note)

    def _run_pool(self, units: Sequence[WorkUnit], on_epoch: EpochEvent | None,
                  on_note: NoteEvent | None) -> Iterator[RunRecord]:
        """Train ``units`` (runs, or seed groups) on the workers; records as they finish."""
        ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
        # Plain "cuda" with several GPUs: each worker sees one, round-robin (cuda:N: all on N).
        gpus = torch.cuda.device_count() if self.device == "cuda" else 0
        # On CPU this process trains too, as one of the workers: one process fewer holding
        # torch and the dataset, and one fewer to start.  On CUDA only workers train.
        here = self.device == "cpu"
        spawned = min(self.workers - 1, len(units) - 1) if here else min(self.workers, len(units))
        threads = threads_per_worker(self.workers)
        # One queue of runs that every trainer - each worker and this process - takes the
        # next run from when it is free.  A run is handed to a worker only as it starts, so a
        # run never waits behind a busy worker while this process is idle at the grid's end.
        work = _WorkQueue(units)
        first = work.take() if here else None  # this process starts at once; workers import torch first
        networks = loaded_sources()  # a spawned worker starts with the zoo only: the user's networks too
        pool = _Pool(work, self.retries, lambda slot: Worker(ctx, slot, threads, gpus, networks), on_note)
        pool.start(spawned)
        completed = False

        def forward_here(cfg, record):
            pool.drain(on_epoch)  # keep the workers' progress flowing meanwhile
            if on_epoch is not None:
                on_epoch(cfg, record)

        try:
            remaining = len(units)
            while remaining:
                records = pool.result(timeout=0)
                if records is None and here:
                    entry, first = first or work.take(), None
                    if entry is not None:
                        remaining -= 1
                        yield from execute_unit(entry.unit, forward_here)
                        continue
                pool.drain(on_epoch)
                if records is None:
                    records = pool.result(timeout=WAIT_SECONDS)
                    if records is None:
                        continue
                    pool.drain(on_epoch)
                remaining -= 1
                yield from records
            pool.drain(on_epoch)
            completed = True
        finally:
            # Interrupted or failed: do not wait for runs in flight to finish.
            pool.close(wait=completed)


@dataclass
class _Entry:
    unit: WorkUnit
    attempt: int = 0  # how many of its workers died so far


class _WorkQueue:
    """The units not yet started, taken one at a time by whichever trainer is free.

    A unit whose worker died goes back to the front, to be tried again first.
    """

    def __init__(self, units: Sequence[WorkUnit]) -> None:
        self._entries = deque(_Entry(unit) for unit in units)
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> _Entry | None:
        with self._lock:
            if self._closed or not self._entries:
                return None
            return self._entries.popleft()

    def retry(self, entry: _Entry) -> None:
        with self._lock:
            entry.attempt += 1
            self._entries.appendleft(entry)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True


class _Pool:
    """The spawned workers, one thread each, and what they hand back to the driver.

    Each thread keeps its worker busy with the next unit of ``work`` and puts the unit's
    records (or, once its retries are spent, failed records) on ``results`` and epoch events
    on ``events``, for the driver's thread.  A worker's death is said at once, by the thread
    itself (``on_note``): the driver's thread may be in the middle of an epoch of its own.
    A thread replaces a worker that died, and stops its worker before it ends: Linux sends
    a worker its parent-death signal when the *thread* that started it ends
    (``die_with_parent``).
    """

    def __init__(self, work: _WorkQueue, retries: int, start_worker: Callable[[int], Worker],
                 on_note: NoteEvent | None = None) -> None:
        self.work, self.retries, self._start_worker = work, retries, start_worker
        self.on_note = on_note
        self.results: queue.Queue[list[RunRecord]] = queue.Queue()
        self.events: queue.Queue[tuple] = queue.Queue()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers: set[Worker] = set()
        self._lock = threading.Lock()

    def start(self, count: int) -> None:
        for slot in range(count):
            thread = threading.Thread(target=self._feed, args=(slot,), name=f"cnnbench-feeder-{slot}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def result(self, timeout: float) -> list[RunRecord] | None:
        try:
            return self.results.get(timeout=timeout) if timeout > 0 else self.results.get_nowait()
        except queue.Empty:
            return None

    def drain(self, on_epoch: EpochEvent | None) -> None:
        while True:
            try:
                cfg, record = self.events.get_nowait()
            except queue.Empty:
                return
            if on_epoch is not None:
                on_epoch(cfg, record)

    def close(self, wait: bool) -> None:
        self.work.close()
        if not wait:
            self.stopping.set()
            with self._lock:
                workers = list(self._workers)
            # Signal only: the owning threads see their worker end, and they alone close its
            # pipe (closing it here too raced them: a double close raised EBADF over Ctrl-C).
            for worker in workers:
                worker.interrupt()
        for thread in self._threads:
            thread.join(timeout=30)

    def _feed(self, slot: int) -> None:
        worker: Worker | None = None
        try:
            while not self.stopping.is_set() and (entry := self.work.take()) is not None:
                try:
                    if worker is None:
                        worker = self._track(self._start_worker(slot))
                    records = worker.train(entry.unit, lambda cfg, rec: self.events.put((cfg, rec)), self.stopping)
                except WorkerDied as died:
                    self._untrack(worker).terminate()
                    worker = None
                    if self.stopping.is_set():
                        return
                    records = self._died(entry, str(died))
                except OSError as exc:  # a worker could not be started (out of memory, no processes)
                    if worker is not None:
                        self._untrack(worker).terminate()
                    worker = None
                    records = self._died(entry, f"could not start a worker: {exc.strerror or exc}")
                except WorkerError as exc:
                    records = _failed(entry.unit, str(exc))
                if records is not None:
                    self.results.put(records)
        finally:
            if worker is not None:
                self._untrack(worker).stop()

    def _died(self, entry: _Entry, cause: str) -> list[RunRecord] | None:
        """Put a unit whose worker died back in the queue, or fail it when its retries are spent."""
        label = _label(entry.unit)
        if entry.attempt < self.retries and not self.work.closed:
            if self.on_note is not None:
                self.on_note(f"{cause} while training {label}; retrying it ({entry.attempt + 1} of {self.retries})")
            self.work.retry(entry)
            return None
        tries = f" (tried {entry.attempt + 1} times)" if entry.attempt else ""
        return _failed(entry.unit, cause + tries)

    def _track(self, worker: Worker) -> Worker:
        with self._lock:
            self._workers.add(worker)
        return worker

    def _untrack(self, worker: Worker) -> Worker:
        with self._lock:
            self._workers.discard(worker)
        return worker


def _tasks(unit: WorkUnit) -> tuple[RunTask, ...]:
    return unit.tasks if isinstance(unit, SeedGroupTask) else (unit,)


def _label(unit: WorkUnit) -> str:
    tasks = _tasks(unit)
    cfg = tasks[0].config
    seeds = ", ".join(str(t.config.seed) for t in tasks)
    return f"{cfg.arch} {cfg.dataset} seed{'s' if len(tasks) > 1 else ''} {seeds}"


def _failed(unit: WorkUnit, reason: str) -> list[RunRecord]:
    return [failed_record(task.config, reason) for task in _tasks(unit)]
