"""``python -m bench export``: send stored runs to MLflow or TensorBoard."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

NAME = "export"
DESCRIPTION = """Send an output directory's runs to an experiment tracker: MLflow (one run per
cnnbench run, exported once) or TensorBoard (scalar curves per run)."""


def configure(p: argparse.ArgumentParser) -> None:
    trackers = p.add_subparsers(dest="tracker", required=True, metavar="TRACKER",
                                parser_class=type(p), title="trackers")
    m = trackers.add_parser(
        "mlflow", formatter_class=p.formatter_class, help="one MLflow run per cnnbench run",
        description="Log every stored run into MLflow: config as params, per-epoch metrics by step,\n"
                    "final metrics, the confusion matrix and the report as artifacts, in one experiment\n"
                    "named after the grid. Runs already exported (tag cnnbench.run_id) are skipped.\n"
                    "Needs pip install 'cnnbench[mlflow]'.")
    m.add_argument("run_dir", help="an output directory of `python -m bench`")
    m.add_argument("--tracking-uri", default=None,
                   help="where to log: an MLflow server (http://host:5000) or store URI (default: "
                        "$MLFLOW_TRACKING_URI, else sqlite:///RUN_DIR/mlflow.db, a local store that needs "
                        "nothing running)")
    m.add_argument("--experiment", default=None,
                   help="experiment name (default: after the grid, 'cnnbench: <archs> on <datasets>')")
    t = trackers.add_parser(
        "tensorboard", formatter_class=p.formatter_class, help="scalar curves per run for TensorBoard",
        description="Write each stored run's curves as TensorBoard scalars, one folder per run\n"
                    "(rewritten on each export). Needs pip install 'cnnbench[tensorboard]'.")
    t.add_argument("run_dir", help="an output directory of `python -m bench`")
    t.add_argument("--logdir", default=None, help="where to write (default: RUN_DIR/tensorboard)")


def main(args: argparse.Namespace, console: Console) -> int:
    out = Path(args.run_dir)
    if args.tracker == "mlflow":
        from ..export.to_mlflow import export_mlflow

        done = export_mlflow(out, args.tracking_uri, args.experiment)
        console.print(f"MLflow: {len(done.logged)} run(s) logged, {len(done.skipped)} already there, in "
                      f"experiment {done.experiment!r} at {done.tracking_uri}", soft_wrap=True)
        if done.tracking_uri.startswith("sqlite:"):
            console.print(f"browse: mlflow ui --backend-store-uri {done.tracking_uri}", soft_wrap=True)
        return 0
    from ..export.to_tensorboard import export_tensorboard

    done = export_tensorboard(out, Path(args.logdir) if args.logdir else None)
    console.print(f"TensorBoard: {len(done.runs)} run(s) written to {done.logdir}; "
                  f"browse: tensorboard --logdir {done.logdir}", soft_wrap=True)
    return 0
