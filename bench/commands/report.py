"""``python -m bench report``: render the comparative report of a finished output directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from .run import add_answer_options

NAME = "report"
DESCRIPTION = "Render report.html and figures/*.png from a run directory's stored tables."


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="output directory of a benchmark run (its --out)")
    add_answer_options(p, stored_first=True)


def main(args: argparse.Namespace, console: Console) -> int:
    from ..report import render_or_keep_traceback

    margin = None if args.margin is None else args.margin / 100
    path = render_or_keep_traceback(Path(args.run_dir), baseline=args.baseline, margin=margin, target=args.target)
    say_left_out(Path(args.run_dir), console)
    console.print(f"report: {path}", soft_wrap=True)
    return 0


def say_left_out(out: Path, console: Console) -> None:
    """One line per run the report left out (its banners say the same)."""
    from ..report.load import unsound_runs
    from ..storage import read_tables

    for run_id, reason in unsound_runs(out, read_tables(out)["runs.csv"]).items():
        console.print(f"left out of the report: {run_id}: {reason}", markup=False, highlight=False, soft_wrap=True)
