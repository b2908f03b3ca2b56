"""A finished grid whose report fails to render keeps every result and says how to retry."""

import pandas as pd

from bench.report import REPORT_ERROR
from bench.report import sections
from conftest import run_cli


def _broken_section(v):
    raise ValueError("'xerr' must not contain negative values")


def test_a_failing_report_keeps_the_tables_says_one_line_and_exits_non_zero(tmp_path, capsys, monkeypatch):
    out = tmp_path / "grid"
    monkeypatch.setattr(sections, "SECTIONS", (sections.leaderboard, _broken_section))
    status = run_cli("--archs", "lenet,dilated", "--dataset", "digits", "--seeds", "2", "--epochs", "1",
                     "--workers", "1", "--out", str(out))
    captured = capsys.readouterr()
    assert status == 3
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: the report could not be rendered (ValueError: ")
    assert f"python -m bench report {out}" in errors[0] and str(out / REPORT_ERROR) in errors[0]
    assert "Traceback" not in captured.out + captured.err
    assert "Traceback (most recent call last)" in (out / REPORT_ERROR).read_text()
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and (runs.status == "ok").all()
    assert not (out / "report.html").exists()

    # Fixed, the retry renders from the same stored tables and clears the old traceback.
    monkeypatch.undo()
    assert run_cli("report", str(out)) == 0
    assert (out / "report.html").is_file() and not (out / REPORT_ERROR).exists()
    pd.testing.assert_frame_equal(runs, pd.read_csv(out / "runs.csv"))


def test_report_command_failure_is_one_line_too(tmp_path, capsys, monkeypatch):
    out = tmp_path / "grid"
    assert run_cli("--archs", "lenet", "--dataset", "digits", "--seeds", "1", "--epochs", "1",
                   "--workers", "1", "--out", str(out), "--no-report") == 0
    capsys.readouterr()
    monkeypatch.setattr(sections, "SECTIONS", (_broken_section,))
    assert run_cli("report", str(out)) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the report could not be rendered")
