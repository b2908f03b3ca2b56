"""End-to-end behaviour of ``python -m bench`` on the embedded digits dataset."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.schema import CONFUSION, EPOCHS, RUNS
from conftest import run_cli, run_cli_process

# Columns only some grids have: --deterministic grids' ops without a deterministic kernel.
OPTIONAL_RUN_COLUMNS = {"nondeterministic_ops"}


def test_tables_from_a_small_run(digits_run):
    runs = pd.read_csv(digits_run / "runs.csv")
    epochs = pd.read_csv(digits_run / "epochs.csv")
    confusion = pd.read_csv(digits_run / "confusion.csv")
    # Exactly what bench.schema declares, in its order: the fixed columns, then the families.
    assert [c for c in runs.columns if RUNS.column(c).pattern is None] == \
        [c for c in RUNS.names if c not in OPTIONAL_RUN_COLUMNS]
    assert [c for c in runs.columns if c.startswith("class_acc_")] == [f"class_acc_{i}" for i in range(10)]
    assert list(epochs.columns) == EPOCHS.names
    assert list(confusion.columns) == CONFUSION.names
    assert sorted(zip(runs.arch, runs.seed)) == [("dilated", 0), ("dilated", 1), ("lenet", 0), ("lenet", 1)]
    assert (runs.status == "ok").all() and (runs.test_acc > 0.3).all()  # chance is 0.1
    assert len(epochs) == 4 * 2 and len(confusion) == 4 * 100
    # The confusion table and runs.csv agree on every run's test accuracy.
    for run_id, group in confusion.groupby("run_id"):
        correct = group.loc[group["true"] == group["predicted"], "count"].sum()
        assert correct / group["count"].sum() == pytest.approx(runs.set_index("run_id").test_acc[run_id])
    invocation = json.loads((digits_run / "config.json").read_text())
    assert invocation["grid"] == {"archs": ["lenet", "dilated"], "datasets": ["digits"], "seeds": [0, 1]}
    assert invocation["run_ids"] == list(runs.run_id)
    assert "--epochs 2" in invocation["reproduce"]


def test_rerun_reuses_finished_runs(tmp_path, capsys):
    args = ["--archs", "lenet", "--dataset", "digits", "--seeds", "1", "--epochs", "1",
            "--workers", "1", "--out", str(tmp_path), "--no-report"]
    assert run_cli(*args) == 0
    first = pd.read_csv(tmp_path / "runs.csv")
    capsys.readouterr()
    assert run_cli(*args) == 0
    assert "reusing 1 finished run" in capsys.readouterr().out
    pd.testing.assert_frame_equal(first, pd.read_csv(tmp_path / "runs.csv"))


def test_two_workers_keep_grid_order_and_train_each_run_on_one_thread(tmp_path):
    """Equality of the metrics with one worker is tests/test_local_pool.py's; this is the CLI's side."""
    from bench.fast.policy import CPU_RUN_THREADS

    common = ["--archs", "lenet,dilated", "--dataset", "digits", "--seeds", "2", "--epochs", "1", "--no-report"]
    assert run_cli(*common, "--workers", "2", "--out", str(tmp_path / "two")) == 0
    two = pd.read_csv(tmp_path / "two" / "runs.csv")
    assert list(zip(two.arch, two.seed)) == [("lenet", 0), ("lenet", 1), ("dilated", 0), ("dilated", 1)]
    assert (two.status == "ok").all()
    assert (two.cpu_threads == CPU_RUN_THREADS).all()  # whatever --workers: bits must not depend on it


def test_unknown_arch_lists_the_known_ones(tmp_path, capsys):
    assert run_cli("--archs", "lenett", "--dataset", "digits", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown architecture 'lenett'; known:") and "lenet" in err
    assert not any(tmp_path.iterdir()), "nothing may be written for a rejected command"


def test_no_traceback_on_bad_input_in_a_real_process(tmp_path):
    result = run_cli_process("--epochs", "0", "--dataset", "digits", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: argument --epochs: expected a positive integer, got '0' (see: python -m bench --help)"]


def test_auto_without_mnist_falls_back_to_digits_loudly(tmp_path, capsys):
    out = tmp_path / "out"
    status = run_cli("--archs", "lenet", "--seeds", "1", "--epochs", "1", "--workers", "1",
                     "--data-dir", str(tmp_path / "empty"), "--out", str(out), "--no-report")
    assert status == 0
    assert "WARNING: MNIST is not available" in capsys.readouterr().out
    invocation = json.loads((out / "config.json").read_text())
    assert invocation["grid"]["datasets"] == ["digits"]
    assert "mnist not found" in invocation["datasets"]["digits"]["fallback_reason"]


def test_help_states_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--help")
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 3)", "(default: 64)", "(default: adam)", "(default: auto)", "(default: 0.1)"):
        assert default in text


def _digit_image(path, digit_pixels, light_background):
    pixels = 255 - digit_pixels if light_background else digit_pixels  # ink on paper
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def test_predict_agrees_with_the_model_on_a_test_image(digits_run, tmp_path, capsys):
    from bench.samples import load_samples

    samples = load_samples(digits_run, "digits")
    probe = samples["probe_image"][0].numpy()
    dark, light = tmp_path / "dark.png", tmp_path / "light.png"
    _digit_image(dark, probe, light_background=False)
    _digit_image(light, probe, light_background=True)
    capsys.readouterr()
    assert run_cli("predict", str(digits_run), "--arch", "lenet", "--seed", "1", str(dark), str(light)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("lenet seed 1 on digits")
    predicted = [line.split(":")[1].split()[0] for line in lines[1:]]
    assert len(predicted) == 2 and predicted[0] == predicted[1], "inverting a light background failed"
    # ... and both equal the stored model's own prediction for that test image.
    import torch

    from architectures import build_model
    from bench.storage import load_weights

    runs = pd.read_csv(digits_run / "runs.csv").set_index(["arch", "seed"])
    model = build_model("lenet")
    model.load_state_dict(load_weights(digits_run, runs.run_id[("lenet", 1)]))
    x = (samples["probe_image"].float()[None] / 255 - samples["mean"]) / samples["std"]
    with torch.no_grad():
        assert predicted[0] == samples["classes"][int(model.eval()(x).argmax())]


def test_predict_unknown_run_is_one_line(digits_run, tmp_path, capsys):
    assert run_cli("predict", str(digits_run), "--arch", "convnet", str(tmp_path / "x.png")) == 2
    assert capsys.readouterr().err.startswith("error: no finished run of convnet")


def test_run_states_the_statistics_default_margin():
    """commands/run.py keeps its own copy (--help must not import scipy); the two must agree."""
    from bench.commands import run
    from bench.stats import DEFAULT_MARGIN

    assert run.DEFAULT_MARGIN == DEFAULT_MARGIN
