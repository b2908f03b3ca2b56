"""Evaluations beyond clean accuracy (bench.evaluations): the built-ins, their storage, `evaluate`."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from bench.evaluations import EVALUATIONS, Measured, Output, register_evaluation, unregister_evaluation
from bench.evaluations.calibration import calibration, reliability_bins
from bench.evaluations.corruptions import CORRUPTIONS, corrupted
from bench.evaluations.per_class import per_class
from bench.evaluations.shift import MAX_SHIFT, offsets_of, ring, shift, translate, translate_each
from bench.evaluations.stored import pack_counts, unpack_counts
from bench.evaluations.subject import Subject, EvalSet
from bench.records import RunRecord
from bench.schema import RUNS
from bench.storage import load_record, read_tables
from conftest import PYTHON, ROOT, cli_env, run_cli

SHAPES = [(1, 28), (3, 32), (1, 13)]


def images_of(channels: int, size: int, n: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(channels * 100 + size)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)


def split_of(images: torch.Tensor, classes: int = 3) -> EvalSet:
    labels = torch.arange(len(images)) % classes
    return EvalSet(f"synthetic-{images.shape[1]}x{images.shape[-1]}", images, labels, tuple(map(str, range(classes))))


def tiny_subject(channels: int, size: int, classes: int = 3) -> Subject:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(16, classes)).eval()
    return Subject(model, lambda x: x.float() / 255 - 0.5, torch.contiguous_format, 7, "cpu",
                   lambda: torch.autocast("cpu", enabled=False))


class FixedLogits(Subject):
    """A subject whose clean logits are given: the calibration and F1 hand computations."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.fixed = logits

    def clean_logits(self, test: EvalSet) -> torch.Tensor:
        return self.fixed


# -- shift --------------------------------------------------------------------------------
@pytest.mark.parametrize("channels,size", SHAPES)
def test_a_shift_of_zero_is_the_identity_and_a_shift_moves_pixels_with_zero_fill(channels, size):
    x = images_of(channels, size)
    assert torch.equal(translate(x, 0, 0), x)
    moved = translate(x, 2, -1)
    assert torch.equal(moved[..., :size - 1, 2:], x[..., 1:, :size - 2])
    assert moved[..., :, :2].eq(0).all() and moved[..., size - 1:, :].eq(0).all()
    per_image = translate_each(x, torch.tensor([[2, -1]] * len(x)))
    assert torch.equal(per_image, moved)


def test_ring_offsets_have_their_size():
    for s in range(1, MAX_SHIFT + 1):
        offsets = ring(s)
        assert len(offsets) == 8 * s and offsets.abs().amax(1).eq(s).all()


@pytest.mark.parametrize("channels,size", SHAPES[:2])
def test_shift_at_size_zero_is_the_clean_accuracy_exactly(channels, size):
    x = images_of(channels, size)
    test, subject = split_of(x), tiny_subject(channels, size)
    measured = shift(subject, test)
    clean = (subject.predict(x) == test.labels).double().mean().item()
    assert measured.values["shift_acc_0"] == clean
    sizes = [measured.values[f"shift_acc_{s}"] for s in range(1, MAX_SHIFT + 1)]
    assert measured.values["shift_acc"] == pytest.approx(np.mean(sizes), abs=1e-12)
    assert measured.values["shift_consistency"] == measured.per_image["shift_consistency"].mean()


def test_shift_offsets_are_fixed_per_dataset_and_differ_between_datasets():
    a, b = split_of(images_of(1, 28)), split_of(images_of(3, 32))
    first, again = offsets_of(a, 24), offsets_of(a, 24)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["first"], offsets_of(b, 24)["first"])


# -- corruptions -------------------------------------------------------------------------
@pytest.mark.parametrize("channels,size", SHAPES)
@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: c.name)
def test_every_corruption_at_severity_zero_is_the_clean_image_and_at_one_changes_it(corruption, channels, size):
    x = images_of(channels, size)
    test = split_of(x)
    assert torch.equal(corrupted(test, corruption, x, severity=0.0), x)
    out = corrupted(test, corruption, x, severity=1.0)
    assert out.dtype == torch.uint8 and out.shape == x.shape  # uint8: every pixel in [0, 255]
    assert not torch.equal(out, x)


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: c.name)
def test_every_corruption_keeps_pixels_in_range_on_extreme_images(corruption):
    for fill in (0, 255):
        x = torch.full((4, 1, 28, 28), fill, dtype=torch.uint8)
        out = corrupted(split_of(x), corruption, x).to(torch.int64)
        assert out.dtype == torch.int64 and out.min() >= 0 and out.max() <= 255


