"""Shared fixtures.

Tests never touch the network or the user's cache: downloads are off and the cache
points into a temporary directory.  Real MNIST is used only by tests marked ``slow``,
found through $CNNBENCH_DATA or the checkout's ``../shared/data``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SHARED_DATA = ROOT.parent / "shared" / "data"
# The suite's grids compare at one shared setting (--no-tune) unless a test asks for --tune:
# tuning every small grid would multiply its runs.  Set for the whole session, so that
# session- and module-scoped fixtures and every subprocess see it too.
os.environ["CNNBENCH_NO_TUNE"] = "1"
# Likewise the evaluations beyond clean accuracy: the grids that test them ask for them
# (the shared digits grid among them); the rest train and compare what they test.
os.environ["CNNBENCH_EVALUATIONS"] = "none"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CNNBENCH_NO_DOWNLOAD", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("CNNBENCH_DATA", raising=False)


def real_data_dir() -> Path | None:
    """Where real MNIST lives for ``slow`` tests, or None."""
    env = os.environ.get("CNNBENCH_DATA")
    for candidate in (Path(env) if env else None, SHARED_DATA):
        if candidate is not None and (candidate / "mnist").is_dir():
            return candidate
    return None


@pytest.fixture
def mnist_dir() -> Path:
    found = real_data_dir()
    if found is None:
        pytest.skip("real MNIST not found: set CNNBENCH_DATA to a folder holding mnist/")
    return found


def run_cli(*args: str) -> int:
    """Run ``python -m bench`` in-process and return its exit status."""
    from bench.cli import main

    return main(list(args))


def cli_env(cache: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``python -m bench`` subprocess: this checkout, no downloads."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), CNNBENCH_NO_DOWNLOAD="1", **extra)
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    return env


def start_cli(*args: str, cache: Path | None = None, **extra: str) -> subprocess.Popen:
    """Start ``python -m bench ARGS`` in a subprocess (text pipes for stdout and stderr)."""
    return subprocess.Popen([PYTHON, "-m", "bench", *args], cwd=ROOT, env=cli_env(cache, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_cli_process(*args: str, cache: Path | None = None, timeout: float = 300,
                    **extra: str) -> subprocess.CompletedProcess:
    """Run ``python -m bench ARGS`` in a subprocess to the end; its status and output."""
    return subprocess.run([PYTHON, "-m", "bench", *args], cwd=ROOT, env=cli_env(cache, **extra),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A small finished grid on the embedded digits: 2 architectures x 2 seeds x 2 epochs.

    Session-scoped and read-only for tests: copy it before changing anything in it.
    """
    out = tmp_path_factory.mktemp("digits-run")
    mp = pytest.MonkeyPatch()
    mp.setenv("CNNBENCH_NO_DOWNLOAD", "1")
    try:
        status = run_cli("--archs", "lenet,dilated", "--dataset", "digits", "--seeds", "2",
                         "--epochs", "2", "--workers", "1", "--out", str(out), "--no-report",
                         "--evaluations", "default")
    finally:
        mp.undo()
    assert status == 0
    return out
