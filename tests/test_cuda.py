"""The CUDA path, run for real wherever a GPU is present (CI has none: skipped there)."""

import pandas as pd
import pytest
import torch
from conftest import run_cli

from bench.config import RunConfig
from bench.datasets import load_dataset
from bench.train import prepare_data, train_run

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU present"),
]


@pytest.fixture(scope="module")
def digits_on_gpu():
    return prepare_data(load_dataset("digits", None), 0.1, "cuda")


def test_dataset_lives_on_the_gpu(digits_on_gpu):
    for split in (digits_on_gpu.train, digits_on_gpu.val, digits_on_gpu.test):
        assert split.images.is_cuda and split.labels.is_cuda
        assert split.images.dtype == torch.uint8  # normalized per batch, on the device


def test_gpu_run_learns_and_agrees_with_cpu(digits_on_gpu):
    cfg = RunConfig(arch="lenet", dataset="digits", epochs=2, device="cuda")
    gpu = train_run(cfg, digits_on_gpu)
    cpu = train_run(cfg.replace(device="cpu"), prepare_data(load_dataset("digits", None), 0.1, "cpu"))
    assert gpu.status == "ok" and gpu.test.accuracy > 0.5
    # Same seed, same batches, same init: only kernel rounding differs between devices.
    assert gpu.test.accuracy == pytest.approx(cpu.test.accuracy, abs=0.05)
    assert all(t.device.type == "cpu" for t in gpu.state_dict.values())  # stored weights load anywhere


def test_gpu_grid_from_the_command_line(tmp_path):
    assert run_cli("--archs", "lenet,dilated", "--dataset", "digits", "--seeds", "2", "--epochs", "1",
                   "--device", "cuda", "--out", str(tmp_path), "--no-report") == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert (runs.status == "ok").all() and (runs.device == "cuda").all()
    assert runs.device_name.str.len().gt(0).all()


def test_deterministic_mode_names_ops_without_a_deterministic_kernel(tmp_path):
    # Average-pool backward has no deterministic CUDA kernel: the run finishes and names it.
    assert run_cli("--archs", "convnet", "--dataset", "digits", "--seeds", "1", "--epochs", "1",
                   "--device", "cuda", "--deterministic", "--out", str(tmp_path), "--no-report") == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert runs.status[0] == "ok"
    assert "avg_pool2d_backward" in str(runs.nondeterministic_ops[0])


def test_workers_sharing_one_gpu_give_the_same_results_as_one(tmp_path):
    """Four seeds on four workers of one GPU: each run is an ordinary run of its own process."""
    args = ("--archs", "bn-convnet", "--dataset", "digits", "--seeds", "4", "--epochs", "1",
            "--device", "cuda:0", "--deterministic", "--no-report")
    assert run_cli(*args, "--workers", "1", "--out", str(tmp_path / "one")) == 0
    assert run_cli(*args, "--workers", "4", "--out", str(tmp_path / "shared")) == 0
    one, shared = (pd.read_csv(tmp_path / name / "runs.csv").set_index("run_id").sort_index()
                   for name in ("one", "shared"))
    assert (shared.status == "ok").all() and list(shared.index) == list(one.index)
    # Deterministic kernels give the same bits; an op without one (named in runs.csv) may
    # round differently from call to call, in a process alone as well.
    exact = one.nondeterministic_ops.isna().all() and shared.nondeterministic_ops.isna().all()
    for column in ("final_train_loss", "test_loss", "test_acc"):
        expected = one[column].tolist()
        assert shared[column].tolist() == (expected if exact else pytest.approx(expected, rel=1e-3)), column
