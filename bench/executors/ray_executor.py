"""The Ray executor: each run is a Ray task, on this machine or on a Ray cluster.

Ray does the scheduling (CPUs, whole or fractional GPUs), retries tasks whose worker
died, and starts a private local instance when no cluster address is given.  The driver
keeps the part that matters for results: workers only ``execute`` a task and hand back
its ``RunRecord`` (tensors included); the runner stores it, so resume, tables and the
report are the same as with the local executor.

Data: the driver has already loaded every dataset; each one goes into Ray's object store
once (``ray.put``) and a worker process fetches it on its first task for that dataset.
A task for a dataset the driver did not load reads it from its node's own data directory
(``DataRequest``), the way a local worker would.

Progress: records are yielded as tasks finish (``ray.wait``), which drives the grid bar
and the per-run lines.  Per-epoch events are not forwarded from Ray workers (that would
need an extra actor as a mailbox); a run's line appears when it finishes.  A task notes
its start in Ray's key-value store, so that runs queued behind other work on a busy
cluster are reported rather than waited on in silence (``waiting.QueueWatch``).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import BenchError
from ..records import RunRecord, failed_record
from ..tasks import RunTask, provided_dataset
from ..user_networks import loaded_sources
from . import DEFAULT_RETRIES
from .base import EpochEvent, Executor, NoteEvent
from .waiting import ClusterLoad, QueueWatch

INSTALL_HINT = "pip install 'cnnbench[ray]'"
KV_NAMESPACE = "cnnbench"  # where tasks note that they started (Ray's internal key-value store)
CPUS_PER_RUN = 1  # one torch thread per run, as the local executor uses with one worker per core
TASK_PREFIX = "cnnbench:"  # Ray titles a busy worker process "ray::cnnbench:<run id>"
PROBE_SECONDS = 5.0  # to reach a cluster's address before handing it to ray.init
WAIT_SECONDS = 0.2  # ray.wait in slices: a signal held during a Ray call waits at most this long


def import_ray():
    """Import Ray, or end with one line that says how to install it."""
    try:
        import ray
    except ImportError:
        raise BenchError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class RayExecutor(Executor):
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        device: str = "cpu",
        gpus_per_run: float | None = None,
        retries: int | None = None,
        num_cpus: int | None = None,
    ) -> None:
        self.ray = import_ray()  # fail before the (slow) data loading, not after
        self.address = address
        self.device = device
        self.retries = DEFAULT_RETRIES if retries is None else retries
        if self.retries < 0:
            raise BenchError(f"--retries must be 0 or more, got {self.retries}")
        cuda = device.startswith("cuda")
        if device.startswith("cuda:"):
            raise BenchError(f"--device {device} with --executor ray: Ray assigns GPUs to runs; use --device cuda")
        if gpus_per_run is not None and not cuda:
            raise BenchError("--gpus-per-run needs --device cuda")
        gpus = 1.0 if gpus_per_run is None else float(gpus_per_run)
        if cuda and not (0 < gpus <= 1 or gpus.is_integer()):
            raise BenchError(f"--gpus-per-run must be a fraction up to 1 or a whole number, got {gpus_per_run}")
        self.gpus_per_run = gpus if cuda else 0.0
        if address is not None and num_cpus is not None:
            raise BenchError("--workers sizes a local Ray instance; with --ray-address the cluster decides")
        self.num_cpus = num_cpus or os.cpu_count() or 1
        if address is not None:
            _probe(address)
        # A private instance runs on this machine; a cluster's nodes may not see --out.
        self.sees_output_dir = address is None
        self._cluster: dict[str, Any] = {}

    def describe(self) -> dict[str, object]:
        return {"executor": self.name, "ray_address": self.address or "local",
                "retries": self.retries, "gpus_per_run": self.gpus_per_run,
                "threads_per_worker": CPUS_PER_RUN, **self._cluster}

    # -- running ------------------------------------------------------------------------
    def run(self, tasks: Sequence[RunTask], on_epoch: EpochEvent | None = None,
            on_note: NoteEvent | None = None, plan=None) -> Iterator[RunRecord]:
        # plan: unused, every run trains alone (make_executor refuses ray with seeds together or stacked)
        if not tasks:
            return
        ray = self.ray
        signals = SignalsBetweenRayCalls()
        pending: dict[Any, RunTask] = {}
        owned = False
        started_prefix = f"started:{uuid.uuid4().hex}:"  # this grid's start notes
        try:
            with signals.held():
                owned = self._connect()
                remote = ray.remote(_run_on_worker)
                resources = {"num_cpus": CPUS_PER_RUN, "num_gpus": self.gpus_per_run, "max_retries": self.retries}
                loaded = {name: provided_dataset(name) for name in {t.config.dataset for t in tasks}}
                datasets = {name: ray.put(data) for name, data in loaded.items() if data is not None}
                # The user's networks travel with every task: a worker may be on a node without their files.
                networks = ray.put(loaded_sources())
                for task in tasks:
                    # The ref is boxed in a list so Ray does not resolve it per task: a worker
                    # process fetches a dataset once and keeps it (bench.tasks cache).
                    box = [datasets[task.config.dataset]] if task.config.dataset in datasets else []
                    ref = remote.options(name=TASK_PREFIX + task.config.run_id(), **resources).remote(
                        task, box, CPUS_PER_RUN, networks, started_prefix + task.config.run_id())
                    pending[ref] = task
                watch = QueueWatch(lambda: started_runs(started_prefix), self._load,
                                   CPUS_PER_RUN, self.gpus_per_run)
            signals.replay()
            while pending:
                with signals.held():
                    done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                    records = [self._result(ref, pending.pop(ref)) for ref in done]
                    for record in records:
                        watch.finished(record.run_id)
                    line = _quiet_news(watch, [t.config.run_id() for t in pending.values()])
                if line is not None and on_note is not None:
                    on_note(line)
                # Records Ray already handed over are yielded (and stored) before a signal
                # noted meanwhile is raised: finished work is kept.
                yield from records
                signals.replay()
        finally:
            # Normal end: nothing left.  Closed early (Ctrl-C, an error): cancel what is
            # queued or running, so a cluster does not keep training for nobody.  When
            # closed early, a signal now is dropped, as the runner drops a second one.
            with signals.held():
                for ref in pending:
                    ray.cancel(ref, force=True)
                forget_started(started_prefix)
                if owned:
                    ray.shutdown()
        signals.replay()  # a normal end: a signal during the shutdown still reaches the runner

    def _result(self, ref, task: RunTask) -> RunRecord:
        cfg = task.config
        try:
            record = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            # An exception execute() did not turn into a record: a bug, not retried.
            cause = getattr(exc, "cause", None) or exc
            return failed_record(cfg, f"{type(cause).__name__} in a Ray worker: {_first_line(cause)}")
        except self.ray.exceptions.RayError as exc:
            # The worker (or its node) was lost more often than --retries allows.
            return failed_record(cfg, f"lost on Ray after {self.retries} retries: "
                                      f"{type(exc).__name__}: {_first_line(exc)}")
        return record  # the runner refuses it if the worker named the run differently

    def _connect(self) -> bool:
        """Connect to Ray; True when this call started (and so must stop) the instance."""
        ray = self.ray
        if ray.is_initialized():  # a notebook or test already connected: use that
            self._note_cluster()
            return False
        try:
            if self.address is None:
                ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False,
                         _node_ip_address="127.0.0.1", logging_level="ERROR", log_to_driver=False)
            else:
                # Ship the driver's own code, so every node trains the same architectures
                # (their source digest is part of each run id).  Nodes need the same
                # third-party packages (torch, ...) installed.
                import architectures
                import bench

                ray.init(address=self.address, logging_level="ERROR", log_to_driver=False,
                         runtime_env={"py_modules": [os.path.dirname(m.__file__) for m in (bench, architectures)]})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local instance"
            hint = ""
            if self.address is not None and "RAY_AUTH_MODE" not in os.environ:
                hint = ("; a cluster with token authentication (Ray's default) needs RAY_AUTH_MODE=token "
                        "and the head's ~/.ray/auth_token on this machine")
            raise BenchError(f"could not start Ray on {where}: {_first_line(exc)}{hint}") from None
        self._note_cluster()
        return True

    def _load(self) -> ClusterLoad:
        total, free = self.ray.cluster_resources(), self.ray.available_resources()
        return ClusterLoad(cpus=total.get("CPU", 0.0), free_cpus=free.get("CPU", 0.0),
                           gpus=total.get("GPU", 0.0), free_gpus=free.get("GPU", 0.0))

    def _note_cluster(self) -> None:
        resources = self.ray.cluster_resources()
        self._cluster = {"ray_cluster_cpus": resources.get("CPU", 0.0),
                         "ray_cluster_gpus": resources.get("GPU", 0.0),
                         "ray_nodes": sum(1 for n in self.ray.nodes() if n.get("Alive"))}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _probe(address: str) -> None:
    """Fail in seconds, with one line, when nothing listens at a host:port address.

    ray.init retries an unreachable cluster for minutes, printing a warning every few
    seconds; "auto" is left to Ray (it reads this machine's latest cluster address).
    """
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise BenchError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                         "start one with `ray start --head`") from None


class SignalsBetweenRayCalls:
    """SIGINT/SIGTERM wait while Ray's code runs and reach the runner between Ray calls.

    The runner's handler raises ``Interrupted`` in whatever frame the main thread is in.
    Raised inside Ray - its C++ wait and get run Python signal handlers while they block,
    and ``ray.init`` installs handlers of its own - the exception came back wrapped in a
    SystemError, or escaped a ``ray.get`` half done, and Ray was left mid-call.  So inside
    ``held()`` a signal is only noted (and handlers Ray installs are undone on the way out);
    ``replay()`` hands the first noted signal to the handler that was in place before, at
    a point where raising is safe.  Ray is waited on in ``WAIT_SECONDS`` slices, so a
    signal reaches the runner within that long.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.noted: int | None = None
        self._previous: dict[int, Any] = {}

    @contextmanager
    def held(self):
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread has signal handlers (and receives their exceptions)
            return
        self._previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s in self.SIGNALS:
            signal.signal(s, self._note)
        try:
            yield
        finally:
            for s, handler in self._previous.items():
                signal.signal(s, handler)

    def _note(self, signum: int, _frame) -> None:
        if self.noted is None:
            self.noted = signum

    def replay(self) -> None:
        """Hand a signal noted inside ``held()`` to the handler it was meant for."""
        if self.noted is None:
            return
        signum, self.noted = self.noted, None
        handler = self._previous.get(signum, signal.getsignal(signum))
        if callable(handler):
            handler(signum, None)  # the runner's: raises Interrupted
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)


