"""The local executor: this process, or ``workers`` processes on this machine.

Small CNNs on a CPU scale better across processes with one thread each than across the
threads of one process (measured here: 1.3-1.5x on 2 cores), so on CPU the default is
one worker per core; this process is one of them.  On CUDA each worker is pinned to its
own GPU.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

import torch

from ..errors import BenchError
from ..records import RunRecord
from ..tasks import RunTask, execute
from ..train import CPU_RUN_THREADS
from .base import EpochEvent, Executor

_EVENTS: queue.Queue | None = None  # set in each worker process by _init_worker


def default_workers(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.device_count() if device == "cuda" else 1
    return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, workers: int | None = None, device: str = "cpu") -> None:
        if workers is not None and workers < 1:
            raise BenchError(f"--workers must be a positive integer, got {workers}")
        self.device = device
        self.workers = workers or default_workers(device)
        if device == "cuda" and self.workers > max(torch.cuda.device_count(), 1):
            raise BenchError(
                f"--workers {self.workers} with --device cuda: this machine has "
                f"{torch.cuda.device_count()} GPU(s), one worker per GPU"
            )

    def describe(self) -> dict[str, object]:
        if self.device == "cpu":
            threads = CPU_RUN_THREADS  # tasks.execute trains every CPU run with this many
        else:
            threads = threads_per_worker(self.workers) if self.workers > 1 else torch.get_num_threads()
        return {"executor": self.name, "workers": self.workers, "threads_per_worker": threads}

    def run(self, tasks: Sequence[RunTask], on_epoch: EpochEvent | None = None) -> Iterator[RunRecord]:
        if self.workers == 1:
            for task in tasks:
                yield execute(task, on_epoch)
            return
        yield from self._run_pool(tasks, on_epoch)

    def _run_pool(self, tasks: Sequence[RunTask], on_epoch: EpochEvent | None) -> Iterator[RunRecord]:
        ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
        events = ctx.Queue()
        slots = ctx.Queue()
        pinned = self.device == "cuda" and torch.cuda.device_count() > 1
        # On CPU this process trains too, as one of the workers: one process fewer holding
        # torch and the dataset (~0.6-0.9 GB each; a 2-worker MNIST run peaked at 2.25 GB
        # with three processes), and one fewer to start.  On CUDA each worker owns a GPU.
        here = self.device == "cpu"
        spawned = self.workers - 1 if here else self.workers
        for slot in range(spawned):
            slots.put(slot)
        pool = ProcessPoolExecutor(
            max_workers=max(1, min(spawned, len(tasks))),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(events, slots, threads_per_worker(self.workers), pinned, os.getpid()),
        )
        futures: list[Future] = []
        completed = False

        def forward_here(cfg, record):
            _drain(events, on_epoch)  # keep the workers' progress flowing meanwhile
            if on_epoch is not None:
                on_epoch(cfg, record)

        try:
            futures = [pool.submit(_execute_in_worker, task) for task in tasks]
            by_future = dict(zip(futures, tasks))
            pending = set(futures)
            while pending:
                done = {f for f in pending if f.done()}
                if not done and here:
                    # Take the first run no worker has started yet (cancel() fails on those
                    # a worker already holds), so runs go roughly in grid order.
                    stolen = next((f for f in futures if f in pending and f.cancel()), None)
                    if stolen is not None:
                        pending.discard(stolen)
                        yield execute(by_future[stolen], forward_here)
                        continue
                if not done:
                    done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                pending -= done
                _drain(events, on_epoch)
                for future in done:
                    yield future.result()
            _drain(events, on_epoch)
            completed = True
        finally:
            if not completed:
                # Interrupted or failed: do not wait for runs in flight to finish.
                _terminate(pool)
            pool.shutdown(wait=completed, cancel_futures=True)
            events.close()
            slots.close()


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


def _die_with_parent(parent: int) -> None:
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


def _init_worker(events, slots, threads: int, pin_gpu: bool, parent: int) -> None:
    global _EVENTS
    _die_with_parent(parent)
    _EVENTS = events
    slot = slots.get()
    if pin_gpu:
        # Before CUDA initialises in this process, so "cuda" means this worker's GPU.
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slot)
    torch.set_num_threads(threads)
    # Ctrl-C goes to the whole process group; the driver handles it and shuts us down.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _execute_in_worker(task: RunTask) -> RunRecord:
    def forward(cfg, record):
        if _EVENTS is not None:
            _EVENTS.put((cfg, record))

    return execute(task, forward)