def corruption_digest(channels: int, size: int) -> str:
    x = images_of(channels, size)
    test = split_of(x)
    h = hashlib.sha256()
    for c in CORRUPTIONS:
        h.update(corrupted(test, c, x).numpy().tobytes())
    return h.hexdigest()


DIGEST = """
import sys
sys.path.insert(0, "tests")
from test_evaluations import corruption_digest
print(corruption_digest(int(sys.argv[1]), int(sys.argv[2])))
"""


def test_corruptions_are_identical_across_calls_and_processes():
    here = corruption_digest(3, 32)
    assert corruption_digest(3, 32) == here
    other = subprocess.run([PYTHON, "-c", DIGEST, "3", "32"], cwd=ROOT, env=cli_env(), capture_output=True,
                           text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == here


# -- calibration and per-class -----------------------------------------------------------
def test_ece_nll_and_reliability_bins_against_hand_computed_values():
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.38, 0.62], [0.7, 0.3]])
    labels = torch.tensor([0, 1, 1, 0])
    test = EvalSet("hand", torch.zeros(4, 1, 2, 2, dtype=torch.uint8), labels, ("a", "b"))
    measured = calibration(FixedLogits(probs.log()), test)
    # bins of width 1/15: 0.9 -> bin 13 (accuracy 1/2), 0.62 -> bin 9, 0.7 -> bin 10 (both right)
    assert measured.values["ece"] == pytest.approx(0.4 * 2 / 4 + 0.38 / 4 + 0.3 / 4, abs=1e-6)
    assert measured.values["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.1) + math.log(0.62)
                                                     + math.log(0.7)) / 4, abs=1e-6)
    bins = reliability_bins(probs, labels)
    assert [bins["count"][i] for i in (9, 10, 13)] == [1, 1, 2] and sum(bins["count"]) == 4
    assert bins["accuracy"][13] == 0.5 and bins["confidence"][13] == pytest.approx(0.9)


def test_per_class_f1_and_macro_f1_against_hand_computed_values():
    labels = torch.tensor([0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0])
    test = EvalSet("hand", torch.zeros(5, 1, 2, 2, dtype=torch.uint8), labels, ("0", "1", "2"))
    values = per_class(FixedLogits(nn.functional.one_hot(predicted, 3).float()), test).values
    assert (values["precision_class_0"], values["recall_class_0"], values["f1_class_0"]) == (0.5, 0.5, 0.5)
    assert values["precision_class_1"] == pytest.approx(2 / 3) and values["recall_class_1"] == 1.0
    assert values["f1_class_1"] == pytest.approx(0.8)
    assert (values["precision_class_2"], values["recall_class_2"], values["f1_class_2"]) == (0.0, 0.0, 0.0)
    assert values["macro_f1"] == pytest.approx((0.5 + 0.8) / 3)


def test_per_image_values_pack_and_unpack_exactly():
    values = np.array([0, 1, 2, 3]) / 3
    assert np.array_equal(unpack_counts(pack_counts(values, 3)), values)
    with pytest.raises(ValueError):
        pack_counts(np.array([1.5]), 1)


# -- in a grid, in storage, and `evaluate` ------------------------------------------------
EVALUATED = ["shift_acc", "shift_consistency", "shift_acc_0", "mean_corruption_acc", "corruption_acc_rotate",
             "ece", "nll", "macro_f1", "f1_class_3"]


def test_a_grid_records_every_default_evaluation_and_shift_zero_is_its_test_accuracy(digits_run):
    runs = read_tables(digits_run)["runs.csv"]
    assert runs[EVALUATED].notna().all().all()
    # digits has 360 test images, fewer than the subset: the subset is the whole test split
    assert (runs["shift_acc_0"] == runs["test_acc"]).all() and (runs["corruption_acc_clean"] == runs["test_acc"]).all()
    record = load_record(digits_run, runs["run_id"][0])
    assert set(record.evaluations) == set(EVALUATIONS) - {"probe"}
    assert record.config.run_id() == record.run_id  # evaluations are no part of a run's identity


