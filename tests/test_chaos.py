"""Chaos: SIGKILL workers and drivers at seeded random moments; nothing is lost or doubled.

A small grid on the embedded digits runs while a seeded schedule SIGKILLs worker processes
(what the OOM killer does) and drivers, each at a seeded random moment within two epochs
(timed on this machine) after the grid last moved (wrote a checkpoint or a record),
re-running a driver after each kill, until the grid ends.  The final tables must equal those
of an uninterrupted grid bit for bit (metrics; not timings or environment), with no
duplicate rows, no temporary file, no checkpoint and no lock left.  The second test does the
same with two drivers writing to one folder at once.

Each test prints its figures (kills delivered, runs retried, runs finished when the schedule
ended, what the user saw): run with ``-s`` to read them.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from bench.lock import LOCK_FILE, read_holder
from bench.storage import CHECKPOINT_FILE, leftover_temporaries, read_tables
from conftest import run_cli, start_cli
from test_resume import assert_same_tables

pytestmark = pytest.mark.chaos

# 6 runs of a small network, 20 epochs each, on the driver and one worker; a checkpoint after
# every epoch, so the grid moves (writes a file) 120 times.  The room is for the restarts: while
# a killed worker's replacement starts (seconds: it imports torch) the driver trains on alone, and
# with 8 epochs a fast machine (0.1 s an epoch) had finished the grid after 3 of the 5 kills.
EPOCHS = 20
GRID = ["--archs", "lenet-12", "--dataset", "digits", "--seeds", "6", "--epochs", str(EPOCHS), "--no-report"]
CHAOS = [*GRID, "--workers", "2", "--checkpoint-every", "1"]
RUNS = 6
TIMEOUT = 300.0  # per wait: generous, for a loaded machine


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The same grid, uninterrupted, in this process (one trainer: the bits do not depend on it)."""
    out = tmp_path_factory.mktemp("reference")
    mp = pytest.MonkeyPatch()
    mp.setenv("CNNBENCH_NO_DOWNLOAD", "1")
    try:
        assert run_cli(*GRID, "--workers", "1", "--out", str(out)) == 0
    finally:
        mp.undo()
    return out


@pytest.fixture(scope="module")
def pace(reference) -> float:
    """Seconds an epoch of the grid takes on this machine: kills wait random fractions of it,
    so that they land mid-run however fast the machine is."""
    epochs = read_tables(reference)["epochs.csv"]
    return float((epochs["train_seconds"] + epochs["eval_seconds"]).median())


