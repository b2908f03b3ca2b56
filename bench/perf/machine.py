"""cnnbench's training speed per machine: one trainer per core, all timed at once.

A grid on CPU trains one run per core, each on one thread (``bench.fast.policy.CPU_RUN_THREADS``),
while the recipe trains one run with every core.  So besides the speed of one run, ``perf``
measures what the whole machine trains in cnnbench's hands: this process and
``workers - 1`` helper processes each train the architecture (seeds 0, 1, ...: distinct
runs, as a grid's) and time the same number of steps, starting together at a barrier.
A block's images/s is all the images trained over the slowest trainer's seconds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from dataclasses import replace
from typing import Self

from ..config import RunConfig
from ..datasets import DataSearch, load_dataset
from ..errors import BenchError
from ..executors.local import die_with_parent
from ..datasets.prepared import PreparedData, prepare_data
from .native import NativeSession

# Generous: a block is one epoch at most (under a minute here), and a helper's first job
# also imports torch and reads the dataset.
BARRIER_TIMEOUT_S = 600.0


class MachineTrainers:
    """``workers - 1`` helper processes that train in step with this one; close() them."""

    def __init__(self, workers: int, dataset: str, search: DataSearch, device: str) -> None:
        ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
        self.barrier = ctx.Barrier(workers)
        self.results = ctx.Queue()
        self.jobs = [ctx.Queue() for _ in range(workers - 1)]
        self.helpers = [
            ctx.Process(target=_helper, args=(jobs, self.results, self.barrier, dataset, search, device,
                                              os.getpid()), daemon=True)
            for jobs in self.jobs
        ]
        try:
            for helper in self.helpers:
                helper.start()
            for _ in self.helpers:  # ready before anything is timed: starting up takes CPU
                self._take("ready")
        except BaseException:
            self._abandon()
            raise

    def measure(self, cfg: RunConfig, data: PreparedData, steps: int | None, warmup: int,
                repeats: int) -> list[tuple[int, float]]:
        """(images, seconds) of each of ``repeats`` blocks, summed over all trainers."""
        for i, jobs in enumerate(self.jobs, start=1):
            jobs.put((replace(cfg, seed=cfg.seed + i), steps, warmup, repeats))
        session = NativeSession(cfg, data)
        session.warm_up(warmup)
        blocks = []
        for _ in range(repeats):
            self._wait()
            images, seconds = session.block(steps)
            for _ in self.jobs:
                other = self._take("block")
                images, seconds = images + other[0], max(seconds, other[1])
            blocks.append((images, seconds))
        return blocks

    def _wait(self) -> None:
        try:
            self.barrier.wait(timeout=BARRIER_TIMEOUT_S)
        except threading.BrokenBarrierError:
            # A failing helper reports before it breaks the barrier.  _take raises either
            # way: that helper's error, or "stopped answering" when none came.
            self._take("error", timeout=1.0)

    def _take(self, expected: str, timeout: float = BARRIER_TIMEOUT_S):
        """The next message from the helpers, of kind ``expected``; BenchError if one failed."""
        try:
            kind, value = self.results.get(timeout=timeout)
        except queue.Empty:
            raise BenchError("a perf helper process stopped answering") from None
        if kind == "error":
            raise BenchError(f"a perf helper process failed: {value}")
        assert kind == expected, (kind, expected)
        return value

    def close(self) -> None:
        for jobs in self.jobs:
            jobs.put(None)
        for helper in self.helpers:
            if helper.pid is None:
                continue  # never started
            helper.join(timeout=10)
            if helper.is_alive():
                helper.terminate()
                helper.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            self._abandon()
        self.close()

    def _abandon(self) -> None:
        """Failed or interrupted: stop the helpers without waiting for their blocks."""
        self.barrier.abort()
        for helper in self.helpers:
            if helper.is_alive():
                helper.terminate()


def _helper(jobs, results, barrier, dataset: str, search: DataSearch, device: str, parent: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    die_with_parent(parent)
    try:
        data = prepare_data(load_dataset(dataset, search), 0.0, device)
        results.put(("ready", None))
        while (job := jobs.get()) is not None:
            cfg, steps, warmup, repeats = job
            session = NativeSession(cfg, data)
            session.warm_up(warmup)
            for _ in range(repeats):
                barrier.wait(timeout=BARRIER_TIMEOUT_S)
                results.put(("block", session.block(steps)))
    except threading.BrokenBarrierError:
        return  # the driver gave up: nothing to report
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which prints one line
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        barrier.abort()
