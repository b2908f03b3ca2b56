"""Without bench.fast (CNNBENCH_PLAIN=1: bench.train.PlainPolicy) a grid still trains, end to end."""

from __future__ import annotations

import subprocess

import pandas as pd

import bench.train
from conftest import PYTHON, ROOT, cli_env, run_cli


def test_a_grid_trains_with_the_plain_policy_and_no_speed_trick(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNBENCH_PLAIN", "1")

    def no_fast(cfg):
        raise AssertionError("bench.fast was consulted under CNNBENCH_PLAIN=1")

    monkeypatch.setattr(bench.train, "speedups", no_fast)
    out = tmp_path / "out"
    assert run_cli("--archs", "lenet-12,bn-convnet", "--dataset", "digits", "--seeds", "1", "--epochs", "2",
                   "--workers", "1", "--no-report", "--out", str(out)) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 and (runs["status"] == "ok").all()
    assert (runs["memory_format"] == "contiguous").all()  # bench.fast would pick channels_last on CPU
    assert (runs["test_acc"] > 0.5).all()  # it learned: 10 classes, chance is 0.1

    stacked = tmp_path / "stacked"  # a driver beside the loop trains with the plain policy too
    assert run_cli("--archs", "lenet-12", "--dataset", "digits", "--seeds", "2", "--epochs", "1",
                   "--workers", "1", "--stack-seeds", "2", "--no-report", "--out", str(stacked)) == 0
    runs = pd.read_csv(stacked / "runs.csv")
    assert (runs["step_mode"] == "stacked").all() and list(runs["stacked_with"]) == ["0,1", "0,1"]


def test_without_numba_solo_runs_and_stacks_train_on_aten_and_say_so_once(tmp_path):
    """numba is an optional extra: a process that cannot import it still trains a stacked grid."""
    code = ("import sys; sys.modules['numba'] = sys.modules['llvmlite'] = None\n"
            "from bench.cli import main; raise SystemExit(main(sys.argv[1:]))")
    out = tmp_path / "out"
    proc = subprocess.run([PYTHON, "-c", code, "--archs", "lenet-12,dilated", "--dataset", "digits", "--seeds", "2",
                           "--epochs", "1", "--workers", "1", "--stack-seeds", "2", "--no-report", "--out", str(out)],
                          cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("stacks use aten's kernels, not bench.fast's: numba is not installed") == 1
    runs = pd.read_csv(out / "runs.csv").set_index("arch")
    assert runs.loc["lenet-12", "aten_stack"].all() and (runs.loc["lenet-12", "step_mode"] == "stacked").all()
    assert (runs.loc["dilated", "status"] == "ok").all() and not runs.loc["dilated", "stacked"].any()
