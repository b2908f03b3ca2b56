"""The answer end to end: per-image results in the records, time to target in the tables,
and ``--until-decided`` rounds of seeds."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from bench.records import RunRecord, pack_bits, unpack_bits
from bench.storage import load_record, read_tables, write_tables
from bench.until_decided import SeedRounds
from conftest import run_cli


@pytest.mark.parametrize("n", [1, 7, 8, 9, 360, 10_000])
def test_per_image_bits_round_trip(n):
    correct = np.random.default_rng(n).random(n) < 0.7
    packed = pack_bits(correct)
    assert packed["images"] == n and len(packed["bits"]) == 4 * math.ceil(math.ceil(n / 8) / 3)  # base64
    assert np.array_equal(unpack_bits(json.loads(json.dumps(packed))), correct)


def test_a_truncated_bit_string_is_a_damaged_record():
    packed = pack_bits(np.ones(20, bool))
    with pytest.raises(ValueError):
        unpack_bits({**packed, "images": 40})


def test_records_keep_which_test_images_each_run_got_right(digits_run):
    runs = read_tables(digits_run)["runs.csv"]
    for row in runs.itertuples():
        record = load_record(digits_run, row.run_id)
        assert record.test_correct is not None and record.test_correct.dtype == bool
        assert len(record.test_correct) == 360  # the digits test split
        assert record.test_correct.sum() == np.trace(np.asarray(record.confusion))  # agrees with the confusion
        assert record.test_correct.mean() == pytest.approx(row.test_acc)
        again = RunRecord.from_json(json.loads(json.dumps(record.to_json())))
        assert np.array_equal(again.test_correct, record.test_correct)


def test_time_to_target_columns_with_a_run_that_never_reaches_it(digits_run, tmp_path):
    records = [load_record(digits_run, r) for r in read_tables(digits_run)["runs.csv"]["run_id"]]
    best = max(max(e["val_acc"] for e in r.epochs) for r in records)
    runs = write_tables(tmp_path, records, best)["runs.csv"].set_index("run_id")
    for record in records:
        reached = [e for e in record.epochs if e["val_acc"] >= best]
        row = runs.loc[record.run_id]
        if reached:
            epoch = reached[0]["epoch"]
            assert row["epochs_to_target"] == epoch
            assert row["seconds_to_target"] == pytest.approx(sum(e["train_seconds"] for e in record.epochs[:epoch]))
        else:
            assert math.isinf(row["epochs_to_target"]) and math.isinf(row["seconds_to_target"])
    assert np.isinf(runs["epochs_to_target"]).any() and np.isfinite(runs["epochs_to_target"]).any()
    stored = pd.read_csv(digits_run / "runs.csv")  # written with the default target: every arch reaches it on average
    assert {"epochs_to_target", "seconds_to_target"} <= set(stored.columns)


def test_until_decided_adds_seeds_in_rounds_and_keeps_the_plan(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--archs", "lenet-12,bottleneck-net", "--dataset", "digits", "--epochs", "1", "--seeds", "2",
            "--until-decided", "--max-seeds", "4", "--margin", "1", "--workers", "1", "--no-report",
            "--out", str(out)]
    assert run_cli(*args) == 0
    text = capsys.readouterr().out
    invocation = json.loads((out / "config.json").read_text())
    plan = invocation["analysis"]["until_decided"]
    rounds = len(re.findall(r"^round \d+: ", text, re.M))
    assert rounds >= 1 and plan["seeds"] == [2, 4][:rounds] and plan["max_seeds"] == 4
    assert f"round {rounds}: {plan['seeds'][-1]} seeds" in text
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(set(runs["seed"])) == list(range(plan["seeds"][-1]))
    assert invocation["analysis"]["margin"] == pytest.approx(0.01)
    assert "--until-decided --max-seeds 4" in invocation["reproduce"] and "--margin 1" in invocation["reproduce"]
    if rounds == 1:  # decided at the first look: it says so and trains no more
        assert "of 1 comparisons decided" in text and "undecided" not in text.split("round 1")[1]
    else:
        assert "reusing 4 finished run(s)" in text  # the second round reuses the first round's runs

    assert run_cli(*args) == 0  # run again: every run is reused, nothing retrained
    n = len(runs)
    assert f"{n} runs ({n} reused, 0 trained)" in capsys.readouterr().out


def test_until_decided_takes_no_seed_list(tmp_path, capsys):
    assert run_cli("--archs", "lenet", "--dataset", "digits", "--until-decided", "--seed-list", "0,1",
                   "--out", str(tmp_path)) == 2
    assert "takes no --seed-list" in capsys.readouterr().err


def test_until_decided_needs_two_architectures(tmp_path, capsys):
    assert run_cli("--archs", "lenet", "--dataset", "digits", "--until-decided", "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "--until-decided" in err and "needs two or more" in err and "only lenet" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()  # refused before anything ran


@pytest.fixture
def lenet_twin():
    """lenet-12 under another name: the same network, so nothing can tell the two apart."""
    from architectures import get_spec, register_model, unregister_model

    register_model("zz-twin", family="test", description="lenet-12 again")(get_spec("lenet-12").builder)
    yield "zz-twin"
    unregister_model("zz-twin")


def test_until_decided_stops_at_max_seeds_when_nothing_can_decide(lenet_twin, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("--archs", f"lenet-12,{lenet_twin}", "--dataset", "digits", "--epochs", "1", "--seeds", "2",
                   "--until-decided", "--max-seeds", "4", "--margin", "0.01", "--workers", "1",
                   "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert re.findall(r"^round (\d+): (\d+) seeds", text, re.M) == [("1", "2"), ("2", "4")]
    # Each look's level in two significant figures: the first spends almost nothing (not "0.0000").
    assert re.findall(r"^round \d+: .* at alpha ([^)]+)\)", text, re.M) == [f"{look.alpha():.2g}" for look in (
        SeedRounds(2, 4).look(0), SeedRounds(2, 4).look(1))]
    assert "reusing 4 finished run(s)" in text and "--max-seeds 4 reached with 1 comparison(s) undecided" in text
    assert json.loads((out / "config.json").read_text())["analysis"]["until_decided"]["seeds"] == [2, 4]
    html = (out / "report.html").read_text()
    assert "identical predictions on every test image at every seed" in html
    assert "looks after 2, 4 seeds" in html  # the report tests at the last look's level, and says so
