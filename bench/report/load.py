"""Read a finished output directory into validated tables for the report.

The report reads stored files only (never memory of a run), so a hand-edited or
truncated ``runs.csv`` must end as one clear ``BenchError`` line, not a pandas traceback.
A run whose folder is damaged or gone (``storage.check_run``) is left out of the report,
and a warning banner names it and says why; the report never moves or changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BenchError
from ..samples import load_samples
from ..schema import CONFUSION, EPOCHS, RUNS, STATUS_OK
from ..storage import RECORD_FILE, RUNS_DIR, check_run, read_invocation, read_tables

# What the report reads of a finished run; failed runs may leave them empty.
RUNS_NEEDED = ("test_acc", "best_val_acc", "test_loss", "params", "flops_per_image",
               "mean_epoch_seconds", "train_seconds", "train_images_per_s")


@dataclass
class Stored:
    """Everything the report shows, as read from one output directory."""

    out: Path
    invocation: dict[str, Any]
    runs: pd.DataFrame  # every run, failed ones included
    epochs: pd.DataFrame  # finished runs only
    confusion: pd.DataFrame  # finished runs only
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset -> samples file
    correct: dict[str, np.ndarray] = field(default_factory=dict)  # run id -> per-image test results
    # What the runs' evaluations stored (bench.evaluations): column -> run id -> per-image values,
    # and run id -> evaluation -> details (reliability bins) or error
    per_image: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def analysis(self) -> dict[str, Any]:
        """How the grid asked to be analysed (margin, target, baseline, --until-decided rounds)."""
        return self.invocation.get("analysis") or {}

    @property
    def look(self):
        """The last look of a --until-decided grid (its tests spend that look's alpha), or None."""
        plan = self.analysis.get("until_decided")
        if not plan:
            return None
        from ..until_decided import look_of

        return look_of(plan)

    @property
    def ok(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == STATUS_OK]

    @property
    def failed(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] != STATUS_OK]

    @property
    def datasets(self) -> list[str]:
        listed = list(self.invocation.get("grid", {}).get("datasets", []))
        return listed + sorted(set(self.runs["dataset"]) - set(listed))

    @property
    def archs(self) -> list[str]:
        """Grid order: the order colours are assigned in, the same in every figure."""
        listed = list(self.invocation.get("grid", {}).get("archs", []))
        return listed + sorted(set(self.runs["arch"]) - set(listed))

    def classes(self, dataset: str) -> list[str]:
        info = self.invocation.get("datasets", {}).get(dataset, {})
        if info.get("classes"):
            return [str(c) for c in info["classes"]]
        sample = self.samples.get(dataset)
        if sample and sample.get("classes"):
            return [str(c) for c in sample["classes"]]
        n = int(self.confusion["true"].max()) + 1 if len(self.confusion) else 0
        return [str(i) for i in range(n)]


