"""The local executor's pool: the driver trains as one of the CPU workers; a dead worker costs a retry."""

from __future__ import annotations

import os
import signal
import threading

import psutil

from bench.config import RunConfig
from bench.executors.local import LocalExecutor, _Pool, _WorkQueue
from bench.executors.worker import Worker, WorkerDied, WorkerError, death_cause, worker_gpu
from bench.records import failed_record
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


def _spawned_workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


def test_a_worker_killed_mid_run_is_replaced_and_its_run_gives_the_same_bits(monkeypatch):
    """SIGKILL (the OOM killer's signal) to the worker training a run: the run is trained
    again and the grid ends with every run ok and the bits of an undisturbed grid."""
    # The driver trains the first task, the worker the second; kill it after its first epoch.
    tasks = [RunTask(RunConfig(arch=a, dataset="digits", epochs=3), DataRequest()) for a in ("lenet-12", "lenet")]
    victim, killed, notes = tasks[1].config, [], []
    train = Worker.train

    def train_and_kill_once(worker, unit, on_event, stop):
        # Killed by the feeder thread as the epoch arrives: the driver's thread forwards
        # epochs only between its own, by when the worker may have finished the run.
        def kill_after_the_first_epoch(cfg, record):
            on_event(cfg, record)
            if cfg == victim and not killed:
                killed.append(record["epoch"])
                os.kill(worker.process.pid, signal.SIGKILL)
        return train(worker, unit, kill_after_the_first_epoch, stop)

    monkeypatch.setattr(Worker, "train", train_and_kill_once)
    records = {r.run_id: r for r in LocalExecutor(workers=2).run(tasks, None, notes.append)}
    assert killed == [1], "the worker's run never reported an epoch"
    assert notes == ["worker killed by signal 9 (SIGKILL; out of memory?) during epoch 2"
                     " while training lenet digits seed 0; retrying it (1 of 2)"]
    serial = {r.run_id: r for r in LocalExecutor(workers=1).run(tasks)}
    assert records.keys() == serial.keys()
    for run_id, record in records.items():
        assert record.status == "ok"
        assert record.summary["test_acc"] == serial[run_id].summary["test_acc"]
        assert [e["train_loss"] for e in record.epochs] == [e["train_loss"] for e in serial[run_id].epochs]
    assert _spawned_workers() == []  # the replacement was stopped too


class _FakeWorker:
    """Stands in for a worker process: trains nothing, dies when the script says so."""

    def __init__(self, script: list[str], started: list["_FakeWorker"]) -> None:
        self.script, self.stopped = script, False
        started.append(self)

    def train(self, unit, on_event, stop):
        outcome = self.script.pop(0) if self.script else "ok"
        if outcome == "die":
            raise WorkerDied("worker killed by signal 9 (SIGKILL; out of memory?) during epoch 2")
        if outcome == "bug":
            raise WorkerError("KeyError in a worker: 'x'")
        return [failed_record(unit.config, "trained")]  # any record will do: it names the run

    def stop(self) -> None:
        self.stopped = True

    terminate = interrupt = stop


def _pool(script: list[str], retries: int, units: int = 1):
    tasks = [RunTask(RunConfig(arch="lenet", dataset="digits", seed=s), DataRequest()) for s in range(units)]
    started: list[_FakeWorker] = []
    notes: list[str] = []
    pool = _Pool(_WorkQueue(tasks), retries, lambda slot: _FakeWorker(script, started), on_note=notes.append)
    return pool, started, notes


def test_a_unit_whose_worker_died_is_retried_on_a_fresh_worker():
    pool, started, notes = _pool(["die", "ok"], retries=2)
    pool.start(1)
    (record,) = pool.result(timeout=60)
    pool.close(wait=True)
    assert record.error == "trained"  # the second attempt's record
    assert len(started) == 2 and all(w.stopped for w in started)  # the dead one replaced, both ended
    assert notes == ["worker killed by signal 9 (SIGKILL; out of memory?) during epoch 2 while "
                            "training lenet digits seed 0; retrying it (1 of 2)"]


def test_a_unit_whose_workers_keep_dying_is_failed_with_the_cause():
    pool, started, notes = _pool(["die", "die", "die", "ok"], retries=2)
    pool.start(1)
    (record,) = pool.result(timeout=60)
    pool.close(wait=True)
    assert record.status == "failed"
    assert record.error == "worker killed by signal 9 (SIGKILL; out of memory?) during epoch 2 (tried 3 times)"
    assert len(started) == 3 and len(notes) == 2


