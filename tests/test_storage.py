import json

import pandas as pd
import pytest

from bench.records import RunRecord
from bench.storage import (
    atomic_write_text, leftover_temporaries, load_record, read_tables, run_dir, tables_from_records,
)


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "t.csv"
    atomic_write_text(target, "old\n")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n" and leftover_temporaries(tmp_path) == []


def test_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "t.csv"
    atomic_write_text(target, "old\n")

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr("bench.storage.os.fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n" and leftover_temporaries(tmp_path) == []


def test_records_round_trip_and_rebuild_the_same_tables(digits_run):
    tables = read_tables(digits_run)
    ids = list(tables["runs.csv"].run_id)
    records = [load_record(digits_run, run_id) for run_id in ids]
    assert all(isinstance(r, RunRecord) for r in records)
    rebuilt = tables_from_records(records)
    for name in ("epochs.csv", "confusion.csv"):
        pd.testing.assert_frame_equal(rebuilt[name].reset_index(drop=True), tables[name], check_dtype=False)
    assert list(rebuilt["runs.csv"].test_acc) == list(tables["runs.csv"].test_acc)


def test_unreadable_record_counts_as_unfinished(digits_run, tmp_path):
    run_id = read_tables(digits_run)["runs.csv"].run_id[0]
    (run_dir(tmp_path, run_id)).mkdir(parents=True)
    (run_dir(tmp_path, run_id) / "record.json").write_text("{not json")
    assert load_record(tmp_path, run_id) is None
    (run_dir(tmp_path, run_id) / "record.json").write_text(json.dumps({"run_id": run_id}))
    assert load_record(tmp_path, run_id) is None
