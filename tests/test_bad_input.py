"""Bad input, tried on purpose: one clear line, a non-zero exit, no traceback, nothing lost.

Each case runs the CLI against an output directory that already holds finished results (a
copy of the ``digits_run`` grid) and checks that every file in it keeps its bytes.
Most cases run in-process (an uncaught exception would fail the test with its traceback);
a few run the real ``python -m bench`` in a subprocess to check stderr for a traceback.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import bench.storage
from bench.errors import BenchError
from bench.storage import leftover_temporaries, read_tables
from conftest import run_cli, run_cli_process

GRID = ["--archs", "lenet", "--dataset", "digits", "--seed-list", "0", "--epochs", "1", "--workers", "1",
        "--no-report"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def results(digits_run, tmp_path) -> Path:
    """An output directory with finished results in it, safe to point bad commands at."""
    out = tmp_path / "results"
    shutil.copytree(digits_run, out)
    return out


def run_bad(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI in-process; return its exit status and everything it wrote to stderr."""
    try:
        status = run_cli(*args)
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.err


def assert_one_clear_line(status: int, err: str, expected: str) -> None:
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert expected in lines[0], lines[0]


# -- options ------------------------------------------------------------------------------

OPTION_CASES = {
    "unknown arch": (["--archs", "resnet9000"], "unknown architecture 'resnet9000'"),
    "unknown dataset": (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    "unknown optimizer": (["--optimizer", "rmsprop"], "argument --optimizer: invalid choice: 'rmsprop'"),
    "epochs 0": (["--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    "epochs negative": (["--epochs", "-3"], "argument --epochs: expected a positive integer, got '-3'"),
    "batch size 0": (["--batch-size", "0"], "argument --batch-size: expected a positive integer, got '0'"),
    "seeds 0": (["--seeds", "0"], "argument --seeds: expected a positive integer, got '0'"),
    "negative seed": (["--seed-list", "-1"], "argument --seed-list: expected non-negative integers, got '-1'"),
    "lr 0": (["--lr", "0"], "argument --lr: expected a positive number, got '0'"),
    "lr negative": (["--lr", "-0.1"], "argument --lr: expected a positive number, got '-0.1'"),
    "val fraction 1": (["--val-fraction", "1"], "--val-fraction must be in [0, 1), got 1.0"),
    "val fraction negative": (["--val-fraction", "-0.1"], "--val-fraction must be in [0, 1), got -0.1"),
    "val fraction 1.5": (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1), got 1.5"),
}


@pytest.mark.parametrize("case", list(OPTION_CASES), ids=list(OPTION_CASES))
def test_bad_option(case, results, capsys):
    args, expected = OPTION_CASES[case]
    before = snapshot(results)
    base = [a for a in GRID if a not in ("--seed-list", "0")] if case == "negative seed" else GRID
    status, err = run_bad(capsys, *base, *args, "--out", str(results))
    assert_one_clear_line(status, err, expected)
    assert snapshot(results) == before


def test_cuda_without_a_gpu(results, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = snapshot(results)
    status, err = run_bad(capsys, *GRID, "--device", "cuda", "--out", str(results))
    assert_one_clear_line(status, err, "--device cuda: CUDA is not available on this machine")
    assert snapshot(results) == before


def test_cuda_index_beyond_the_gpus_there_are(results, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    before = snapshot(results)
    status, err = run_bad(capsys, *GRID, "--device", "cuda:7", "--out", str(results))
    assert_one_clear_line(status, err, "--device cuda:7: this machine has 1 GPU(s), valid indices are 0..0")
    assert snapshot(results) == before


# -- output paths (these fail for root too: permissions are not involved) ------------------

def test_output_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("my notes\n")
    status, err = run_bad(capsys, *GRID, "--out", str(target))
    assert_one_clear_line(status, err, f"output path {target} exists and is not a directory")
    assert target.read_text() == "my notes\n"


def test_output_path_under_a_file(tmp_path, capsys):
    parent = tmp_path / "results.txt"
    parent.write_text("my notes\n")
    status, err = run_bad(capsys, *GRID, "--out", str(parent / "out"))
    assert_one_clear_line(status, err, f"cannot create output directory {parent / 'out'}: Not a directory")
    assert parent.read_text() == "my notes\n"


# -- data directories ----------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def good_idx_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (40, 28, 28))),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(40) % 10),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (20, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_bytes(np.arange(20) % 10),
    }


def truncated(files):
    files["train-images-idx3-ubyte"] = files["train-images-idx3-ubyte"][:-100]


def swapped(files):
    files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"] = (
        files["train-labels-idx1-ubyte"], files["train-images-idx3-ubyte"])


def mismatched(files):
    files["t10k-labels-idx1-ubyte"] = idx_bytes(np.arange(19) % 10)


def wrong_magic(files):
    files["t10k-images-idx3-ubyte"] = b"\x00\x00\x0d\x03" + files["t10k-images-idx3-ubyte"][4:]


def empty(files):
    files["t10k-labels-idx1-ubyte"] = b""


def truncated_gzip(files):
    files["train-labels-idx1-ubyte.gz"] = gzip.compress(files.pop("train-labels-idx1-ubyte"))[:-20]


DATA_CASES = {
    "truncated image file": (truncated, "train-images-idx3-ubyte is truncated or padded: its header "
                             "promises 31360 bytes of data for shape (40, 28, 28), the file holds 31260"),
    "swapped image and label files": (swapped, "train-images-idx3-ubyte holds a 1-dimensional array where "
                                      "images (3 dims) were expected; are the image and label files swapped?"),
    "mismatched counts": (mismatched, "mnist test split has 20 images but 19 labels"),
    "wrong magic number": (wrong_magic, "t10k-images-idx3-ubyte has a wrong magic number 0x00000d03 "
                           "(expected 0x00000803); is it an IDX file?"),
    "empty file": (empty, "t10k-labels-idx1-ubyte is empty or too short to be an IDX file (0 bytes)"),
    "truncated gzip": (truncated_gzip, "train-labels-idx1-ubyte.gz is not a complete gzip file"),
}


@pytest.mark.parametrize("case", list(DATA_CASES), ids=list(DATA_CASES))
def test_bad_data_directory(case, results, tmp_path, capsys):
    damage, expected = DATA_CASES[case]
    files = good_idx_files()
    damage(files)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    before = snapshot(results)
    args = [a if a != "digits" else "mnist" for a in GRID]
    status, err = run_bad(capsys, *args, "--data-dir", str(tmp_path / "data"), "--out", str(results))
    assert_one_clear_line(status, err, expected)
    assert snapshot(results) == before


def test_the_good_idx_files_do_load(tmp_path):
    # The damaged cases above fail because of their damage, not because of the fixture.
    from bench.datasets import DataSearch, load_dataset

    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, data in good_idx_files().items():
        (folder / name).write_bytes(data)
    dataset = load_dataset("mnist", DataSearch(tmp_path, download=False, env={}))
    assert (len(dataset.train), len(dataset.test)) == (40, 20)


# -- tables edited into garbage ------------------------------------------------------------

def _lenet_rows(runs: pd.DataFrame, columns: list[str], **changes) -> bytes:
    rows = runs[runs["arch"] == "lenet"][columns].assign(**changes)
    return rows.to_csv(index=False).encode()


# Each: the garbage (bytes, or a function of the real runs.csv) and the expected message.
GARBAGE = {
    "binary junk": (b"\x00\xff\xfe garbage \x00\x81" * 50, "runs.csv cannot be read as a table"),
    "prose": (b"I edited this file by hand\nand now it says nothing\n",
              "runs.csv is not a cnnbench table (no column run_id, arch, dataset, seed, status)"),
    "ragged rows": (b"run_id,arch\n1,2,3,4,5\n",
                    "runs.csv is not a cnnbench table (no column dataset, seed, status)"),
    "empty": (b"", "runs.csv cannot be read as a table: No columns to parse from file"),
    "junk cells": (b"run_id,arch,dataset,seed,status,test_acc,tested_weights\nx,lenet,digits,zero,ok,high,?\n",
                   "no saved weights for run x"),
    "metric columns cut": (lambda runs: _lenet_rows(runs, ["run_id", "arch", "dataset", "seed", "status"]),
                           "runs.csv has no column test_acc"),
    "accuracy cell edited": (lambda runs: _lenet_rows(runs, list(runs.columns), test_acc="high"), None),
    "dataset cell edited": (lambda runs: _lenet_rows(runs, list(runs.columns), dataset="cifar"),
                            "runs.csv names dataset 'cifar', which config.json does not describe"),
}


@pytest.mark.parametrize("case", list(GARBAGE), ids=list(GARBAGE))
def test_garbage_runs_csv_before_predict(case, results, tmp_path, capsys):
    garbage, expected = GARBAGE[case]
    if callable(garbage):
        garbage = garbage(pd.read_csv(results / "runs.csv"))
    (results / "runs.csv").write_bytes(garbage)
    if expected and ("is not a cnnbench table" in expected or "cannot be read" in expected):
        with pytest.raises(BenchError, match="runs.csv"):  # the shared reader itself refuses
            read_tables(results)
    image = tmp_path / "seven.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(image)
    before = snapshot(results)
    status, err = run_bad(capsys, "predict", str(results), "--arch", "lenet", str(image))
    if expected is None:  # damage a command can work around: it must still not crash
        assert status == 0 and err == ""
    else:
        assert_one_clear_line(status, err, expected)
    assert snapshot(results) == before


@pytest.mark.parametrize("case", list(GARBAGE), ids=list(GARBAGE))
def test_garbage_runs_csv_before_report(case, results, capsys):
    """The report validates every column it reads: any damage is one line naming runs.csv."""
    garbage, _ = GARBAGE[case]
    if callable(garbage):
        garbage = garbage(pd.read_csv(results / "runs.csv"))
    (results / "runs.csv").write_bytes(garbage)
    before = snapshot(results)
    status, err = run_bad(capsys, "report", str(results))
    assert_one_clear_line(status, err, "runs.csv")
    assert snapshot(results) == before, "a refused report must not touch the stored results"


# -- a full disk ---------------------------------------------------------------------------

class _FullDisk:
    """``os.fdopen`` whose files raise ENOSPC on write, for files in ``runs/`` only."""

    def __init__(self, monkeypatch) -> None:
        self.real_mkstemp = bench.storage.tempfile.mkstemp
        self.real_fdopen = os.fdopen
        self.full_fds: set[int] = set()
        monkeypatch.setattr(bench.storage.tempfile, "mkstemp", self.mkstemp)
        monkeypatch.setattr(bench.storage.os, "fdopen", self.fdopen)

    def mkstemp(self, *args, **kwargs):
        fd, name = self.real_mkstemp(*args, **kwargs)
        if "/runs/" in name:
            self.full_fds.add(fd)
        return fd, name

    def fdopen(self, fd, *args, **kwargs):
        fh = self.real_fdopen(fd, *args, **kwargs)
        if fd in self.full_fds:
            def write(_data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            fh.write = write
        return fh


def test_disk_full_while_storing_a_run_keeps_previous_results(results, capsys, monkeypatch):
    _FullDisk(monkeypatch)
    before = snapshot(results)
    # Seeds 0 and 1 of lenet are reused; seed 2 trains, then its weights cannot be written.
    status, err = run_bad(capsys, "--archs", "lenet", "--dataset", "digits", "--seeds", "3", "--epochs", "2",
                          "--workers", "1", "--no-report", "--out", str(results))
    assert_one_clear_line(status, err, "weights.pt: No space left on device; results stored before are "
                          "intact, rerun the same command to resume")
    assert snapshot(results) == before
    assert leftover_temporaries(results) == []


# -- the real command line: no traceback on stderr ------------------------------------------

def test_no_traceback_from_the_real_command_line(results, tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    files = good_idx_files()
    swapped(files)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (results / "runs.csv").write_bytes(b"\x00garbage\n1,2,3\n")
    before = snapshot(results)
    commands = [
        [*GRID, "--archs", "nosuchnet", "--out", str(results)],
        [a if a != "digits" else "mnist" for a in GRID] + ["--data-dir", str(tmp_path / "data"),
                                                          "--out", str(results)],
        ["predict", str(results), "--arch", "lenet", str(tmp_path / "none.png")],
    ]
    for args in commands:
        done = run_cli_process(*args)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: "), done.stderr
    assert snapshot(results) == before