def _quiet_news(watch: QueueWatch, pending: list[str]) -> str | None:
    try:
        return watch.check(pending)
    except Exception:  # noqa: BLE001 - news for the console must never stop a grid
        return None


def started_runs(prefix: str) -> list[str]:
    """The run ids whose tasks noted their start under ``prefix``."""
    from ray.experimental.internal_kv import _internal_kv_list

    return [key.decode().removeprefix(prefix) for key in _internal_kv_list(prefix, namespace=KV_NAMESPACE)]


def forget_started(prefix: str) -> None:
    try:
        from ray.experimental.internal_kv import _internal_kv_del

        _internal_kv_del(prefix, del_by_prefix=True, namespace=KV_NAMESPACE)
    except Exception:  # noqa: BLE001 - tidying Ray's store must never fail a grid that ended
        pass


def note_start(key: str) -> None:
    """In a Ray worker: note in Ray's key-value store that a run has started."""
    try:
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(key, b"1", namespace=KV_NAMESPACE)
    except Exception:  # noqa: BLE001 - a start note is news for the console; it never costs a run
        pass


def _run_on_worker(task: RunTask, dataset_box: list, threads: int, networks=(),
                   started_key: str | None = None) -> RunRecord:
    """What a Ray task runs, in a Ray worker process."""
    import torch

    from ..tasks import execute, provide_dataset
    from ..user_networks import use

    if started_key is not None:
        note_start(started_key)

    torch.set_num_threads(threads)  # Ray gave this task `threads` CPUs
    use(networks)  # a no-op when this worker already has them
    if dataset_box and provided_dataset(task.config.dataset) is None:
        import ray

        provide_dataset(ray.get(dataset_box[0]))
    return execute(task)
