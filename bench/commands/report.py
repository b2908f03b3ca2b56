"""``python -m bench report``: render the comparative report of a finished output directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

NAME = "report"
DESCRIPTION = "Render report.html and figures/*.png from a run directory's stored tables."


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="output directory of a benchmark run (its --out)")
    p.add_argument("--baseline", default=None,
                   help="also compare every architecture with this one (default: only with the leader)")


def main(args: argparse.Namespace, console: Console) -> int:
    from ..report import render_report

    path = render_report(Path(args.run_dir), baseline=args.baseline)
    console.print(f"report: {path}", soft_wrap=True)
    return 0
