"""One worker process of the local executor, and how the driver learns that it died.

A ``Worker`` is a spawned process that trains one unit (a run, or a seed group) at a time,
sent over its own pipe; epoch events and the finished records come back the same way.  The
driver's thread that owns it waits on the pipe *and* the process sentinel, so a worker that
dies (the OOM killer's SIGKILL, a crash in native code, any exit) is noticed at once, with
the signal or exit status and the epoch it was in: ``WorkerDied``.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import wait

from ..records import RunRecord

POLL_SECONDS = 0.5  # how often a waiting owner also checks that it should stop
STOP_SECONDS = 10.0  # a worker told to stop gets this long before it is terminated


class WorkerDied(Exception):
    """The worker process ended (or stopped answering) before it finished its unit."""


class WorkerError(Exception):
    """The unit raised an exception ``execute`` does not turn into a record: a bug, not retried."""


def death_cause(exitcode: int | None) -> str:
    """What ended a worker, in words: 'worker killed by signal 9 (SIGKILL; out of memory?)'."""
    if exitcode is None:
        return "worker stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        hint = "; out of memory?" if -exitcode == signal.SIGKILL else ""  # what the OOM killer sends
        return f"worker killed by signal {-exitcode} ({name}{hint})"
    return f"worker exited with status {exitcode}"


class Worker:
    """A spawned training process; ``train`` sends it one unit and waits for its records."""

    def __init__(self, ctx, slot: int, threads: int, gpus: int, networks=()) -> None:
        self._conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=worker_main, args=(child, slot, threads, gpus, os.getpid(), networks),
                                   name=f"cnnbench-worker-{slot}", daemon=True)
        self.process.start()
        child.close()  # only the worker holds its end: its death reads as end-of-file here

    def train(self, unit, on_event: Callable[[object, dict], None], stop: threading.Event) -> list[RunRecord]:
        """The records of ``unit``; ``WorkerDied`` if the process ends first (or ``stop`` is set)."""
        epoch = 0
        try:
            self._conn.send_bytes(pickle.dumps(unit, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            raise WorkerDied(self._cause(epoch)) from None
        while True:
            ready = wait([self._conn, self.process.sentinel], timeout=POLL_SECONDS)
            if self._conn in ready or self._conn.poll():  # read what it sent before it ended
                try:
                    kind, payload = pickle.loads(self._conn.recv_bytes())
                except (EOFError, OSError, pickle.UnpicklingError):
                    raise WorkerDied(self._cause(epoch)) from None
                if kind == "epoch":
                    cfg, record = payload
                    epoch = max(epoch, int(record["epoch"]))
                    on_event(cfg, record)
                elif kind == "done":
                    return payload
                else:
                    raise WorkerError(payload)
            elif ready:  # the sentinel: ended, and nothing left to read
                raise WorkerDied(self._cause(epoch))
            elif stop.is_set():
                raise WorkerDied("stopped")

    def _cause(self, epoch: int) -> str:
        self.process.join(timeout=STOP_SECONDS)
        where = f"during epoch {epoch + 1}" if epoch else "before it finished an epoch"
        return f"{death_cause(self.process.exitcode)} {where}"

    def stop(self) -> None:
        """Ask the worker to exit, and make sure it has (terminated, if it does not)."""
        if self.process.is_alive():
            try:
                self._conn.send_bytes(pickle.dumps(None))
            except OSError:
                pass
            self.process.join(timeout=STOP_SECONDS)
        self.terminate()

    def interrupt(self) -> None:
        """SIGTERM the process, from any thread; its owner's ``train`` sees it end and cleans up."""
        self.process.terminate()

    def terminate(self) -> None:
        """End the process and close the pipe: only the thread that owns this worker may call it."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this worker when the driver dies, even by SIGKILL.

    Otherwise a killed driver leaves workers training (and holding GPUs) for nobody.  The
    "parent" is the driver's *thread* that started the worker, so that thread must outlive it.
    """
    import ctypes

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


def worker_main(conn, slot: int, threads: int, gpus: int, parent: int, networks=()) -> None:
    """The worker process: train each unit the driver sends until it sends None.

    ``networks``: the user's network sources the driver loaded (``bench.user_networks``).
    """
    die_with_parent(parent)
    gpu = worker_gpu(slot, gpus)
    if gpu is not None:
        # Before CUDA initialises in this process, so "cuda" means this worker's GPU.
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    # Ctrl-C goes to the whole process group; the driver handles it and shuts us down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from ..tasks import execute_unit
    from ..user_networks import use

    torch.set_num_threads(threads)
    use(networks)

    def send(kind: str, payload) -> None:
        # Plain pickle: tensors travel by value, with no shared memory left to fetch from a
        # worker that may die right after sending.
        conn.send_bytes(pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL))

    while True:
        try:
            unit = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the driver is gone
        if unit is None:
            return
        try:
            records = execute_unit(unit, lambda cfg, record: send("epoch", (cfg, record)))
        except Exception as exc:  # a bug: the driver records it rather than retry it
            send("error", f"{type(exc).__name__} in a worker: {_first_line(exc)}")
            continue
        send("done", records)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
