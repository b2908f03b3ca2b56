"""A worker process killed from outside (as the OOM killer does) costs a retry, not the grid."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench.storage import CHECKPOINT_FILE, leftover_temporaries, read_tables
from conftest import run_cli_process, start_cli

CAUSE = r"worker killed by signal 9 \(SIGKILL; out of memory\?\) during epoch [2-8]"


def grid(out: Path, *extra: str) -> list[str]:
    # On CPU the driver trains the first run (lenet-12) and one worker the second (lenet).  With
    # 8 epochs the kill, once epoch 1 is saved, has 7 epochs to land in on a loaded machine.
    return ["--archs", "lenet-12,lenet", "--dataset", "digits", "--seeds", "1", "--epochs", "8",
            "--workers", "2", "--checkpoint-every", "1", "--no-report", "--out", str(out), *extra]


def kill_the_worker_mid_run(args: list[str], out: Path, tmp_path: Path) -> tuple[int, str, str]:
    """Start the grid, SIGKILL its worker once the worker's run saved epoch 1; its outcome."""
    proc = start_cli(*args, cache=tmp_path / "cache")
    deadline = time.monotonic() + 300
    while not list(out.glob(f"runs/lenet-digits-*/{CHECKPOINT_FILE}")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the worker's run never saved an epoch: {proc.communicate()}")
        time.sleep(0.02)
    (worker,) = [p for p in psutil.Process(proc.pid).children(recursive=True)
                 if "spawn_main" in " ".join(p.cmdline())]
    worker.kill()
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, stdout, stderr


def test_a_killed_worker_is_replaced_and_its_run_retried(tmp_path):
    out = tmp_path / "out"
    status, stdout, stderr = kill_the_worker_mid_run(grid(out), out, tmp_path)
    assert status == 0, stderr
    assert "Traceback" not in stderr and "BrokenProcessPool" not in stdout + stderr
    assert re.search(CAUSE + r" while training lenet digits seed 0; retrying it \(1 of 2\)\n", stdout), stdout
    runs = read_tables(out)["runs.csv"]
    assert list(runs["status"]) == ["ok", "ok"]
    assert not list(out.glob(f"runs/*/{CHECKPOINT_FILE}")) and leftover_temporaries(out) == []


def test_a_run_whose_worker_dies_past_its_retries_is_failed_and_the_grid_goes_on(tmp_path):
    out = tmp_path / "out"
    status, stdout, stderr = kill_the_worker_mid_run(grid(out, "--retries", "0"), out, tmp_path)
    assert status == 1, stderr  # a failed run, as for other failed runs; no traceback
    assert "Traceback" not in stderr
    assert re.search(r"failed: lenet seed 0: " + CAUSE + r"\n", stdout), stdout
    runs = read_tables(out)["runs.csv"].set_index("arch")
    assert runs.loc["lenet-12", "status"] == "ok"
    assert runs.loc["lenet", "status"] == "failed" and re.fullmatch(CAUSE, runs.loc["lenet", "error"])

    # The failed run resumes from the checkpoint its killed worker saved; the other is reused.
    again = run_cli_process(*grid(out), cache=tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    assert "(1 reused, 1 trained)" in again.stdout
    runs = read_tables(out)["runs.csv"]
    assert list(runs["status"]) == ["ok", "ok"] and pd.isna(runs["error"]).all()
