"""``python -m bench evaluate``: run evaluations on the stored weights of a finished grid."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BenchError

if TYPE_CHECKING:
    from rich.console import Console

NAME = "evaluate"
DESCRIPTION = """Evaluate a grid's stored weights beyond clean accuracy: shifts, corruptions, calibration.
Runs the evaluations (docs/evaluations.md) on the weights every finished run was tested with,
stores them in each run's record, rebuilds the tables and re-renders the report.  Nothing is
retrained; a run that already has an evaluation keeps it unless --force."""


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="output directory of a benchmark run (its --out)")
    add_evaluations_option(p)
    p.add_argument("--force", action="store_true", help="evaluate again runs that already have an evaluation")
    p.add_argument("--data-dir", default=None,
                   help="where the datasets are (default: where the grid read them, as stored in config.json)")
    p.add_argument("--no-wait", action="store_true",
                   help="when another cnnbench is writing to the run directory, stop at once "
                        "(default: wait for it to finish)")
    p.add_argument("--no-report", action="store_true", help="rebuild the tables but do not render the report")


def add_evaluations_option(p, default: str = "default") -> None:
    p.add_argument("--evaluations", default=default, metavar="NAMES",
                   help="comma list of evaluations of the tested weights, 'all' or 'none' (default: every "
                        "built-in one: shift, corruptions, calibration, per_class; for a grid, $CNNBENCH_EVALUATIONS "
                        "when set)")


def main(args: argparse.Namespace, console: Console) -> int:
    from ..evaluate import evaluate_records, missing, save_examples
    from ..evaluations import resolve_evaluations
    from ..lock import OutputLock
    from ..storage import check_run, read_invocation, remove_temporaries, write_tables
    from ..user_networks import use_recorded

    out = Path(args.run_dir)
    if not out.is_dir():
        raise BenchError(f"{out} is not a directory; give the --out folder of a benchmark run")
    names = resolve_evaluations(args.evaluations)
    if not names:
        raise BenchError("--evaluations none leaves nothing to evaluate")
    invocation = read_invocation(out)
    run_ids = invocation.get("run_ids") if isinstance(invocation, dict) else None
    if not isinstance(run_ids, list):
        raise BenchError(f"{out / 'config.json'} lists no runs; is {out} a cnnbench output directory?")
    command = "python -m bench evaluate " + shlex.join(getattr(args, "argv", []) or [])
    with OutputLock(out, command=command, wait=not args.no_wait,
                    on_note=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)):
        remove_temporaries(out)
        use_recorded(invocation)  # the grid's networks from outside the zoo
        records = []
        for run_id in run_ids:
            folder = check_run(out, run_id)
            if folder.problem is not None:
                console.print(f"skipped {run_id}: {folder.problem}", markup=False, soft_wrap=True)
            elif folder.record is not None:
                records.append(folder.record)
        if not records:
            raise BenchError(f"{out} holds no finished run to evaluate")
        todo = [r for r in records if missing(r, names, args.force)]
        datasets = load_recorded_datasets(invocation, sorted({r.config.dataset for r in todo}), args.data_dir)
        for r in todo:
            from ..devices import resolve_device

            resolve_device(r.config.device)  # a CUDA run on a machine without that GPU: one clear line
        console.print(f"evaluating {len(todo)} of {len(records)} finished run(s) with {', '.join(names)}",
                      soft_wrap=True)
        done = evaluate_records(out, todo, names, datasets, force=args.force, on_run=lambda r, which: console.print(
            f"  {r.config.arch} seed {r.config.seed}: {', '.join(which)}", markup=False, soft_wrap=True))
        for dataset in datasets.values():
            save_examples(out, dataset, names)
        target = (invocation.get("analysis") or {}).get("target")
        write_tables(out, records, target)
    console.print(f"{done} run(s) evaluated; tables in {out}", soft_wrap=True)
    if not args.no_report:
        from .run import render_after_run

        render_after_run(out, console)
    return 0


def load_recorded_datasets(invocation: dict, names: list[str], data_dir: str | None) -> dict:
    """Each named dataset, read from where config.json says the grid read it (like ``verify``)."""
    from ..datasets import DataSearch, load_dataset
    from ..datasets.folder import FolderSource

    loaded = {}
    for name in names:
        info = (invocation.get("datasets") or {}).get(name, {})
        source = info.get("source")
        where = data_dir or (source if source and Path(source).is_dir() else None)
        folders = {name: FolderSource(**info["folder"])} if info.get("folder") else {}
        loaded[name] = load_dataset(name, DataSearch.from_cli(where, download=False, folders=folders))
    return loaded
