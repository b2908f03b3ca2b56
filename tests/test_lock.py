"""One writer per output folder (bench.lock): wait or stop, take over a dead holder's lock,
leave another host's alone, release on every way out; readers take no lock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.lock import LOCK_FILE, OutputLock, read_holder
from conftest import PYTHON, ROOT, cli_env, run_cli, start_cli

HOLD = """
import sys
from pathlib import Path
from bench.lock import OutputLock
with OutputLock(Path(sys.argv[1]), command="the holder"):
    print("held", flush=True)
    sys.stdin.readline()
"""


class Holder:
    """Another process that holds ``out``'s lock until ``release()`` (or is killed)."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([PYTHON, "-c", HOLD, str(out)], cwd=ROOT, env=cli_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=60) == 0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.proc.stdin.close()
        self.proc.stdout.close()


@pytest.fixture
def holder(tmp_path):
    holders = []

    def make(out: Path) -> Holder:
        holders.append(Holder(out))
        return holders[-1]

    yield make
    for h in holders:
        h.close()


def described(pid: int, command: str) -> str:
    return f"pid {pid} on {socket.gethostname()} ({command}), since "


def test_a_second_writer_with_no_wait_stops_at_once_naming_the_holder(tmp_path, holder):
    out = tmp_path / "out"
    other = holder(out)
    with pytest.raises(BenchError) as caught:
        with OutputLock(out, command="me", wait=False):
            pytest.fail("took a lock that is held")
    message = str(caught.value)
    assert message.startswith(f"{out} is in use by {described(other.pid, 'the holder')}")
    assert message.endswith("; wait for it to finish, or run again without --no-wait to wait for it")
    assert read_holder(out).pid == other.pid  # untouched


def test_a_waiting_writer_says_whom_it_waits_for_then_gets_the_lock(tmp_path, holder):
    out = tmp_path / "out"
    other = holder(out)
    notes = []
    releaser = threading.Timer(1.0, other.release)
    releaser.start()
    try:
        with OutputLock(out, command="me", on_note=notes.append, poll_seconds=0.05) as lock:
            assert lock.held and read_holder(out).pid != other.pid
            assert read_holder(out).command == "me"
    finally:
        releaser.join()
    assert len(notes) == 1, notes  # said once, not at every try
    assert notes[0].startswith(f"waiting for {out}: it is in use by {described(other.pid, 'the holder')}")
    assert not (out / LOCK_FILE).exists()


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over(tmp_path, holder):
    out = tmp_path / "out"
    dead = holder(out)
    dead.kill()  # SIGKILL: no cleanup, the lock file stays
    assert read_holder(out).pid == dead.pid
    notes = []
    with OutputLock(out, command="me", wait=False, on_note=notes.append):
        assert read_holder(out).command == "me"
    assert len(notes) == 1
    assert notes[0].startswith(f"taking over the lock on {out} left by {described(dead.pid, 'the holder')}")
    assert notes[0].endswith(": that process is no longer running")
    assert not (out / LOCK_FILE).exists()


def test_a_lock_recorded_by_another_host_is_reported_not_stolen(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    record = {"pid": 4242, "host": "elsewhere.example", "command": "python -m bench", "since": "2026-12-01T10:00:00"}
    (out / LOCK_FILE).write_text(json.dumps(record))
    with pytest.raises(BenchError) as caught:
        with OutputLock(out, command="me"):
            pytest.fail("stole another host's lock")
    assert str(caught.value) == (
        f"{out} is locked by pid 4242 on elsewhere.example (python -m bench), since 2026-12-01T10:00:00, another "
        f"machine; this one cannot tell whether it still runs: if it does not, remove {out / LOCK_FILE} and run again")
    assert json.loads((out / LOCK_FILE).read_text()) == record


def test_the_lock_is_released_on_an_error_and_on_sigterm(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError):
        with OutputLock(out, command="me"):
            raise RuntimeError("a bug")
    assert not (out / LOCK_FILE).exists()

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as caught:
        with OutputLock(out, command="me"):
            signal.raise_signal(signal.SIGTERM)
            pytest.fail("SIGTERM did not end the block")
    assert caught.value.code == 143
    assert not (out / LOCK_FILE).exists()
    assert signal.getsignal(signal.SIGTERM) == before
    with OutputLock(out, command="me", wait=False):  # free again
        pass


GRID = ["--archs", "lenet-12", "--dataset", "digits", "--seeds", "2", "--epochs", "1", "--workers", "1",
        "--no-report"]


def test_the_command_with_no_wait_stops_with_one_line_and_writes_nothing(tmp_path, holder, capsys):
    out = tmp_path / "out"
    other = holder(out)
    assert run_cli(*GRID, "--no-wait", "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out} is in use by {described(other.pid, 'the holder')}")
    assert len(err.splitlines()) == 1
    assert not list(out.glob("runs/*")) and not (out / "runs.csv").exists() and not list(out.glob("samples-*"))


def test_two_identical_commands_train_each_run_once(tmp_path):
    """The second waits for the first (saying so), then reuses everything it trained."""
    out = tmp_path / "out"
    first = start_cli(*GRID, "--out", str(out), cache=tmp_path / "cache")
    deadline = time.monotonic() + 120
    while read_holder(out) is None or read_holder(out).pid != first.pid:
        assert first.poll() is None and time.monotonic() < deadline, "the first command never took the lock"
        time.sleep(0.02)
    # Paused while holding the lock, the first cannot finish before the second reaches it
    # (on a fast machine its two runs took less time than the second's start-up).
    os.kill(first.pid, signal.SIGSTOP)
    second = start_cli(*GRID, "--out", str(out), cache=tmp_path / "cache")
    watchdog = threading.Timer(120, second.kill)
    watchdog.start()
    try:
        seen = []
        while not any("waiting for" in line for line in seen):
            line = second.stdout.readline()
            assert line, f"the second command ended without waiting: {''.join(seen)}{second.stderr.read()}"
            seen.append(line)
    finally:
        watchdog.cancel()
        os.kill(first.pid, signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert "(0 reused, 2 trained)" in stdout
    rest, second_err = second.communicate(timeout=300)
    assert second.returncode == 0, second_err
    assert f"waiting for {out}: it is in use by pid {first.pid} on {socket.gethostname()} " in "".join(seen)
    assert "(2 reused, 0 trained)" in rest
    assert not (out / LOCK_FILE).exists()


def test_report_and_verify_read_while_a_grid_holds_the_lock(digits_run, tmp_path, holder):
    out = tmp_path / "out"
    shutil.copytree(digits_run, out)
    holder(out)
    assert run_cli("report", str(out)) == 0
    assert run_cli("verify", str(out), "--arch", "lenet", "--seed", "0") == 0
