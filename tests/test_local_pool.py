"""The local executor's pool: the driver trains as one of the CPU workers."""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor

from bench.config import RunConfig
from bench.executors.local import LocalExecutor, _feed_until_empty, _WorkQueue, worker_gpu
from bench.tasks import DataRequest, RunTask


def test_two_workers_give_every_run_with_the_same_bits_as_one():
    tasks = [RunTask(RunConfig(arch=a, dataset="digits", seed=s, epochs=1), DataRequest())
             for a in ("lenet-12", "lenet") for s in (0, 1)]
    events = []
    serial = {r.run_id: r for r in LocalExecutor(workers=1).run(tasks)}
    pooled = {r.run_id: r for r in LocalExecutor(workers=2).run(tasks, lambda cfg, rec: events.append(cfg))}
    assert pooled.keys() == serial.keys() == {t.config.run_id() for t in tasks}
    for run_id, record in pooled.items():
        assert record.status == "ok"
        timing = ("seconds", "per_s")
        metrics = {k: v for k, v in record.summary.items() if not k.endswith(timing)}
        assert metrics and metrics == {k: v for k, v in serial[run_id].summary.items() if not k.endswith(timing)}
    assert sorted(c.run_id() for c in events) == sorted(t.config.run_id() for t in tasks)  # one epoch each


def test_workers_outlive_the_feeders_that_started_them():
    """A worker process is started by the feeder thread that first submits to it, and Linux
    kills it when that thread ends (``die_with_parent``).  Feeders that ended as soon as no
    run was left killed their idle workers, which broke the pool under the runs still
    training in the others: 4 workers, 4 runs failed with BrokenProcessPool (CPU and CUDA)."""
    # The last run (a worker's) trains longest: the other feeders run dry while it trains.
    tasks = [RunTask(RunConfig(arch="lenet-12", dataset="digits", seed=s, epochs=1), DataRequest()) for s in range(3)]
    tasks.append(RunTask(RunConfig(arch="dilated", dataset="digits", epochs=4), DataRequest()))
    records = list(LocalExecutor(workers=4).run(tasks))
    assert sorted(r.run_id for r in records) == sorted(t.config.run_id() for t in tasks)
    assert all(r.status == "ok" for r in records)


class _RecordingPool:
    """A stand-in ProcessPoolExecutor (threads) that notes how many runs it holds at each submit."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.unfinished_at_submit: list[int] = []
        self.futures = []

    def submit(self, fn, task):
        self.unfinished_at_submit.append(sum(not f.done() for f in self.futures))
        future = self.pool.submit(time.sleep, 0.01)
        self.futures.append(future)
        return future


def test_a_worker_is_handed_a_run_only_when_it_is_free():
    """ProcessPoolExecutor queues submitted calls ahead of its workers; a run queued behind a
    busy worker cannot go to the driver when it frees up, which left it idle at the grid's end."""
    tasks = [RunTask(RunConfig(arch="lenet", dataset="digits", seed=s), DataRequest()) for s in range(5)]
    work, done, pool = _WorkQueue(tasks), queue.Queue(), _RecordingPool()
    assert work.take() is tasks[0]  # the driver's
    _feed_until_empty(pool, work, done)
    assert pool.unfinished_at_submit == [0, 0, 0, 0]  # never a second run while one is in flight
    assert done.qsize() == 4 and work.take() is None


def test_closing_the_work_queue_stops_handing_out_runs():
    tasks = [RunTask(RunConfig(arch="lenet", dataset="digits", seed=s), DataRequest()) for s in range(3)]
    work = _WorkQueue(tasks)
    assert work.take() is tasks[0]
    work.close()
    assert work.take() is None


def test_a_run_the_pool_cannot_take_is_answered_with_the_error():
    class BrokenPool:
        def submit(self, fn, task):
            raise RuntimeError("A process in the process pool was terminated abruptly")

    tasks = [RunTask(RunConfig(arch="lenet", dataset="digits", seed=s), DataRequest()) for s in range(3)]
    work, done = _WorkQueue(tasks), queue.Queue()
    _feed_until_empty(BrokenPool(), work, done)
    assert done.qsize() == 1  # the driver gets the error instead of waiting for the run forever
    assert "terminated abruptly" in str(done.get().exception())


def test_more_workers_than_gpus_share_them_round_robin():
    assert [worker_gpu(slot, 2) for slot in range(5)] == [0, 1, 0, 1, 0]
    assert [worker_gpu(slot, 1) for slot in range(3)] == [None] * 3  # one GPU: nothing to choose
    assert worker_gpu(0, 0) is None  # CPU, or cuda:N: every worker uses the device it was given
