"""Failures inside a run (divergence, out of memory) and the determinism audit."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import bench.tasks
from architectures import register_model, unregister_model
from bench.config import RunConfig
from bench.determinism import CUBLAS_ENV, CUBLAS_VALUE
from bench.executors import LocalExecutor
from bench.runner import run_grid
from bench.storage import read_tables
from bench.tasks import DataRequest, RunTask, execute
from conftest import run_cli

TINY = dict(arch="lenet", dataset="digits", epochs=1)


def test_a_diverging_run_is_recorded_and_the_grid_goes_on(tmp_path):
    blow_up = RunConfig(**{**TINY, "epochs": 2}, seed=0, optimizer="sgd", lr=1e6)
    fine = RunConfig(**TINY, seed=1)
    outcome = run_grid([blow_up, fine], tmp_path, LocalExecutor(workers=1), DataRequest())
    runs = read_tables(tmp_path)["runs.csv"].set_index("seed")
    assert runs.loc[0, "status"] == "diverged"
    assert runs.loc[0, "error"] == "loss became non-finite in epoch 1"
    assert runs.loc[0, "diverged_epoch"] == 1 and runs.loc[0, "epochs_run"] == 1  # stopped early
    assert runs.loc[1, "status"] == "ok" and runs.loc[1, "test_acc"] > 0.2
    assert outcome.failed == []  # diverged is an answer, not a failure: it is reused on rerun
    epochs = read_tables(tmp_path)["epochs.csv"]
    assert len(epochs[epochs["seed"] == 0]) == 1


def test_diverged_run_from_the_command_line(tmp_path, capsys):
    status = run_cli("--archs", "lenet", "--dataset", "digits", "--seed-list", "0", "--epochs", "2",
                     "--optimizer", "sgd", "--lr", "1e6", "--workers", "1", "--no-report", "--out", str(tmp_path))
    assert status == 0
    assert "lenet digits seed 0: diverged: loss became non-finite in epoch 1" in capsys.readouterr().out
    assert read_tables(tmp_path)["runs.csv"]["status"].tolist() == ["diverged"]


def test_out_of_memory_is_a_failed_run_and_the_grid_goes_on(tmp_path, capsys, monkeypatch):
    real = bench.tasks.train_run

    def oom_for_seed_0(cfg, *args, **kwargs):
        if cfg.seed == 0:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(bench.tasks, "train_run", oom_for_seed_0)
    status = run_cli("--archs", "lenet", "--dataset", "digits", "--seed-list", "0,1", "--epochs", "1",
                     "--workers", "1", "--no-report", "--out", str(tmp_path))
    assert status == 1  # a failed run makes the exit status say so
    assert "failed: lenet seed 0: out of memory" in capsys.readouterr().out
    runs = read_tables(tmp_path)["runs.csv"].set_index("seed")
    assert list(runs["status"]) == ["failed", "ok"]
    assert runs.loc[0, "error"] == "out of memory"
    assert pd.isna(runs.loc[1, "error"])  # an ok run has an empty error cell


def test_status_column_holds_ok_diverged_and_failed(tmp_path, monkeypatch):
    real = bench.tasks.train_run

    def crash_seed_2(cfg, *args, **kwargs):
        if cfg.seed == 2:
            raise RuntimeError("simulated crash")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(bench.tasks, "train_run", crash_seed_2)
    configs = [RunConfig(**TINY, seed=0), RunConfig(**TINY, seed=1, optimizer="sgd", lr=1e6),
               RunConfig(**TINY, seed=2)]
    outcome = run_grid(configs, tmp_path, LocalExecutor(workers=1), DataRequest())
    runs = read_tables(tmp_path)["runs.csv"]
    assert runs["status"].tolist() == ["ok", "diverged", "failed"]
    assert runs["error"].fillna("").tolist() == [
        "", "loss became non-finite in epoch 1", "RuntimeError: simulated crash"]
    assert [r.config.seed for r in outcome.failed] == [2]


# -- determinism audit --------------------------------------------------------------------

class PutNet(nn.Module):
    """A linear classifier whose forward uses ``Tensor.put_``: no deterministic CPU kernel."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x):
        marker = torch.zeros(2, device=x.device)
        marker.put_(torch.tensor([0], device=x.device), torch.ones(1, device=x.device))
        return self.fc(x.flatten(1)) + 0 * marker.sum()