def strip_evaluations(out):
    for path in (out / "runs").glob("*/record.json"):
        data = json.loads(path.read_text())
        data.pop("evaluations")
        path.write_text(json.dumps(data))


def test_evaluate_on_a_stored_grid_equals_what_a_fresh_grid_records(digits_run, tmp_path):
    out = tmp_path / "old"
    shutil.copytree(digits_run, out)
    strip_evaluations(out)  # a grid trained before evaluations existed
    old = RunRecord.from_json(json.loads(next((out / "runs").glob("*/record.json")).read_text()))
    assert old.evaluations == {}
    assert run_cli("evaluate", str(out), "--no-report") == 0
    fresh, again = read_tables(digits_run)["runs.csv"], read_tables(out)["runs.csv"]
    columns = [c for c in fresh.columns if RUNS.column(c) is not None and not RUNS.column(c).varies]
    pd.testing.assert_frame_equal(again[columns], fresh[columns])
    for run_id in fresh["run_id"]:
        a, b = load_record(digits_run, run_id).evaluations, load_record(out, run_id).evaluations
        assert {k: {x: y for x, y in v.items() if x != "seconds"} for k, v in a.items()} == \
            {k: {x: y for x, y in v.items() if x != "seconds"} for k, v in b.items()}
    assert (out / "evaluations-digits.pt").is_file()


def test_evaluate_bad_input_is_one_line_and_exit_2(tmp_path, capsys, digits_run):
    assert run_cli("evaluate", str(tmp_path / "nothing")) == 2
    assert run_cli("evaluate", str(digits_run), "--evaluations", "shift,bogus") == 2
    err = capsys.readouterr().err
    assert "unknown evaluation 'bogus'" in err and "Traceback" not in err


def test_evaluate_respects_the_output_folder_lock(digits_run, tmp_path, capsys):
    from bench.lock import OutputLock

    out = tmp_path / "locked"
    shutil.copytree(digits_run, out)
    with OutputLock(out, command="another writer", wait=False):
        assert run_cli("evaluate", str(out), "--no-wait", "--no-report") == 2
    assert "another writer" in capsys.readouterr().err


@pytest.fixture
def probe_evaluation():
    """An evaluation defined here, in a test file, and nowhere else."""
    outputs = (Output("probe_confidence", "mean top softmax probability on the test split", label="probe confidence",
                      compared=True, per_image=True),)

    @register_evaluation("probe", outputs=outputs, description="mean top-1 confidence", default=False)
    def probe(subject: Subject, test: EvalSet) -> Measured:
        top = subject.clean_logits(test).softmax(1).amax(1).double().numpy()
        right = top > 0.5
        return Measured({"probe_confidence": float(right.mean())}, per_image={"probe_confidence": right})

    yield "probe"
    unregister_evaluation("probe")


def test_an_evaluation_defined_in_a_test_file_reaches_runs_csv_and_the_report(digits_run, tmp_path, probe_evaluation):
    out = tmp_path / "probed"
    shutil.copytree(digits_run, out)
    assert RUNS.column("probe_confidence") is not None
    assert run_cli("evaluate", str(out), "--evaluations", probe_evaluation) == 0
    runs = read_tables(out)["runs.csv"]
    assert runs["probe_confidence"].between(0, 1).all() and runs["evaluation_seconds_probe"].notna().all()
    html = (out / "report.html").read_text()
    assert "probe confidence" in html


def test_a_grid_rerun_over_runs_trained_before_evaluations_evaluates_them_without_retraining(digits_run, tmp_path):
    out = tmp_path / "rerun"
    shutil.copytree(digits_run, out)
    strip_evaluations(out)
    weights = {p: p.read_bytes() for p in (out / "runs").glob("*/weights.pt")}
    assert run_cli("--archs", "lenet,dilated", "--dataset", "digits", "--seeds", "2", "--epochs", "2",
                   "--workers", "1", "--out", str(out), "--no-report", "--evaluations", "shift,calibration") == 0
    runs = read_tables(out)["runs.csv"]
    fresh = read_tables(digits_run)["runs.csv"]
    assert list(runs["shift_consistency"]) == list(fresh["shift_consistency"])
    assert list(runs["ece"]) == list(fresh["ece"])
    assert "mean_corruption_acc" not in runs  # not asked for this time
    assert {p: p.read_bytes() for p in weights} == weights  # reused, not retrained