def _require(frame: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BenchError(f"{path} lacks column(s) {', '.join(missing)}; it is not a cnnbench table "
                         "(was it edited by hand? re-run the benchmark to rebuild it)")


def _numeric(frame: pd.DataFrame, columns: tuple[str, ...], path: Path, rows: pd.Series | None = None) -> None:
    """Convert columns to numbers in place; a non-number where one is needed is an error."""
    for col in columns:
        converted = pd.to_numeric(frame[col], errors="coerce")
        bad = converted.isna() & frame[col].notna()
        if rows is not None:
            bad |= converted.isna() & rows
        if bad.any():
            where = frame.index[bad][0]
            raise BenchError(f"{path}: column {col!r} has a non-numeric or empty value "
                             f"{frame.at[where, col]!r} in data row {where + 1}")
        frame[col] = converted


def validate(tables: dict[str, pd.DataFrame], out: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    runs, epochs, confusion = (tables[t.file].copy() for t in (RUNS, EPOCHS, CONFUSION))
    runs_path, epochs_path, conf_path = (out / t.file for t in (RUNS, EPOCHS, CONFUSION))
    _require(runs, tuple(RUNS.required), runs_path)
    if runs.empty:
        raise BenchError(f"{runs_path} holds no runs")
    runs["status"] = runs["status"].astype(str)
    runs["arch"] = runs["arch"].astype(str)
    runs["dataset"] = runs["dataset"].astype(str)
    _numeric(runs, ("seed",), runs_path)
    ok = runs["status"] == STATUS_OK
    if ok.any():
        _require(runs, RUNS_NEEDED, runs_path)
        _numeric(runs, tuple(RUNS.numeric([c for c in runs.columns if c != "seed"])), runs_path)
        # test_acc must be present for finished runs; the costs may be NaN (not measured).
        _numeric(runs, ("test_acc",), runs_path, rows=ok)
        if ((runs.loc[ok, "test_acc"] < 0) | (runs.loc[ok, "test_acc"] > 1)).any():
            raise BenchError(f"{runs_path}: test_acc outside [0, 1]; the table is corrupt")
    runs["seed"] = runs["seed"].astype(int)
    dup = runs[ok].duplicated(["arch", "dataset", "seed"])
    if dup.any():
        row = runs[ok][dup].iloc[0]
        raise BenchError(f"{runs_path}: {row['arch']} seed {row['seed']} on {row['dataset']} appears twice")

    ok_ids = set(runs.loc[ok, "run_id"])
    if ok.any():
        _require(epochs, tuple(EPOCHS.required), epochs_path)
        _numeric(epochs, tuple(EPOCHS.numeric(list(epochs.columns))), epochs_path)
        _require(confusion, tuple(CONFUSION.required), conf_path)
        _numeric(confusion, tuple(CONFUSION.numeric(list(confusion.columns))), conf_path)
        epochs = epochs[epochs["run_id"].isin(ok_ids)].reset_index(drop=True)
        confusion = confusion[confusion["run_id"].isin(ok_ids)].reset_index(drop=True)
        for frame in (epochs, confusion):
            frame["arch"] = frame["arch"].astype(str)
            frame["dataset"] = frame["dataset"].astype(str)
    else:
        epochs = pd.DataFrame(columns=EPOCHS.names)
        confusion = pd.DataFrame(columns=CONFUSION.names)
    return runs, epochs, confusion


def unsound_runs(out: Path, runs: pd.DataFrame, correct: dict[str, np.ndarray] | None = None,
                 stored: Stored | None = None) -> dict[str, str]:
    """The runs of ``runs.csv`` whose stored folder cannot be trusted: run id -> why.

    ``correct`` is filled, on the way, with which test images each sound run got right
    (records before version 2 have none), and ``stored`` with what their evaluations stored.
    """
    problems: dict[str, str] = {}
    for run_id in runs["run_id"].astype(str):
        try:
            folder = check_run(out, run_id)
        except BenchError as exc:  # a record of a newer cnnbench: not this report's to read
            problems[run_id] = str(exc)
            continue
        if folder.problem is not None:
            problems[run_id] = folder.problem
        elif not folder.finished:
            problems[run_id] = f"its record {RUNS_DIR}/{run_id}/{RECORD_FILE} is missing"
        else:
            if correct is not None and folder.record.test_correct is not None:
                correct[run_id] = folder.record.test_correct
            if stored is not None and folder.record.evaluations:
                _keep_evaluations(stored, run_id, folder.record.evaluations)
    return problems


def _keep_evaluations(stored: Stored, run_id: str, evaluations: dict[str, Any]) -> None:
    from ..evaluations.stored import per_image_of

    for column, values in per_image_of(evaluations).items():
        stored.per_image.setdefault(column, {})[run_id] = values
    stored.evaluations[run_id] = {name: r.get("details", {}) | ({"error": r["error"]} if "error" in r else {})
                                  for name, r in evaluations.items()}


def load(out: Path) -> Stored:
    """Read and validate ``out``; any problem is one ``BenchError`` line."""
    out = Path(out)
    if not out.is_dir():
        raise BenchError(f"{out} is not a directory; give the --out folder of a benchmark run")
    invocation = read_invocation(out)
    if not isinstance(invocation, dict):
        raise BenchError(f"{out / 'config.json'} does not hold a cnnbench invocation")
    runs, epochs, confusion = validate(read_tables(out), out)
    correct: dict[str, np.ndarray] = {}
    kept = Stored(out=out, invocation={}, runs=runs, epochs=epochs, confusion=confusion)
    skipped = unsound_runs(out, runs, correct, kept)
    if skipped:
        if len(skipped) == len(runs):
            run_id, reason = next(iter(skipped.items()))
            raise BenchError(f"every run in {out / 'runs.csv'} is damaged or missing (first: {run_id}: {reason}); "
                             "rerun the grid to train them again")
        keep = ~runs["run_id"].isin(list(skipped))
        runs = runs[keep].reset_index(drop=True)
        epochs = epochs[~epochs["run_id"].isin(list(skipped))].reset_index(drop=True)
        confusion = confusion[~confusion["run_id"].isin(list(skipped))].reset_index(drop=True)
        invocation.setdefault("_warnings", []).extend(
            f"left out {run_id}: {reason}; rerun the grid to train it again" for run_id, reason in skipped.items())
    described = set((invocation.get("datasets") or {}).keys())
    unknown = sorted(set(runs["dataset"].astype(str)) - described)
    if unknown:
        raise BenchError(f"{out / 'runs.csv'} names dataset {unknown[0]!r}, which config.json does not "
                         "describe; was it edited by hand?")
    stored = Stored(out=out, invocation=invocation, runs=runs, epochs=epochs, confusion=confusion)
    for dataset in stored.datasets:
        try:
            sample = load_samples(out, dataset)
        except Exception as exc:  # a damaged samples file costs a figure, not the report
            sample = None
            stored.invocation.setdefault("_warnings", []).append(f"samples-{dataset}.pt unreadable: {exc}")
        if sample is not None:
            stored.samples[dataset] = sample
    stored.correct = correct
    stored.per_image, stored.evaluations = kept.per_image, kept.evaluations
    from ..evaluations import register_metrics

    register_metrics()  # the evaluations' compared metrics, for the statistics
    return stored
