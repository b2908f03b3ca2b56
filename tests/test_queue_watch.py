"""No silent waits: runs queued on a busy cluster are reported (a stub cluster, a fake clock)."""

from __future__ import annotations

from bench.executors.waiting import QUIET_SECONDS, ClusterLoad, QueueWatch


class Cluster:
    """What the Ray executor would report: runs that started, and the cluster's load."""

    def __init__(self, cpus: float = 2, free_cpus: float = 0, gpus: float = 0, free_gpus: float = 0) -> None:
        self.started: set[str] = set()
        self.load = ClusterLoad(cpus, free_cpus, gpus, free_gpus)
        self.now = 0.0

    def watch(self, gpus_per_run: float = 0.0) -> QueueWatch:
        return QueueWatch(lambda: self.started, lambda: self.load, cpus_per_run=1, gpus_per_run=gpus_per_run,
                          clock=lambda: self.now)


RUNS = ["a", "b", "c", "d"]


def test_queued_runs_on_a_busy_cluster_are_reported_after_the_quiet_time():
    cluster = Cluster(cpus=2, free_cpus=0)
    watch = cluster.watch()
    cluster.now = QUIET_SECONDS - 1
    assert watch.check(RUNS) is None  # not yet
    cluster.now = QUIET_SECONDS
    assert watch.check(RUNS) == ("4 runs queued, none started or finished in the last 30 s; the cluster has "
                                 "0 of 2 CPUs free (2 busy) (each run needs 1 CPU); queued runs start as other "
                                 "work frees them")
    # Said again only after twice as long, if nothing moves.
    cluster.now += QUIET_SECONDS
    assert watch.check(RUNS) is None
    cluster.now += QUIET_SECONDS
    assert watch.check(RUNS).startswith("4 runs queued, none started or finished in the last 60 s")


def test_runs_that_start_or_finish_keep_it_quiet():
    cluster = Cluster(cpus=4, free_cpus=2)
    watch = cluster.watch()
    cluster.now = 25
    watch.finished("a")
    cluster.now = 50  # 25 s since that run finished
    assert watch.check(RUNS[1:]) is None
    cluster.started = {"b"}
    cluster.now = 60
    assert watch.check(RUNS[1:]) is None  # b started since the last look: that is progress
    cluster.now = 90
    assert watch.check(RUNS[1:]) == ("2 runs queued and 1 training, none started or finished in the last 30 s; "
                                     "the cluster has 2 of 4 CPUs free (2 busy) (each run needs 1 CPU)")


def test_runs_that_all_train_are_not_waiting():
    cluster = Cluster()
    watch = cluster.watch()
    cluster.started = set(RUNS[:2])
    cluster.now = 100
    assert watch.check(RUNS[:2]) is None  # they started: progress, then all train
    cluster.now = 1000
    assert watch.check(RUNS[:2]) is None
    assert watch.check([]) is None


def test_gpus_are_reported_when_runs_need_them():
    cluster = Cluster(cpus=8, free_cpus=6, gpus=1, free_gpus=0)
    watch = cluster.watch(gpus_per_run=0.5)
    cluster.now = QUIET_SECONDS
    assert watch.check(["a"]) == ("1 run queued, none started or finished in the last 30 s; the cluster has "
                                  "6 of 8 CPUs free (2 busy) and 0 of 1 GPUs free (1 busy) (each run needs 1 CPU "
                                  "and 0.5 GPU); queued runs start as other work frees them")
