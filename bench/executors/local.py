"""The local executor: this process, or ``workers`` processes on this machine.

Small CNNs on a CPU scale better across processes with one thread each than across the
threads of one process, so on CPU the default is one worker per core; this process is one
of them.  On CUDA each worker trains on one GPU (shared round-robin when there are more
workers than GPUs).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait

import torch

from ..errors import BenchError
from ..records import RunRecord
from ..tasks import RunTask, WorkUnit, execute_unit, pack_seed_groups
from ..user_networks import loaded_sources, use
from ..fast.policy import CPU_RUN_THREADS
from .base import EpochEvent, Executor

_EVENTS: queue.Queue | None = None  # set in each worker process by _init_worker
# Runs of one configuration (seeds) a CUDA worker trains at once (bench.fast.seed_group): past
# 8, a group cost more than proportionally on the GPUs measured (docs/performance.md).
DEFAULT_SEEDS_TOGETHER = 8


def default_workers(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.device_count() if device == "cuda" else 1
    return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, workers: int | None = None, device: str = "cpu", seeds_together: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise BenchError(f"--workers must be a positive integer, got {workers}")
        if seeds_together is not None and seeds_together < 1:
            raise BenchError(f"--seeds-together must be a positive integer, got {seeds_together}")
        self.device = device
        self.workers = workers or default_workers(device)
        # CUDA only: on CPU a seed group would step its runs one after another (bench.seed_group).
        self.seeds_together = (seeds_together or DEFAULT_SEEDS_TOGETHER) if device.startswith("cuda") else 1

    def describe(self) -> dict[str, object]:
        if self.device == "cpu":
            threads = CPU_RUN_THREADS  # tasks.execute trains every CPU run with this many
        else:
            threads = threads_per_worker(self.workers) if self.workers > 1 else torch.get_num_threads()
        return {"executor": self.name, "workers": self.workers, "threads_per_worker": threads,
                "seeds_together": self.seeds_together}

    def run(self, tasks: Sequence[RunTask], on_epoch: EpochEvent | None = None) -> Iterator[RunRecord]:
        if not tasks:
            return
        units = pack_seed_groups(tasks, self.seeds_together)
        if self.workers == 1 or (self.device == "cpu" and len(units) == 1):
            for unit in units:  # this process trains them: no worker to start
                yield from execute_unit(unit, on_epoch)
            return
        yield from self._run_pool(units, on_epoch)

    def _run_pool(self, tasks: Sequence[WorkUnit], on_epoch: EpochEvent | None) -> Iterator[RunRecord]:
        """Train ``tasks`` (runs, or seed groups) on the workers; records as they finish."""
        ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
        events = ctx.Queue()
        slots = ctx.Queue()
        # Plain "cuda" with several GPUs: each worker sees one, round-robin (cuda:N: all on N).
        gpus = torch.cuda.device_count() if self.device == "cuda" else 0
        # On CPU this process trains too, as one of the workers: one process fewer holding
        # torch and the dataset, and one fewer to start.  On CUDA only workers train.
        here = self.device == "cpu"
        spawned = min(self.workers - 1, len(tasks) - 1) if here else min(self.workers, len(tasks))
        for slot in range(spawned):
            slots.put(slot)
        pool = ProcessPoolExecutor(
            max_workers=spawned,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(events, slots, threads_per_worker(self.workers), gpus, os.getpid(), loaded_sources()),
        )
        # One queue of runs that every trainer - each worker and this process - takes the
        # next run from when it is free.  A run is handed to a worker only as it starts:
        # ProcessPoolExecutor queues submitted calls ahead of its workers, and a run queued
        # behind a busy worker would leave this process idle at the end of the grid.
        work = _WorkQueue(tasks)
        first = work.take() if here else None  # this process starts at once; workers import torch first
        done: queue.Queue[Future] = queue.Queue()
        release = threading.Event()
        feeders = [threading.Thread(target=_feed, args=(pool, work, done, release), daemon=True)
                   for _ in range(spawned)]
        for feeder in feeders:
            feeder.start()
        completed = False

        def forward_here(cfg, record):
            _drain(events, on_epoch)  # keep the workers' progress flowing meanwhile
            if on_epoch is not None:
                on_epoch(cfg, record)

        try:
            for _ in range(len(tasks)):
                future = _get_nowait(done)
                if future is None and here:
                    task, first = first or work.take(), None
                    if task is not None:
                        yield from execute_unit(task, forward_here)
                        continue
                while future is None:
                    _drain(events, on_epoch)
                    future = _get(done, timeout=0.2)
                _drain(events, on_epoch)
                yield from future.result()
            _drain(events, on_epoch)
            completed = True
        finally:
            work.close()
            if not completed:
                # Interrupted or failed: do not wait for runs in flight to finish.
                _terminate(pool)
            pool.shutdown(wait=completed, cancel_futures=True)
            release.set()
            for feeder in feeders:
                feeder.join(timeout=5)
            events.close()
            slots.close()


class _WorkQueue:
    """The runs not yet started, taken one at a time by whichever trainer is free."""

    def __init__(self, tasks: Sequence[RunTask]) -> None:
        self._tasks = deque(tasks)
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> RunTask | None:
        with self._lock:
            if self._closed or not self._tasks:
                return None
            return self._tasks.popleft()

    def close(self) -> None:
        with self._lock:
            self._closed = True


def _feed(pool: ProcessPoolExecutor, work: _WorkQueue, done: queue.Queue, release: threading.Event) -> None:
    """Keep one worker busy: submit the next run only when its previous one has finished.

    Then wait for ``release`` (set once the pool is shut down) before returning: with the
    spawn start method a worker process is started by the thread that submits to it, and
    Linux sends a worker its parent-death signal (``die_with_parent``) when that *thread*
    ends.  A feeder that returned as soon as the queue ran dry killed the worker it had
    started, and with it the pool and every run still training in another worker.
    """
    try:
        _feed_until_empty(pool, work, done)
    finally:
        release.wait()


def _feed_until_empty(pool: ProcessPoolExecutor, work: _WorkQueue, done: queue.Queue) -> None:
    while (task := work.take()) is not None:
        try:
            future = pool.submit(_execute_in_worker, task)
        except RuntimeError as exc:  # a broken pool: the run must still be answered for
            future = Future()
            future.set_exception(exc)
        else:
            wait([future])
        done.put(future)
        if future.cancelled() or future.exception() is not None:
            return  # a broken pool: the driver raises its error


def _get_nowait(q: queue.Queue):
    try:
        return q.get_nowait()
    except queue.Empty:
        return None


def _get(q: queue.Queue, timeout: float):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None


def _terminate(pool: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor has no public terminate before Python 3.14.
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.is_alive():
            process.terminate()
    for process in list(getattr(pool, "_processes", {}).values()):
        process.join(timeout=5)


def _drain(events, on_epoch: EpochEvent | None) -> None:
    while True:
        try:
            cfg, record = events.get_nowait()
        except queue.Empty:
            return
        if on_epoch is not None:
            on_epoch(cfg, record)


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this worker when the driver dies, even by SIGKILL.

    Otherwise a killed driver leaves workers training (and holding GPUs) for nobody.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG; Linux only
    except (OSError, AttributeError):
        return  # not Linux: the driver's shutdown path still terminates workers
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)


def worker_gpu(slot: int, gpus: int) -> int | None:
    """The GPU worker ``slot`` trains on when ``gpus`` are shared round-robin; None: don't pin."""
    return slot % gpus if gpus > 1 else None


def _init_worker(events, slots, threads: int, gpus: int, parent: int, networks=()) -> None:
    global _EVENTS
    die_with_parent(parent)
    _EVENTS = events
    use(networks)  # a spawned worker starts with the zoo only: the user's networks too
    gpu = worker_gpu(slots.get(), gpus)
    if gpu is not None:
        # Before CUDA initialises in this process, so "cuda" means this worker's GPU.
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    torch.set_num_threads(threads)
    # Ctrl-C goes to the whole process group; the driver handles it and shuts us down.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _execute_in_worker(task: WorkUnit) -> list[RunRecord]:
    def forward(cfg, record):
        if _EVENTS is not None:
            _EVENTS.put((cfg, record))

    return execute_unit(task, forward)