@dataclass
class Chaos:
    """Starts drivers, kills what the schedule says, and keeps what every driver printed."""

    out: Path
    cache: Path
    rng: random.Random
    pace: float  # seconds an epoch takes
    outputs: list[str] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=lambda: {"worker": 0, "driver": 0})
    exits: list[int] = field(default_factory=list)
    moved: set = field(default_factory=set)  # the grid's progress at the last kill
    finished: int | None = None  # runs already finished when the schedule ended

    def start(self) -> subprocess.Popen:
        # Unbuffered, so that what a driver printed before its SIGKILL is kept.
        return start_cli(*CHAOS, "--out", str(self.out), cache=self.cache, PYTHONUNBUFFERED="1")

    def finish(self, proc: subprocess.Popen) -> int:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        self.outputs.append(stdout + stderr)
        assert "Traceback" not in stderr, stderr
        self.exits.append(proc.returncode)
        return proc.returncode

    def moment(self, procs: list[subprocess.Popen]) -> bool:
        """Wait until the grid moved since the last kill (a checkpoint or record was written),
        then up to two epochs more; False if every driver ended first."""
        deadline = time.monotonic() + TIMEOUT
        while not (_progress(self.out) - self.moved):
            if all(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        time.sleep(self.rng.uniform(0.0, 2.0) * self.pace)
        self.moved = _progress(self.out)
        return any(p.poll() is None for p in procs)

    def schedule_ended(self) -> None:
        """Note how many runs had finished: what is left is the margin that kept each kill mid-grid."""
        self.finished = len(list(self.out.glob("runs/*/record.json")))

    def kill_driver(self, proc: subprocess.Popen) -> bool:
        if proc.poll() is not None:
            return False
        proc.kill()
        self.finish(proc)
        self.kills["driver"] += 1
        return True

    def kill_worker(self, proc: subprocess.Popen) -> bool:
        """SIGKILL a worker of ``proc`` a random moment after it reported an epoch: mid-run."""
        deadline = time.monotonic() + TIMEOUT
        baseline: dict[int, int] = {}
        while proc.poll() is None and time.monotonic() < deadline:
            for worker in _workers(proc):
                written = _written(worker)
                if written is not None and baseline.setdefault(worker.pid, written) == written:
                    continue  # nothing sent to the driver since we first saw it: still starting
                time.sleep(self.rng.uniform(0.0, 2.0) * self.pace)
                try:
                    worker.kill()
                except psutil.NoSuchProcess:
                    continue  # it ended on its own meanwhile
                self.kills["worker"] += 1
                return True
            time.sleep(0.02)
        return False

    def holder(self, procs: list[subprocess.Popen]) -> subprocess.Popen | None:
        """The driver that holds the lock (after a holder died, the one that takes it over)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            holder = read_holder(self.out)
            for proc in procs:
                if holder is not None and proc.pid == holder.pid and proc.poll() is None:
                    return proc
            time.sleep(0.02)
        return None

    def finish_grid(self, procs: list[subprocess.Popen]) -> None:
        """Let the drivers end; re-run while a run is still failed (its worker died too often)."""
        statuses = [self.finish(p) for p in procs]
        for _ in range(3):
            if all(s == 0 for s in statuses):
                return
            assert all(s in (0, 1) for s in statuses), self.outputs[-1]
            statuses = [self.finish(self.start())]
        pytest.fail(f"the grid did not end well: {self.outputs[-1]}")

    def text(self) -> str:
        return "\n".join(self.outputs)

    def retried(self) -> int:
        return len(re.findall(r"; retrying it \(\d+ of \d+\)", self.text()))

    def failed_on_the_way(self) -> int:
        """Runs stored failed (their worker died past --retries) that a re-run trained again."""
        return len(re.findall(r"^failed: ", self.text(), re.M))

    def seen(self) -> list[str]:
        """The kinds of one-line messages the user saw, one example each."""
        kinds = ["worker killed by signal 9", "taking over the lock", "waiting for", "failed: "]
        lines = self.text().splitlines()
        return [next(line for line in lines if line.startswith(kind))
                for kind in kinds if any(line.startswith(kind) for line in lines)]

    def report(self, name: str, reference: Path) -> None:
        runs = read_tables(self.out)["runs.csv"]
        lost = RUNS - int((runs["status"] == "ok").sum())
        try:
            assert_whole(self.out, reference)
            equal = "yes"
        except AssertionError:
            equal = "no"
        print(f"\n{name}: kills delivered: {self.kills['worker']} workers, {self.kills['driver']} drivers; "
              f"runs retried: {self.retried()}; runs failed past their retries, then trained by a re-run: "
              f"{self.failed_on_the_way()}; runs finished when the schedule ended: {self.finished} of {RUNS}; "
              f"driver invocations: {len(self.outputs)}; runs lost: {lost}; "
              f"tables equal to the uninterrupted grid's, nothing left over: {equal}")
        for line in self.seen():
            print(f"  saw: {line.strip()}")


def _progress(out: Path) -> set[tuple[str, int]]:
    """Every checkpoint and record written so far, with its modification time."""
    found = set()
    for path in out.glob("runs/*/*"):
        if path.name in (CHECKPOINT_FILE, "record.json"):
            try:
                found.add((str(path), path.stat().st_mtime_ns))
            except FileNotFoundError:
                continue  # a checkpoint removed as its run finished
    return found


def _written(worker: psutil.Process) -> int | None:
    """Bytes ``worker`` wrote so far: it writes to its pipe when an epoch ends."""
    try:
        return worker.io_counters().write_chars
    except (psutil.Error, AttributeError):
        return None


def _workers(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(proc.pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def assert_whole(out: Path, reference: Path) -> None:
    """The tables of an uninterrupted grid, each run once, and nothing left over."""
    tables = read_tables(out)
    assert list(tables["runs.csv"]["status"]) == ["ok"] * RUNS  # no run lost
    assert not tables["runs.csv"].duplicated("run_id").any()
    assert not tables["epochs.csv"].duplicated(["run_id", "epoch"]).any()
    assert not tables["confusion.csv"].duplicated(["run_id", "true", "predicted"]).any()
    assert_same_tables(out, reference)
    assert leftover_temporaries(out) == []
    assert not list(out.glob(f"runs/*/{CHECKPOINT_FILE}")) and not (out / LOCK_FILE).exists()
    assert not (out / "runs" / ".damaged").exists()


def test_killed_workers_and_drivers_lose_nothing(tmp_path, reference, pace):
    chaos = Chaos(tmp_path / "out", tmp_path / "cache", random.Random(20261201), pace)
    schedule = ["worker", "driver", "worker", "driver", "worker"]
    chaos.rng.shuffle(schedule)
    driver = chaos.start()
    for kind in schedule:
        if not chaos.moment([driver]):
            break
        if kind == "worker":
            chaos.kill_worker(driver)
        elif chaos.kill_driver(driver):
            driver = chaos.start()  # the user runs the same command again
    chaos.schedule_ended()
    chaos.finish_grid([driver])
    chaos.report("one writer", reference)
    assert chaos.kills["worker"] >= 3 and chaos.kills["driver"] >= 2  # the whole schedule
    assert_whole(chaos.out, reference)
    assert chaos.retried() >= 1


def test_two_writers_killed_at_random_lose_nothing_and_train_each_run_once(tmp_path, reference, pace):
    chaos = Chaos(tmp_path / "out", tmp_path / "cache", random.Random(7), pace)
    drivers = [chaos.start(), chaos.start()]
    for kind in ["worker", "waiter", "holder", "worker", "holder"]:
        if not chaos.moment(drivers):
            break
        holder = chaos.holder(drivers)
        if holder is None:
            break
        if kind == "worker":
            chaos.kill_worker(holder)
            continue
        target = holder if kind == "holder" else next(d for d in drivers if d is not holder)
        if chaos.kill_driver(target):
            drivers[drivers.index(target)] = chaos.start()  # its user runs the command again
    chaos.schedule_ended()
    chaos.finish_grid(drivers)
    chaos.report("two writers", reference)
    assert chaos.kills["worker"] >= 2 and chaos.kills["driver"] >= 3  # the whole schedule
    assert_whole(chaos.out, reference)
    text = chaos.text()
    assert "waiting for " in text  # the second writer said whom it waited for
    # Every run was trained to its end once: a writer that got the lock reused the other's runs.
    assert len(re.findall(r"^\[\d+/\d+\] .*: test acc ", text, re.M)) <= RUNS
