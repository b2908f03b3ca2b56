"""The ray executor: same tables as the local executor, lost workers retried, no Ray -> one line.

Ray starts slowly (5-10 s here), so the tests that only need *a* Ray instance share one
started by a module fixture; the executor uses an instance the process is already
connected to.  The equality test goes through the CLI's own start-and-stop path.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench import schema
from bench.executors.ray_executor import TASK_PREFIX
from bench.storage import load_record, read_tables
from conftest import run_cli

pytestmark = pytest.mark.ray

# Columns that measure the machine or the moment rather than the training.
VARYING = {t.file: schema.varying(t) for t in schema.TABLES}  # times and the machine


def grid_args(out: Path, *extra: str, archs: str = "lenet,dilated", seeds: str = "2") -> list[str]:
    return ["--archs", archs, "--dataset", "digits", "--seeds", seeds, "--epochs", "1",
            "--out", str(out), "--no-report", *extra]  # a later --epochs wins


def metric_tables(out: Path) -> dict[str, pd.DataFrame]:
    tables = read_tables(out)
    return {name: df.drop(columns=[c for c in df.columns if c in VARYING[name]])
            for name, df in tables.items()}


@pytest.fixture(scope="module")
def ray_instance():
    """One private local Ray instance (2 CPUs, no dashboard) for the tests of this module."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.fail("a Ray instance is already connected in this process")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def busy_workers() -> list[psutil.Process]:
    """This process's Ray workers training a run now (Ray titles a busy worker by its task name)."""
    busy = []
    for proc in psutil.Process().children(recursive=True):  # our Ray's raylet and its workers
        try:
            if proc.cmdline() and proc.cmdline()[0].startswith("ray::" + TASK_PREFIX):
                busy.append(proc)
        except psutil.Error:
            continue
    return busy