def test_a_bug_in_a_worker_fails_its_run_without_a_retry():
    pool, started, notes = _pool(["bug"], retries=2)
    pool.start(1)
    (record,) = pool.result(timeout=60)
    pool.close(wait=True)
    assert record.status == "failed" and record.error == "KeyError in a worker: 'x'"
    assert len(started) == 1 and notes == []


def test_a_worker_that_cannot_start_costs_attempts_not_the_grid():
    tasks = [RunTask(RunConfig(arch="lenet", dataset="digits"), DataRequest())]

    def no_processes(slot):
        raise OSError(11, "Resource temporarily unavailable")

    pool = _Pool(_WorkQueue(tasks), 1, no_processes)
    pool.start(1)
    (record,) = pool.result(timeout=60)
    pool.close(wait=True)
    assert record.error == "could not start a worker: Resource temporarily unavailable (tried 2 times)"


def test_each_worker_has_one_unit_at_a_time_and_every_unit_is_answered():
    pool, started, notes = _pool([], retries=0, units=5)
    pool.start(2)
    answered = sorted(pool.result(timeout=60)[0].config.seed for _ in range(5))
    pool.close(wait=True)
    assert answered == [0, 1, 2, 3, 4] and pool.result(timeout=0) is None
    assert 1 <= len(started) <= 2 and all(w.stopped for w in started)


class _TrainingWorker:
    """Trains until interrupted, then dies; records which threads ended it."""

    def __init__(self, training: threading.Event) -> None:
        self.training, self.ended, self.closed_by = training, threading.Event(), []

    def train(self, unit, on_event, stop):
        self.training.set()
        self.ended.wait(timeout=60)
        raise WorkerDied("worker killed by signal 15 (SIGTERM) during epoch 1")

    def interrupt(self) -> None:
        self.ended.set()

    def terminate(self) -> None:
        self.closed_by.append(threading.current_thread().name)

    stop = terminate


def test_an_interrupted_pool_leaves_each_worker_to_the_thread_that_owns_it():
    """Ctrl-C/SIGTERM: the driver only signals the workers.  It also closed their pipes, racing
    the feeder threads that do the same on seeing them die: a double close raised EBADF."""
    tasks = [RunTask(RunConfig(arch="lenet", dataset="digits", seed=s), DataRequest()) for s in range(2)]
    training, workers, notes = threading.Event(), [], []
    pool = _Pool(_WorkQueue(tasks), 2, lambda slot: workers.append(_TrainingWorker(training)) or workers[-1],
                 on_note=notes.append)
    pool.start(1)
    assert training.wait(timeout=60)
    pool.close(wait=False)
    (worker,) = workers
    assert worker.closed_by == ["cnnbench-feeder-0"]
    assert notes == [] and pool.result(timeout=0) is None  # a stopped pool retries nothing


def test_closing_the_work_queue_stops_handing_out_runs():
    tasks = [RunTask(RunConfig(arch="lenet", dataset="digits", seed=s), DataRequest()) for s in range(3)]
    work = _WorkQueue(tasks)
    assert work.take().unit is tasks[0]
    work.close()
    assert work.take() is None


def test_a_retried_unit_goes_first():
    tasks = [RunTask(RunConfig(arch="lenet", dataset="digits", seed=s), DataRequest()) for s in range(3)]
    work = _WorkQueue(tasks)
    entry = work.take()
    work.retry(entry)
    again = work.take()
    assert again.unit is tasks[0] and again.attempt == 1


def test_what_ended_a_worker_in_words():
    assert death_cause(-9) == "worker killed by signal 9 (SIGKILL; out of memory?)"
    assert death_cause(-15) == "worker killed by signal 15 (SIGTERM)"
    assert death_cause(3) == "worker exited with status 3"
    assert death_cause(None) == "worker stopped answering"


def test_more_workers_than_gpus_share_them_round_robin():
    assert [worker_gpu(slot, 2) for slot in range(5)] == [0, 1, 0, 1, 0]
    assert [worker_gpu(slot, 1) for slot in range(3)] == [None] * 3  # one GPU: nothing to choose
    assert worker_gpu(0, 0) is None  # CPU, or cuda:N: every worker uses the device it was given