@pytest.fixture
def putnet():
    register_model("test-putnet", family="test", description="uses put_")(
        lambda in_channels=1, num_classes=10, image_size=28: PutNet(in_channels, num_classes, image_size))
    yield "test-putnet"
    unregister_model("test-putnet")


def test_deterministic_run_names_the_op_without_a_deterministic_kernel(putnet):
    record = execute(RunTask(RunConfig(**{**TINY, "arch": putnet}, deterministic=True), DataRequest()))
    assert record.status == "ok", record.error
    assert record.summary["nondeterministic_ops"] == "put_"
    assert not torch.are_deterministic_algorithms_enabled()  # restored for the next run


def test_deterministic_run_with_only_deterministic_ops_names_none(tmp_path, monkeypatch):
    monkeypatch.delenv(CUBLAS_ENV, raising=False)
    assert run_cli("--archs", "lenet", "--dataset", "digits", "--seed-list", "0", "--epochs", "1",
                   "--workers", "1", "--no-report", "--deterministic", "--out", str(tmp_path)) == 0
    assert os.environ[CUBLAS_ENV] == CUBLAS_VALUE  # set before any CUDA work (and recorded below)
    runs = read_tables(tmp_path)["runs.csv"]
    assert runs["deterministic"].tolist() == [True]
    assert runs["nondeterministic_ops"].isna().all()  # an empty cell: no op without a kernel


def test_strict_mode_failure_names_the_op(putnet, monkeypatch):
    # If strict mode is on anyway (set by a caller), the op is named in a failed record.
    monkeypatch.setattr(bench.tasks, "deterministic_mode", _strict)
    record = execute(RunTask(RunConfig(**{**TINY, "arch": putnet}), DataRequest()))
    assert record.status == "failed"
    assert record.error == "put_ has no deterministic implementation"


class _strict:
    def __init__(self, _enabled):
        pass

    def __enter__(self):
        torch.use_deterministic_algorithms(True)
        return set()

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(False)
        return False


# -- verify -------------------------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_verify_reproduces_a_finished_cpu_run_bit_for_bit(digits_run, capsys):
    before = snapshot(digits_run)
    assert run_cli("verify", str(digits_run), "--arch", "lenet", "--seed", "1") == 0
    text = capsys.readouterr().out
    assert "expecting a bit-for-bit match" in text
    assert "MATCH: all 12 metrics and the weights of lenet-digits-s1-" in text  # 2 epochs x 5 + 2
    assert snapshot(digits_run) == before  # verify writes nothing


def test_verify_reports_a_mismatch(digits_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(digits_run, out)
    (record_path,) = [p for p in out.glob("runs/lenet-digits-s0-*/record.json")]
    record = json.loads(record_path.read_text())
    record["summary"]["test_acc"] += 0.01
    record_path.write_text(json.dumps(record))
    assert run_cli("verify", str(out), "--arch", "lenet", "--seed", "0") == 1
    text = capsys.readouterr().out
    assert "test_acc: stored" in text and "MISMATCH: 1 of 12 metrics differ" in text


def test_verify_of_a_run_that_is_not_there_is_one_line(digits_run, capsys):
    assert run_cli("verify", str(digits_run), "--arch", "lenet", "--seed", "7") == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: no finished run of lenet seed 7 in "
                   f"{digits_run} (finished: dilated seed 0, dilated seed 1, lenet seed 0, lenet seed 1)")
