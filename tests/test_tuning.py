"""The tuning stage: the expected-maximum estimator, the candidate points, the choice on
validation only, and trials that resume and run on Ray like any run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench import tasks
from bench.commands import run as run_command
from bench.config import RunConfig
from bench.datasets.tensors import Split
from bench.schema import TUNING
from bench.tuning.expected_max import expected_max, expected_max_curve, expected_max_sd
from bench.tuning.protocol import protocol_sentence
from bench.tuning.selection import TUNE_SEED_BASE, mark_choices, trial_configs
from bench.tuning.space import default_space, parse_space
from bench.tuning.study import candidate_points
from conftest import run_cli, run_cli_process, start_cli

TUNED = ["--archs", "lenet,dilated", "--dataset", "digits", "--seeds", "1", "--epochs", "1", "--workers", "1",
         "--no-report", "--tune", "--tune-trials", "3"]


def test_expected_max_against_hand_computed_values():
    values = [0.4, 0.1, 0.2]  # sorted: 0.1, 0.2, 0.4
    assert expected_max(values, 1) == pytest.approx(0.7 / 3, abs=1e-15)  # the mean
    # n = 2: P(max = v_(i)) = (i/3)^2 - ((i-1)/3)^2 = 1/9, 3/9, 5/9
    assert expected_max(values, 2) == pytest.approx((0.1 * 1 + 0.2 * 3 + 0.4 * 5) / 9, abs=1e-15)
    # n = 3: 1/27, 7/27, 19/27
    assert expected_max(values, 3) == pytest.approx((0.1 * 1 + 0.2 * 7 + 0.4 * 19) / 27, abs=1e-15)
    # sd at n = 2: E[max^2] - E[max]^2 = (0.01 + 0.12 + 0.8) / 9 - 0.3^2
    assert expected_max_sd(values, 2) == pytest.approx(math.sqrt(0.93 / 9 - 0.09), abs=1e-15)
    assert expected_max_sd([0.5, 0.5], 4) == 0.0
    assert math.isnan(expected_max([math.nan], 2))
    curve = expected_max_curve(values)
    assert [row["trials"] for row in curve] == [1, 2, 3]
    assert all(0.1 <= row["low"] <= row["expected"] <= row["high"] <= 0.4 for row in curve)
    assert [row["expected"] for row in curve] == sorted(row["expected"] for row in curve)  # more trials, no worse


def test_search_space_parsing_and_its_errors():
    space = parse_space("lr=1e-4:1e-2, weight-decay=1e-6:1e-3,warmup_epochs=0:2")
    assert space.names == ["lr", "weight_decay", "warmup_epochs"]
    assert space.text() == "lr=0.0001:0.01,weight_decay=1e-06:0.001,warmup_epochs=0:2"
    assert default_space("adam").text() == "lr=0.0001:0.01" and default_space("sgd").text() == "lr=0.001:0.1"
    for bad, says in [("dropout=0:1", "cannot tune 'dropout'"), ("lr=1e-2:1e-4", "LOW < HIGH"),
                      ("lr=0:1", "log axis"), ("lr=1e-3", "LR=LOW:HIGH".lower()), ("", "empty"),
                      ("warmup_epochs=0:1.5", "whole numbers"), ("lr=1e-4:1e-3,lr=1e-3:1e-2", "named twice")]:
        with pytest.raises(ValueError) as caught:
            parse_space(bad)
        assert says.lower() in str(caught.value).lower(), bad


def test_bad_tuning_options_are_one_line(tmp_path, capsys):
    for bad in (["--tune-space", "lr=1:0.1"], ["--tune-trials", "0"], ["--tune-fraction", "1.5"]):
        with pytest.raises(SystemExit) as exited:
            run_cli("--dataset", "digits", *bad, "--out", str(tmp_path))
        assert exited.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: argument {bad[0]}: "), err


def test_a_study_storage_that_cannot_be_used_is_one_line(tmp_path, capsys):
    bad = tmp_path / "optuna.db"
    bad.write_text("not a database")
    assert run_cli(*TUNED, "--out", str(tmp_path / "out"), "--tune-storage", f"sqlite:///{bad}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: the tuning study at sqlite:///{bad} cannot be used: "), err


def test_candidate_points_are_sobol_stored_and_extended_in_order(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    space = default_space("adam")
    first = candidate_points(storage, space, 4, seed=0)
    again = candidate_points(storage, space, 8, seed=0)
    assert again[:4] == first  # stored: a re-run, or a larger budget, gets the same points first
    # Scrambled Sobol: 8 points put exactly one in each eighth of the (log) range.
    bins = sorted(int((math.log10(p["lr"]) + 4) / 2 * 8) for p in again)
    assert bins == list(range(8))
    assert candidate_points(storage, space, 8, seed=1) != again  # another sampler seed, other points


def test_trials_have_their_own_seeds_and_every_architecture_the_same_points():
    bases = [RunConfig(arch=a, dataset="digits", epochs=5, lr_schedule="cosine", warmup_epochs=1)
             for a in ("lenet", "dilated")]
    points = [{"lr": 0.01}, {"lr": 0.001}]
    trials = trial_configs(bases, points, epochs=1, seeds=2, fraction=0.5)
    assert len(trials) == 2 * 2 * 2
    assert {t.seed for t in trials} == set(range(TUNE_SEED_BASE, TUNE_SEED_BASE + 4))
    by_arch = {a: [(t.seed, t.lr) for t in trials if t.arch == a] for a in ("lenet", "dilated")}
    assert by_arch["lenet"] == by_arch["dilated"]
    assert all(t.epochs == 1 and t.train_fraction == 0.5 and t.warmup_epochs == 0 for t in trials)


def test_the_choice_is_the_best_mean_validation_accuracy_with_edges_flagged():
    table = pd.DataFrame({
        "dataset": "d", "arch": ["a"] * 6 + ["b"] * 3,
        "trial": [0, 0, 1, 1, 2, 2, 0, 1, 2],
        "param_lr": [1e-3, 1e-3, 1e-2, 1e-2, 1e-4, 1e-4, 1e-3, 1e-2, 1e-4],
        # a: trial 1's mean 0.85 beats trial 0's 0.8 (one seed of trial 1 diverged counts as worst? no: both ok)
        "val_acc": [0.9, 0.7, 0.85, 0.85, 0.1, math.nan, 0.5, 0.5, 0.2],
    })
    marked = mark_choices(table, ["lr"])
    chosen = marked[marked["chosen"]]
    assert list(chosen.index) == [2, 3, 6]  # a: trial 1 (mean 0.85); b: tie 0.5, the lower trial (0)
    assert list(chosen["edge"]) == ["lr", "lr", ""]  # a's 1e-2 is the highest lr tried; b's 1e-3 the middle
    assert not marked.loc[[4, 5], "chosen"].any()  # a NaN (diverged) seed sinks its point


def test_protocol_sentence():
    assert protocol_sentence({"tuning": {"tuned": ["lr"], "trials": 8}}) == \
        "each at its own tuned learning rate, 8 trials each"
    assert protocol_sentence({"tuning": {"tuned": ["lr", "weight_decay"], "trials": 4}}) == \
        "each at its own tuned learning rate and weight decay, 4 trials each"
    assert protocol_sentence({"tuning": None, "base_config": {"lr": 0.001}}) == "all at lr 0.001, not tuned"


def _tuned_run(out, *extra) -> pd.DataFrame:
    assert run_cli(*TUNED, "--out", str(out), *extra) == 0
    return pd.read_csv(out / TUNING.file)


@pytest.fixture(scope="module")
def tuned_digits(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CNNBENCH_NO_DOWNLOAD", "1")
    out = tmp_path_factory.mktemp("tuned")
    try:
        table = _tuned_run(out)
    finally:
        mp.undo()
    return out, table


def test_a_tuned_grid_trains_each_architecture_at_its_choice(tuned_digits):
    import json

    out, table = tuned_digits
    assert set(table.columns) >= {c.name for c in TUNING.columns if c.pattern is None} | {"param_lr"}
    assert len(table) == 2 * 3 and table.groupby("arch")["chosen"].sum().tolist() == [1, 1]
    # The same candidate points for every architecture, each trial with its own seed.
    lrs = table.pivot(index="trial", columns="arch", values="param_lr")
    assert (lrs["lenet"] == lrs["dilated"]).all() and lrs["lenet"].nunique() == 3
    assert set(table["seed"]) == {TUNE_SEED_BASE, TUNE_SEED_BASE + 1, TUNE_SEED_BASE + 2}
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["seed"]) == [0, 0] and list(runs["lr_schedule"]) == ["cosine", "cosine"]
    for _, run in runs.iterrows():
        chosen = table[(table["arch"] == run["arch"]) & table["chosen"]]
        assert run["lr"] == chosen["param_lr"].iloc[0]
    invocation = json.loads((out / "config.json").read_text())
    assert invocation["tuning"]["trials"] == 3 and len(invocation["tuning"]["run_ids"]) == 6
    assert "--tune --tune-trials 3 --tune-epochs 1" in invocation["reproduce"]
    assert "--lr 0.001 " in invocation["reproduce"]  # the untuned rate, not the first network's choice
    assert (out / "optuna.db").is_file() and (out / "tuning" / "runs.csv").is_file()
    assert protocol_sentence(invocation) == "each at its own tuned learning rate, 3 trials each"


def test_verify_retrains_a_trial_bit_for_bit(tuned_digits, capsys):
    out, table = tuned_digits
    trial = table.iloc[1]
    assert run_cli("verify", str(out / "tuning"), "--arch", trial["arch"], "--seed", str(trial["seed"])) == 0
    assert "MATCH: all" in capsys.readouterr().out  # its training fraction and seed retrain the same bits


def test_permuting_the_test_labels_leaves_every_choice_unchanged(tuned_digits, tmp_path, monkeypatch):
    _, table = tuned_digits
    load = run_command.load_dataset
    rng = np.random.default_rng(0)

    def permuted(name, search):
        dataset = load(name, search)
        labels = dataset.test.labels[rng.permutation(len(dataset.test.labels))]
        return dataset.__class__(**{**dataset.__dict__, "test": Split(dataset.test.images, labels)})

    monkeypatch.setattr(run_command, "load_dataset", permuted)
    monkeypatch.setattr(tasks, "_PREPARED", {})  # this process's copy of the unpermuted digits
    monkeypatch.setattr(tasks, "_DATASETS", {})
    out = tmp_path / "permuted"
    again = _tuned_run(out)
    keep = ["arch", "trial", "param_lr", "val_acc", "chosen", "edge"]
    pd.testing.assert_frame_equal(again[keep], table[keep])
    # ... while the test set did change what the trials scored on it.
    before = pd.read_csv(tuned_digits[0] / "tuning" / "runs.csv")["test_acc"]
    assert not np.array_equal(pd.read_csv(out / "tuning" / "runs.csv")["test_acc"], before)


def test_a_rerun_reuses_every_trial(tuned_digits, tmp_path, capsys):
    import shutil

    out = tmp_path / "again"
    shutil.copytree(tuned_digits[0], out)
    capsys.readouterr()
    table = _tuned_run(out)
    said = capsys.readouterr().out
    assert "reusing 6 finished run(s)" in said and "(2 reused, 0 trained)" in said
    pd.testing.assert_frame_equal(table.drop(columns="seconds"), tuned_digits[1].drop(columns="seconds"))


def test_sigkill_while_tuning_resumes_without_retraining_finished_trials(tmp_path):
    import time

    out = tmp_path / "out"
    args = [*TUNED, "--tune-epochs", "4", "--tune-fraction", "1", "--out", str(out)]
    proc = start_cli(*args, cache=tmp_path / "cache")
    deadline = time.monotonic() + 120
    while len(list(out.glob("tuning/runs/*/record.json"))) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("tuning/runs/*/record.json")}
    assert 2 <= len(finished) and not (out / TUNING.file).exists()

    rerun = run_cli_process(*args, cache=tmp_path / "cache")
    assert rerun.returncode == 0, rerun.stderr
    assert f"reusing {len(finished)} finished run(s)" in rerun.stdout
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in finished.items())  # not retrained
    table = pd.read_csv(out / TUNING.file)
    assert len(table) == 6 and table.groupby("arch")["trial"].nunique().tolist() == [3, 3]


@pytest.mark.ray
def test_trials_on_the_ray_executor_equal_local_trials(tuned_digits, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    table = _tuned_run(out, "--executor", "ray", "--workers", "2")
    keep = [c for c in table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(table[keep], tuned_digits[1][keep], check_exact=True)


def test_a_run_at_chance_is_flagged_not_learning(tmp_path, capsys):
    out = tmp_path / "lr1000"
    assert run_cli("--archs", "lenet", "--dataset", "digits", "--seeds", "1", "--epochs", "1", "--workers", "1",
                   "--no-tune", "--lr", "1000", "--out", str(out)) == 0
    said = capsys.readouterr().out
    runs = pd.read_csv(out / "runs.csv")
    assert runs["status"].tolist() == ["ok"] and runs["learning"].tolist() == [False]  # ok, yet at chance
    assert "not learning: lenet seed 0 on digits stayed at chance accuracy" in said
    assert "Not learning: lenet seed 0 stayed at chance accuracy" in (out / "report.html").read_text()


def test_the_report_of_a_tuned_grid_has_a_tuning_section(tuned_digits, tmp_path):
    import shutil

    out = tmp_path / "report"
    shutil.copytree(tuned_digits[0], out)
    assert run_cli("report", str(out)) == 0
    html = (out / "report.html").read_text()
    assert 'id="tuning-digits"' in html and "Protocol: each at its own tuned learning rate, 3 trials each." in html
    table = tuned_digits[1]
    for _, row in table[table["chosen"]].iterrows():
        assert f"lr {row['param_lr']:.3g}" in html
    assert "half the budget" in html and "Tuning cost too" in html
    assert (out / "figures" / "digits-tuning-sensitivity.png").is_file()
    assert (out / "figures" / "digits-tuning-expected-best.png").is_file()


def test_half_budget_line_says_whether_the_ranking_holds():
    from bench.report.tuning_section import half_budget_line

    # a: two great points among poor ones; b: uniformly good.  At 4 trials a's expected best wins
    # (0.99 x 15/16 + 0.5 / 16), at 2 b's does (0.99 x 3/4 + 0.5 / 4): the budget decides the ranking.
    points = pd.DataFrame({"arch": ["a"] * 4 + ["b"] * 4, "trial": [0, 1, 2, 3] * 2,
                           "val_acc": [0.99, 0.99, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9]})
    assert expected_max(points["val_acc"][:4], 4) == pytest.approx(0.99 * 15 / 16 + 0.5 / 16, abs=1e-15)
    assert expected_max(points["val_acc"][:4], 2) == pytest.approx(0.99 * 3 / 4 + 0.5 / 4, abs=1e-15)
    assert half_budget_line(points, ["a", "b"]) == (
        "The ranking by expected best validation accuracy changes its top at half the budget: a at 4 trials, "
        "b at 2: the tuning budget decides which is best (1 of 1 pairs swap).")
    # c above b at 4 trials (0.99 x 175/256 + 0.8 x 81/256 = 0.93), below it at 2 (0.99 x 7/16 + 0.8 x 9/16
    # = 0.88); a stays the top: one pair of three swaps.
    three = pd.concat([points.assign(val_acc=[0.99, 0.99, 0.99, 0.5, 0.9, 0.9, 0.9, 0.9]),
                       pd.DataFrame({"arch": "c", "trial": [0, 1, 2, 3], "val_acc": [0.99, 0.8, 0.8, 0.8]})])
    assert half_budget_line(three, ["a", "b", "c"]) == (
        "At half the budget (2 of 4 trials) the ranking by expected best validation accuracy keeps its top (a) "
        "and swaps 1 of 3 pairs: c/b.")
    same = points.assign(val_acc=[0.99, 0.95, 0.95, 0.95, 0.9, 0.9, 0.9, 0.9])
    assert half_budget_line(same, ["a", "b"]) == (
        "The ranking by expected best validation accuracy (a > b) holds at half the budget (2 of 4 trials).")