class WorkerKiller(threading.Thread):
    """SIGKILLs the first Ray worker process it sees training a run (once)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed_pid: int | None = None
        self.killed_run: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set() and self.killed_pid is None:
            for proc in busy_workers():
                try:
                    title = proc.cmdline()[0]
                except psutil.Error:
                    continue
                self.killed_run = title.removeprefix("ray::" + TASK_PREFIX).strip()
                os.kill(proc.pid, signal.SIGKILL)
                self.killed_pid = proc.pid
                return
            time.sleep(0.01)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


def test_ray_tables_equal_local_tables(tmp_path):
    ray = pytest.importorskip("ray")
    connected_before = ray.is_initialized()
    # One thread per run in both: local with one worker per core, Ray with 1 CPU per task.
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert run_cli(*grid_args(local, "--workers", str(os.cpu_count() or 1))) == 0
    assert run_cli(*grid_args(remote, "--executor", "ray", "--workers", "2")) == 0
    # A Ray instance the executor started is stopped again.
    assert ray.is_initialized() == connected_before

    expected, got = metric_tables(local), metric_tables(remote)
    assert set(got) == {"runs.csv", "epochs.csv", "confusion.csv"}
    assert len(got["runs.csv"]) == 4 and set(got["runs.csv"]["status"]) == {"ok"}
    for name in expected:
        pd.testing.assert_frame_equal(got[name], expected[name], check_exact=True, obj=name)
    # The tensors came back too and were stored by the driver.
    run_id = got["runs.csv"]["run_id"].iloc[0]
    assert (remote / "runs" / run_id / "weights.pt").is_file()


def test_killed_worker_is_retried_and_grid_completes(tmp_path, ray_instance):
    out = tmp_path / "grid"
    killer = WorkerKiller()
    killer.start()
    try:
        status = run_cli(*grid_args(out, "--executor", "ray", archs="dilated", seeds="3"))
    finally:
        killer.stop()
    assert killer.killed_pid is not None, "no Ray worker was seen training a run"
    assert not psutil.pid_exists(killer.killed_pid) or \
        psutil.Process(killer.killed_pid).status() == psutil.STATUS_ZOMBIE
    assert status == 0
    runs = read_tables(out)["runs.csv"]
    assert len(runs) == 3 and set(runs["status"]) == {"ok"}
    assert killer.killed_run in set(runs["run_id"])  # the killed run is there, trained on retry


def test_run_whose_worker_dies_too_often_is_failed_and_resumable(tmp_path, ray_instance):
    out = tmp_path / "grid"
    killer = WorkerKiller()
    killer.start()
    try:
        # --ray-retries: the old name of --retries, still understood.
        status = run_cli(*grid_args(out, "--executor", "ray", "--ray-retries", "0", archs="dilated"))
    finally:
        killer.stop()
    assert killer.killed_pid is not None
    assert status == 1  # a failed run, but the grid finished
    runs = read_tables(out)["runs.csv"].set_index("run_id")
    assert len(runs) == 2
    assert runs.loc[killer.killed_run, "status"] == "failed"
    assert "WorkerCrashedError" in runs.loc[killer.killed_run, "error"]
    other = next(r for r in runs.index if r != killer.killed_run)
    assert runs.loc[other, "status"] == "ok"

    # Resume: the failed run is trained again, the finished one reused.
    assert run_cli(*grid_args(out, "--executor", "ray", archs="dilated")) == 0
    assert load_record(out, killer.killed_run).status == "ok"
    assert set(read_tables(out)["runs.csv"]["status"]) == {"ok"}


def test_runs_queued_behind_other_work_are_reported(ray_instance, monkeypatch):
    """Both CPUs busy with someone else's task: after the quiet time one line says how many
    runs wait and what the cluster has free and busy (and here, frees the CPUs)."""
    from bench.config import RunConfig
    from bench.executors import waiting
    from bench.executors.ray_executor import RayExecutor
    from bench.tasks import DataRequest, RunTask

    ray = ray_instance
    monkeypatch.setattr(waiting, "QUIET_SECONDS", 2.0)

    def occupy_every_cpu():  # defined here, so Ray ships it by value
        time.sleep(600)

    hog = ray.remote(num_cpus=2)(occupy_every_cpu).remote()
    deadline = time.monotonic() + 120
    while ray.available_resources().get("CPU", 0) > 0:
        assert time.monotonic() < deadline, "the hog never took the CPUs"
        time.sleep(0.1)
    notes = []

    def note(line: str) -> None:
        notes.append(line)
        ray.cancel(hog, force=True)

    tasks = [RunTask(RunConfig(arch="lenet-12", dataset="digits", seed=s, epochs=1), DataRequest()) for s in range(2)]
    records = list(RayExecutor().run(tasks, None, note))
    assert [r.status for r in records] == ["ok", "ok"]
    assert notes, "no word while the runs waited"
    assert re.fullmatch(r"2 runs queued, none started or finished in the last \d+ s; the cluster has 0 of 2 CPUs "
                        r"free \(2 busy\) \(each run needs 1 CPU\); queued runs start as other work frees them",
                        notes[0]), notes[0]


def test_a_task_notes_its_start_for_the_driver(ray_instance):
    from bench.executors.ray_executor import forget_started, note_start, started_runs

    prefix = "started:test:"
    ray_instance.get(ray_instance.remote(note_start).remote(prefix + "lenet-digits-s0-abc"))
    assert started_runs(prefix) == ["lenet-digits-s0-abc"]
    forget_started(prefix)
    assert started_runs(prefix) == []


def test_interrupt_cancels_outstanding_tasks(tmp_path, ray_instance):
    out = tmp_path / "grid"

    def interrupt_after_first_record():
        deadline = time.monotonic() + 60
        while not list(out.glob("runs/*/record.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would; the runner turns it into Interrupted

    thread = threading.Thread(target=interrupt_after_first_record, daemon=True)
    thread.start()
    # 6 epochs: the interrupt has the second pair of runs' whole length to land in before all 4 end.
    status = run_cli(*grid_args(out, "--executor", "ray", "--epochs", "6", archs="lenet", seeds="4"))
    thread.join(timeout=5)
    assert status == 130
    assert 1 <= len(list(out.glob("runs/*/record.json"))) < 4
    # Cancelled with force: no worker goes on training a run for nobody (queued ones never start).
    deadline = time.monotonic() + 5
    while busy_workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert busy_workers() == []
    time.sleep(1)
    assert busy_workers() == []


def test_without_ray_one_line_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    out = tmp_path / "grid"
    assert run_cli(*grid_args(out, "--executor", "ray")) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == ["error: --executor ray needs Ray, which is not installed: pip install 'cnnbench[ray]'"]
    assert not out.exists()  # it stopped before loading data or writing anything


def test_ray_options_without_ray_executor_are_rejected(tmp_path, capsys):
    assert run_cli(*grid_args(tmp_path / "grid", "--ray-address", "auto")) == 2
    assert capsys.readouterr().err.strip() == "error: --ray-address only used with --executor ray"


def test_unreachable_cluster_address_fails_fast_in_one_line(tmp_path, capsys):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port on which nothing listens once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "grid"
    # Without the probe, ray.init would retry this address for minutes.
    assert run_cli(*grid_args(out, "--executor", "ray", "--ray-address", f"ray://127.0.0.1:{port}")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --ray-address ray://127.0.0.1:{port}: no Ray cluster")
    assert not out.exists()


def test_gpu_options_are_validated_without_a_gpu(tmp_path, capsys):
    pytest.importorskip("ray")
    from bench.errors import BenchError
    from bench.executors import make_executor

    packed = make_executor("ray", device="cuda", gpus_per_run=0.25)
    assert packed.gpus_per_run == 0.25 and packed.describe()["gpus_per_run"] == 0.25
    assert make_executor("ray", device="cuda").gpus_per_run == 1.0
    assert make_executor("ray", device="cpu").gpus_per_run == 0.0
    for options, message in [
        ({"device": "cuda:1"}, "Ray assigns GPUs"),
        ({"device": "cuda", "gpus_per_run": 1.5}, "a fraction up to 1 or a whole number"),
    ]:
        with pytest.raises(BenchError, match=message):
            make_executor("ray", **options)
    # On the command line, on a CPU run:
    assert run_cli(*grid_args(tmp_path / "grid", "--executor", "ray", "--device", "cpu",
                              "--gpus-per-run", "0.5")) == 2
    assert capsys.readouterr().err.strip() == "error: --gpus-per-run needs --device cuda"


def test_a_signal_during_a_ray_call_reaches_the_runner_between_calls():
    from bench.executors.ray_executor import SignalsBetweenRayCalls
    from bench.runner import Interrupted

    seen = []

    def runner_handler(signum, _frame):  # what the runner installs: raise wherever we are
        seen.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, runner_handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signals = SignalsBetweenRayCalls()
        with signals.held():  # as around ray.wait / ray.get
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while Ray blocks: nothing raised in there
            signal.raise_signal(signal.SIGTERM)  # a second signal is not replayed
            assert seen == []
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # as ray.init may install its own
        assert signal.getsignal(signal.SIGINT) is runner_handler  # handlers put back
        with pytest.raises(Interrupted, match="SIGINT"):
            signals.replay()
        assert seen == [signal.SIGINT]
        signals.replay()  # handed over once
        assert seen == [signal.SIGINT]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
