"""bench perf: its table is derived from its own timings, and its recipe reads the same data."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from bench.datasets import DataSearch
from bench.datasets.mnist import DIGIT_CLASSES, load_idx_folder
from bench.errors import BenchError
from bench.perf.machine import MachineTrainers
from bench.perf.recipe import torchvision_root, write_idx
from bench.perf.table import GEOMEAN_ROW, PerfTiming, perf_table
from conftest import run_cli


def test_table_is_computed_from_the_timings():
    timings = [
        # images and seconds of the recipe, of cnnbench, and of two trainers at once (the slower one's)
        PerfTiming("a", 6400, 2.0, 6400, 0.5, flops_per_image=1_000_000, memory_format="channels_last",
                   machine_images=12800, machine_seconds=0.64, workers=2),
        PerfTiming("b", 3000, 3.0, 2000, 2.0, flops_per_image=5_000_000, memory_format="contiguous",
                   machine_images=4000, machine_seconds=2.5, workers=2),
    ]
    table = perf_table(timings, roof_flops_per_s=100e9, machine_roof_flops_per_s=160e9).set_index("arch")
    assert table.loc["a", "recipe_images_per_s"] == 6400 / 2.0
    assert table.loc["a", "cnnbench_images_per_s"] == 6400 / 0.5
    assert table.loc["a", "speedup"] == 4.0
    assert table.loc["b", "speedup"] == 1.0
    assert table.loc[GEOMEAN_ROW, "speedup"] == pytest.approx(2.0, rel=1e-12)  # sqrt(4 * 1)
    assert table.loc["a", "machine_images_per_s"] == 12800 / 0.64
    assert table.loc["a", "machine_speedup"] == pytest.approx((12800 / 0.64) / (6400 / 2.0), rel=1e-12)
    assert table.loc["b", "machine_speedup"] == pytest.approx(1.6)
    assert table.loc[GEOMEAN_ROW, "machine_speedup"] == pytest.approx(np.sqrt(6.25 * 1.6), rel=1e-12)
    # two runs at once: 12800 images in 0.64 s; one alone would train 6400 images in 0.5 s
    assert table.loc["a", "runs_cost_vs_one"] == pytest.approx(0.64 / 0.5)
    assert table.loc["b", "runs_cost_vs_one"] == pytest.approx(2 * 1000 / 1600)
    assert table.loc["a", "cnnbench_gflops_per_s"] == pytest.approx(1e6 * 12800 / 1e9)
    assert table.loc["a", "roof_fraction"] == pytest.approx(1e6 * 12800 / 100e9)
    assert table.loc["b", "roof_fraction"] == pytest.approx(0.05)
    assert table.loc["b", "train_mflops_per_image"] == 5.0
    assert (table["roof_gflops_per_s"] == 100).all()
    # the machine's figure is a share of the machine's roof, not of one run's
    assert table.loc["a", "machine_gflops_per_s"] == pytest.approx(1e6 * (12800 / 0.64) / 1e9)
    assert table.loc["a", "machine_roof_fraction"] == pytest.approx(1e6 * (12800 / 0.64) / 160e9)
    assert (table["machine_roof_gflops_per_s"] == 160).all()


def test_torchvision_reads_the_same_images_from_gzipped_idx(tmp_path):
    rng = np.random.default_rng(0)
    source = tmp_path / "mnist"
    source.mkdir()
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 5, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    for stem, array in arrays.items():
        write_idx(tmp_path / stem, array)
        (source / f"{stem}.gz").write_bytes(gzip.compress((tmp_path / stem).read_bytes()))
    dataset = load_idx_folder("mnist", DIGIT_CLASSES, source)

    from torchvision import datasets

    root, tv_name = torchvision_root(dataset, tmp_path / "tv")
    assert tv_name == "MNIST"
    tv = datasets.MNIST(str(root), train=True, download=False)
    assert torch.equal(tv.data, dataset.train.images[:, 0])
    assert torch.equal(tv.targets, dataset.train.labels)
    assert not any(p.suffix == ".gz" for p in (root / "MNIST" / "raw").iterdir())


def test_perf_command_writes_a_consistent_table(tmp_path):
    csv = tmp_path / "perf.csv"
    status = run_cli("perf", "--dataset", "digits", "--archs", "lenet-12,dilated", "--steps", "3",
                     "--warmup", "1", "--repeats", "2", "--threads", "1", "--workers", "2", "--csv", str(csv))
    assert status == 0
    table = pd.read_csv(csv).set_index("arch")
    assert list(table.index) == ["lenet-12", "dilated", GEOMEAN_ROW]
    rows = table.drop(GEOMEAN_ROW)
    assert (rows["recipe_images"] == 3 * 64).all() and (rows["cnnbench_images"] == 3 * 64).all()
    assert np.allclose(rows["speedup"], rows["cnnbench_images_per_s"] / rows["recipe_images_per_s"])
    assert table.loc[GEOMEAN_ROW, "speedup"] == pytest.approx(np.sqrt(rows["speedup"].prod()))
    assert set(rows["memory_format"]) <= {"contiguous", "channels_last"}
    assert set(rows["step_mode"]) == {"eager"}  # CPU: no CUDA graph
    # per machine: two trainers, each 3 steps of 64, over the slower one's seconds
    assert (rows["workers"] == 2).all() and (rows["machine_images"] == 2 * 3 * 64).all()
    assert np.allclose(rows["machine_images_per_s"], rows["machine_images"] / rows["machine_seconds"])
    assert np.allclose(rows["machine_speedup"], rows["machine_images_per_s"] / rows["recipe_images_per_s"])


def test_seeds_together_time_a_seed_group(tmp_path):
    csv = tmp_path / "perf.csv"
    assert run_cli("perf", "--dataset", "digits", "--archs", "lenet-12", "--steps", "3", "--warmup", "1",
                   "--repeats", "1", "--threads", "1", "--seeds-together", "3", "--csv", str(csv)) == 0
    row = pd.read_csv(csv).iloc[0]
    assert row["workers"] == 3 and row["machine_images"] == 3 * 3 * 64  # three runs, 3 steps each
    assert row["runs_cost_vs_one"] == pytest.approx(
        3 * row["cnnbench_images_per_s"] / row["machine_images_per_s"])


@pytest.mark.parametrize("flag", ["--seeds-together", "--stack-seeds"])
def test_seeds_a_grid_trains_alone_are_timed_one_after_another(flag, tmp_path, capsys):
    """Dropout: a grid trains examples-net's seeds alone, so the per-machine figure is the
    per-run one (N runs cost N times one), said with the grid's reason; lenet-12 still steps."""
    csv = tmp_path / "perf.csv"
    assert run_cli("perf", "--dataset", "digits", "--archs", "examples-net,lenet-12", "--steps", "2",
                   "--warmup", "1", "--repeats", "1", "--threads", "1", flag, "2", "--csv", str(csv)) == 0
    out = capsys.readouterr().out
    assert "examples-net: a grid trains its seeds alone, not " in out and "lenet-12: a grid" not in out
    rows = pd.read_csv(csv).set_index("arch")
    alone, together = rows.loc["examples-net"], rows.loc["lenet-12"]
    assert alone["machine_images_per_s"] == alone["cnnbench_images_per_s"] and alone["runs_cost_vs_one"] == 2
    assert alone["machine_step_mode"] == "eager"
    assert together["machine_images"] == 2 * 2 * 64  # two runs stepped together, 2 steps each


