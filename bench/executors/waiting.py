"""No silent waits: say so when runs sit queued on a cluster and nothing moves.

A Ray cluster busy with other work queues a grid's tasks without a word.  ``QueueWatch``
notices when runs are queued and none has started or finished for ``QUIET_SECONDS``, and
returns one line: how many wait, how many train, and what the cluster has free and busy.
It knows nothing of Ray: the executor hands it which runs have started and the cluster's
load, so it is tested with a stub cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

QUIET_SECONDS = 30.0  # Ray starts a worker in seconds; half a minute of nothing is news


@dataclass(frozen=True)
class ClusterLoad:
    """A cluster's resources, total and free (Ray's cluster_resources, available_resources)."""

    cpus: float
    free_cpus: float
    gpus: float = 0.0
    free_gpus: float = 0.0


class QueueWatch:
    """Decides when to say that queued runs are waiting, and says it.

    Call ``finished(run_id)`` as runs finish and ``check(pending)`` while waiting; ``check``
    asks ``started()`` (the run ids that have begun) only when the quiet time is up, and
    returns a line, or None.  After a line the next one waits twice as long.
    """

    def __init__(self, started: Callable[[], Collection[str]], load: Callable[[], ClusterLoad],
                 cpus_per_run: float, gpus_per_run: float = 0.0, quiet_seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._started, self._load, self._clock = started, load, clock
        self.cpus_per_run, self.gpus_per_run = cpus_per_run, gpus_per_run
        self.quiet = QUIET_SECONDS if quiet_seconds is None else quiet_seconds
        self._wait = self.quiet
        self._since = clock()
        self._seen: set[str] = set()

    def finished(self, run_id: str) -> None:
        self._seen.add(run_id)
        self._moved()

    def check(self, pending: Collection[str]) -> str | None:
        if not pending or self._clock() - self._since < self._wait:
            return None
        started = set(self._started()) & set(pending)
        if started - self._seen:  # a run began since we last looked: not quiet after all
            self._seen |= started
            self._moved()
            return None
        queued = len(pending) - len(started)
        if queued == 0:
            self._since = self._clock()  # every run is training: nothing to say
            return None
        line = self.message(queued, len(started), self._clock() - self._since, self._load())
        self._since, self._wait = self._clock(), self._wait * 2
        return line

    def message(self, queued: int, training: int, quiet: float, load: ClusterLoad) -> str:
        runs = f"{queued} run{'s' if queued != 1 else ''} queued"
        if training:
            runs += f" and {training} training"
        text = (f"{runs}, none started or finished in the last {quiet:.0f} s; the cluster has "
                f"{_resource(load.free_cpus, load.cpus, 'CPU')}")
        need = f"each run needs {_number(self.cpus_per_run)} CPU"
        if self.gpus_per_run:
            text += f" and {_resource(load.free_gpus, load.gpus, 'GPU')}"
            need += f" and {_number(self.gpus_per_run)} GPU"
        blocked = load.free_cpus < self.cpus_per_run or (self.gpus_per_run and load.free_gpus < self.gpus_per_run)
        why = "; queued runs start as other work frees them" if blocked else ""
        return f"{text} ({need}){why}"

    def _moved(self) -> None:
        self._since, self._wait = self._clock(), self.quiet


def _resource(free: float, total: float, name: str) -> str:
    return f"{_number(free)} of {_number(total)} {name}s free ({_number(max(total - free, 0.0))} busy)"


def _number(value: float) -> str:
    return f"{value:g}"
