"""Damaged run folders: found in one place (storage.check_run), moved aside and retrained by
a grid, left out (and named) by the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.report.load import load
from bench.schema import RECORD_VERSION
from bench.storage import DAMAGED_DIR, RECORD_FILE, WEIGHTS_FILE, check_run, leftover_temporaries, read_tables, run_dir
from conftest import run_cli
from test_resume import assert_same_tables

# The digits_run fixture's grid (conftest), to rerun it into a copy.
DIGITS_GRID = ["--archs", "lenet,dilated", "--dataset", "digits", "--seeds", "2", "--epochs", "2",
               "--workers", "1", "--no-report", "--evaluations", "default"]  # as conftest.digits_run


@pytest.fixture
def copy(digits_run, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(digits_run, out)
    return out


def run_ids(out: Path) -> list[str]:
    return list(read_tables(out)["runs.csv"]["run_id"])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_check_run_tells_sound_unfinished_and_damaged_folders_apart(copy):
    a, b, c, d = run_ids(copy)
    assert check_run(copy, a).record.run_id == a and check_run(copy, a).problem is None
    assert check_run(copy, "lenet-digits-s9-0000000000") == check_run(copy, "nothing")  # no record: unfinished
    assert not check_run(copy, "nothing").finished and check_run(copy, "nothing").problem is None

    truncate(run_dir(copy, a) / RECORD_FILE)
    assert check_run(copy, a).problem == "record.json is truncated or not JSON"
    (run_dir(copy, b) / RECORD_FILE).write_text(json.dumps({"run_id": b}))
    assert check_run(copy, b).problem == "record.json is not a cnnbench record (no version)"
    shutil.copy(run_dir(copy, d) / RECORD_FILE, run_dir(copy, c) / RECORD_FILE)
    assert check_run(copy, c).problem == f"record.json names run {d}, not its folder's"
    truncate(run_dir(copy, d) / WEIGHTS_FILE)
    assert check_run(copy, d).problem == "weights.pt is truncated or not a torch file"
    (run_dir(copy, d) / WEIGHTS_FILE).unlink()
    assert check_run(copy, d).problem == "weights.pt is missing"
    assert all(check_run(copy, r).record is None for r in (a, b, c, d))


def test_a_record_of_a_newer_cnnbench_is_not_damage_but_an_error(copy):
    run_id = run_ids(copy)[0]
    path = run_dir(copy, run_id) / RECORD_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": RECORD_VERSION + 1}))
    with pytest.raises(BenchError, match="newer cnnbench"):
        check_run(copy, run_id)


def test_a_grid_moves_damaged_runs_aside_and_retrains_them(copy, digits_run, capsys):
    a, b, c, d = run_ids(copy)
    truncate(run_dir(copy, a) / RECORD_FILE)
    (run_dir(copy, b) / WEIGHTS_FILE).unlink()
    shutil.copy(run_dir(copy, d) / RECORD_FILE, run_dir(copy, c) / RECORD_FILE)
    damaged_a = (run_dir(copy, a) / RECORD_FILE).read_bytes()

    runs = read_tables(copy)["runs.csv"].set_index("run_id")
    assert run_cli(*DIGITS_GRID, "--out", str(copy)) == 0
    text = capsys.readouterr().out
    for run_id, problem in [(a, "record.json is truncated or not JSON"), (b, "weights.pt is missing"),
                            (c, f"record.json names run {d}, not its folder's")]:
        label = f"{runs.loc[run_id, 'arch']} digits seed {runs.loc[run_id, 'seed']}"
        assert f"damaged run {label} ({run_id}): {problem}; moved to runs/{DAMAGED_DIR}/{run_id}-" in text
    assert "(1 reused, 3 trained)" in text
    # Moved aside whole, not deleted; the retrained runs are sound and give the same tables.
    (moved_a,) = (copy / "runs" / DAMAGED_DIR).glob(f"{a}-*")
    assert (moved_a / RECORD_FILE).read_bytes() == damaged_a
    assert len(list((copy / "runs" / DAMAGED_DIR).iterdir())) == 3
    assert all(check_run(copy, r).problem is None and check_run(copy, r).finished for r in (a, b, c, d))
    assert_same_tables(copy, digits_run)


def test_the_report_leaves_damaged_runs_out_and_says_which_and_why(copy, capsys):
    a, b, c, d = run_ids(copy)
    truncate(run_dir(copy, a) / RECORD_FILE)
    (run_dir(copy, b) / WEIGHTS_FILE).unlink()
    shutil.rmtree(run_dir(copy, c))
    before = snapshot(copy / "runs")

    assert run_cli("report", str(copy)) == 0
    text = capsys.readouterr().out
    assert f"left out of the report: {a}: record.json is truncated or not JSON" in text
    assert f"left out of the report: {b}: weights.pt is missing" in text
    assert f"left out of the report: {c}: its record runs/{c}/record.json is missing" in text
    html = (copy / "report.html").read_text()
    assert f"left out {a}: record.json is truncated or not JSON; rerun the grid to train it again" in html
    stored = load(copy)
    assert list(stored.runs["run_id"]) == [d]
    assert set(stored.epochs["run_id"]) == {d} and set(stored.confusion["run_id"]) == {d}
    assert snapshot(copy / "runs") == before  # the report only reads


def test_a_report_with_every_run_damaged_is_one_line(copy, capsys):
    for run_id in run_ids(copy):
        truncate(run_dir(copy, run_id) / RECORD_FILE)
    assert run_cli("report", str(copy)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: every run in {copy / 'runs.csv'} is damaged or missing (first: ")


def test_temporary_files_a_killed_writer_left_are_removed_by_the_next_command(copy, capsys):
    """SIGKILL in the middle of an atomic write leaves its temporary file (no cleanup runs)."""
    run_id = run_ids(copy)[0]
    stale = [copy / ".tmp-runs.csv", run_dir(copy, run_id) / ".tmp-checkpoint"]
    for path in stale:
        path.write_bytes(b"half a file")
    assert run_cli(*DIGITS_GRID, "--out", str(copy)) == 0
    assert "(4 reused, 0 trained)" in capsys.readouterr().out
    assert leftover_temporaries(copy) == []