def test_seeds_together_and_workers_are_two_figures(capsys):
    assert run_cli("perf", "--dataset", "digits", "--seeds-together", "2", "--workers", "2") == 2
    assert "choose one" in capsys.readouterr().err


def test_one_trainer_per_machine_is_the_run_itself(tmp_path):
    csv = tmp_path / "perf.csv"
    assert run_cli("perf", "--dataset", "digits", "--archs", "lenet-12", "--steps", "2", "--warmup", "0",
                   "--repeats", "1", "--workers", "1", "--csv", str(csv)) == 0
    row = pd.read_csv(csv).set_index("arch").loc["lenet-12"]
    assert row["machine_images"] == row["cnnbench_images"] and row["machine_seconds"] == row["cnnbench_seconds"]


def test_a_failing_helper_ends_the_measurement_with_its_error():
    with MachineTrainers(2, "digits", DataSearch(download=False), "cpu") as machine:
        machine.jobs[0].put("not a job")  # the helper cannot unpack it, reports, and leaves the barrier
        with pytest.raises(BenchError, match="perf helper process failed: ValueError"):
            machine._wait()
    assert not any(helper.is_alive() for helper in machine.helpers)


def test_perf_rejects_an_unknown_architecture(capsys):
    assert run_cli("perf", "--dataset", "digits", "--archs", "nope") == 2
    assert "unknown architecture 'nope'" in capsys.readouterr().err


def test_grid_mode_times_every_stored_run_with_the_recipe(digits_run, tmp_path):
    csv = tmp_path / "grid.csv"
    assert run_cli("perf", "--grid", str(digits_run), "--threads", "1", "--csv", str(csv)) == 0
    table = pd.read_csv(csv)
    invocation = json.loads((digits_run / "config.json").read_text())
    runs, total = table.iloc[:-1], table.iloc[-1]
    expected = [(a, s) for a in invocation["grid"]["archs"] for s in invocation["grid"]["seeds"]]
    assert list(zip(runs["arch"], runs["seed"].astype(int))) == expected
    assert (runs["recipe_seconds"] > 0).all()
    assert total["arch"] == "all runs"
    assert total["recipe_seconds"] == pytest.approx(runs["recipe_seconds"].sum(), rel=1e-12)
    assert (table["grid_wall_seconds"] == invocation["wall_seconds"]).all()
    assert total["speedup"] == pytest.approx(total["recipe_seconds"] / invocation["wall_seconds"], rel=1e-12)
    assert runs["speedup"].isna().all()


def test_grid_mode_refuses_a_resumed_grid(digits_run, tmp_path, capsys):
    resumed = tmp_path / "resumed"
    shutil.copytree(digits_run, resumed)
    invocation = json.loads((resumed / "config.json").read_text())
    invocation.update(reused_runs=2, trained_runs=2)
    (resumed / "config.json").write_text(json.dumps(invocation))
    assert run_cli("perf", "--grid", str(resumed)) == 2
    err = capsys.readouterr().err
    assert "does not cover the whole grid" in err and err.count("\n") == 1


def test_perf_counts_a_runs_threads_as_the_policy_sets_them():
    from bench.commands.perf import _run_threads
    from bench.fast.policy import CPU_RUN_THREADS

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert _run_threads("cpu") == CPU_RUN_THREADS != 2
        assert torch.get_num_threads() == 2  # and gives the process its threads back
    finally:
        torch.set_num_threads(before)
