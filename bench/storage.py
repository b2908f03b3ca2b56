"""Everything cnnbench writes to an output directory, written atomically.

Layout of an output directory::

    config.json              the invocation: grid, dataset, environment, timings
    runs.csv epochs.csv confusion.csv
                             tables rebuilt from the records of this invocation's grid
    samples-<dataset>.pt     a few training images and a fixed test image, for the report
    runs/<run_id>/record.json        one finished run (its presence means "finished")
    runs/<run_id>/weights.pt         the state_dict the run was tested with
    runs/<run_id>/misclassified.pt   its most confidently wrong test images
    runs/.damaged/<run_id>-<time>/   a run folder found damaged, moved aside (check_run)
    .lock                    held while a run command writes here (bench.lock)
    report.html figures/*.png

A file is written to a temporary name in its own directory, flushed and fsynced, then
renamed over the target: a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .errors import BenchError
from .records import RunRecord
from .schema import CONFUSION, EPOCHS, RECORD_VERSION, RUNS, STATUS_OK, STATUSES, TABLES

RUNS_DIR = "runs"
RECORD_FILE = "record.json"
WEIGHTS_FILE = "weights.pt"
MISCLASSIFIED_FILE = "misclassified.pt"
INVOCATION_FILE = "config.json"
TMP_PREFIX = ".tmp-"
DAMAGED_DIR = ".damaged"  # under runs/; hidden, so no glob of runs/* mistakes it for a run


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide reports from others
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        # Includes KeyboardInterrupt: never leave a temporary file behind.
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            # A full disk or a vanished directory: the target keeps its old content.
            raise BenchError(
                f"cannot write {path}: {exc.strerror or exc}; "
                "results stored before are intact, rerun the same command to resume"
            ) from None
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prepare_output_dir(out: Path) -> Path:
    """Create ``out`` (and its runs/ folder) or explain in one line why it cannot be."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BenchError(f"output path {out} exists and is not a directory")
    try:
        (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK) or not os.access(out / RUNS_DIR, os.W_OK):
        raise BenchError(f"output directory {out} is not writable")
    return out


def run_dir(out: Path, run_id: str) -> Path:
    return Path(out) / RUNS_DIR / run_id


def save_record(out: Path, record: RunRecord) -> None:
    """Store one finished run: tensors first, the record last (it marks completion)."""
    folder = run_dir(out, record.run_id)
    if record.state_dict is not None:
        atomic_torch_save(folder / WEIGHTS_FILE, record.state_dict)
    if record.misclassified is not None:
        atomic_torch_save(folder / MISCLASSIFIED_FILE, record.misclassified)
    atomic_write_json(folder / RECORD_FILE, record.to_json())


@dataclass(frozen=True)
class RunFolder:
    """What ``runs/<run_id>/`` holds: a sound record, nothing yet, or the reason it is damaged."""

    record: RunRecord | None
    problem: str | None = None  # set when the folder holds a record that cannot be trusted

    @property
    def finished(self) -> bool:
        return self.record is not None


def check_run(out: Path, run_id: str) -> RunFolder:
    """Check a run's folder: a parseable record of a known version, named for its folder,
    with its weights when it finished ``ok``.

    No record at all is not damage (the run has not finished).  A record written by a newer
    cnnbench is not damage either: it raises ``BenchError`` rather than be moved or retrained.
    """
    folder = run_dir(out, run_id)
    try:
        text = (folder / RECORD_FILE).read_bytes().decode()
    except FileNotFoundError:
        return RunFolder(None)
    except (OSError, UnicodeDecodeError) as exc:
        return RunFolder(None, f"record.json cannot be read ({getattr(exc, 'strerror', None) or exc})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return RunFolder(None, "record.json is truncated or not JSON")
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, int) or version < 1:
        return RunFolder(None, "record.json is not a cnnbench record (no version)")
    if version > RECORD_VERSION:
        raise BenchError(f"{folder / RECORD_FILE} has record version {version}; this cnnbench reads "
                         f"versions up to {RECORD_VERSION} (is it from a newer cnnbench?)")
    try:
        record = RunRecord.from_json(data)
    except (BenchError, KeyError, TypeError, ValueError, AttributeError) as exc:
        return RunFolder(None, f"record.json is not a cnnbench record ({type(exc).__name__}: {exc})")
    if record.run_id != run_id:
        return RunFolder(None, f"record.json names run {record.run_id}, not its folder's")
    if record.status not in STATUSES:
        return RunFolder(None, f"record.json has an unknown status {record.status!r}")
    if record.status == STATUS_OK:
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            return RunFolder(None, "weights.pt is missing")
        if not zipfile.is_zipfile(weights):  # torch.save writes a zip; a truncated one lacks its end
            return RunFolder(None, "weights.pt is truncated or not a torch file")
    return RunFolder(record)


def load_record(out: Path, run_id: str) -> RunRecord | None:
    """The stored record of ``run_id``, or None if that run has not finished (or is damaged)."""
    return check_run(out, run_id).record


def move_aside(out: Path, run_id: str) -> Path:
    """Move a damaged run folder to ``runs/.damaged/<run_id>-<UTC time>/`` (kept, never deleted)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    damaged = Path(out) / RUNS_DIR / DAMAGED_DIR
    target = damaged / f"{run_id}-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = damaged / f"{run_id}-{stamp}-{n}"
    try:
        damaged.mkdir(parents=True, exist_ok=True)
        os.replace(run_dir(out, run_id), target)
    except OSError as exc:
        raise BenchError(f"cannot move the damaged run folder {run_dir(out, run_id)} aside: "
                         f"{exc.strerror or exc}") from None
    _fsync_dir(damaged.parent)
    return target


def load_weights(out: Path, run_id: str) -> dict[str, torch.Tensor]:
    path = run_dir(out, run_id) / WEIGHTS_FILE
    if not path.is_file():
        raise BenchError(f"no saved weights for run {run_id} in {path.parent}")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_misclassified(out: Path, run_id: str) -> dict[str, torch.Tensor] | None:
    path = run_dir(out, run_id) / MISCLASSIFIED_FILE
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def tables_from_records(records: Iterable[RunRecord]) -> dict[str, pd.DataFrame]:
    """The three tables of ``records`` (``write_tables`` adds the time-to-target columns)."""
    records = list(records)
    runs = pd.DataFrame([r.runs_row() for r in records])
    # Explicit columns: a grid whose runs all failed or diverged still gets readable
    # (header-only) epochs/confusion tables, not an empty file that no reader can parse.
    epochs = pd.DataFrame([row for r in records for row in r.epoch_rows()], columns=EPOCHS.names)
    confusion = pd.DataFrame([row for r in records for row in r.confusion_rows()], columns=CONFUSION.names)
    return {RUNS.file: runs, EPOCHS.file: epochs, CONFUSION.file: confusion}


def _with_time_to_target(runs: pd.DataFrame, epochs: pd.DataFrame, targets: dict[str, float]) -> pd.DataFrame:
    from .stats.target import time_to_target

    found = pd.concat([time_to_target(epochs[epochs["dataset"] == d], t) for d, t in targets.items()
                       if (epochs["dataset"] == d).any()], ignore_index=True)
    columns = ["epochs_to_target", "seconds_to_target"]
    runs = runs.merge(found.set_index("run_id")[columns], left_on="run_id", right_index=True, how="left")
    ordered = [c for c in runs.columns if c not in columns]
    before = [c.name for c in RUNS.columns[:[c.name for c in RUNS.columns].index(columns[0])]]
    at = max((ordered.index(c) + 1 for c in before if c in ordered), default=len(ordered))
    return runs[ordered[:at] + columns + ordered[at:]]


def write_tables(out: Path, records: Iterable[RunRecord], target: float | None = None) -> dict[str, pd.DataFrame]:
    """Write the three tables, the runs' with their time to ``target`` validation accuracy
    (default, per dataset: the lowest of the architectures' mean final validation accuracies)."""
    from .stats.target import default_target

    tables = tables_from_records(records)
    epochs = tables[EPOCHS.file]
    targets = {d: default_target(group) if target is None else target
               for d, group in epochs.groupby("dataset") if target is not None or group["val_acc"].notna().any()}
    if targets:
        tables[RUNS.file] = _with_time_to_target(tables[RUNS.file], epochs, targets)
    for name, frame in tables.items():
        atomic_write_text(Path(out) / name, frame.to_csv(index=False))
    return tables


def read_tables(out: Path) -> dict[str, pd.DataFrame]:
    """Read the three tables back; a missing or unparsable one is a one-line error."""
    tables = {}
    for table in TABLES:
        name = table.file
        path = Path(out) / name
        if not path.is_file():
            raise BenchError(f"{path} not found; is {out} a cnnbench output directory?")
        try:
            tables[name] = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise BenchError(f"{path} cannot be read as a table: {str(exc).splitlines()[0]}") from None
        missing = [c for c in table.required if c not in tables[name].columns]
        if missing:
            raise BenchError(f"{path} is not a cnnbench table (no column {', '.join(missing)}); "
                             "was it edited by hand? rerun the grid to rebuild it")
    return tables


def write_invocation(out: Path, data: dict[str, Any]) -> None:
    atomic_write_json(Path(out) / INVOCATION_FILE, data)


def read_invocation(out: Path) -> dict[str, Any]:
    path = Path(out) / INVOCATION_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"{path} not found; is {out} a cnnbench output directory?") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path} is not valid JSON: {exc}") from None


def leftover_temporaries(out: Path) -> list[Path]:
    return sorted(Path(out).rglob(f"{TMP_PREFIX}*"))


def remove_temporaries(folder: Path) -> None:
    """Delete the temporary files a killed writer left in ``folder`` and below (SIGKILL skips
    ``atomic_write_bytes``'s cleanup).  Only for a folder no live process writes to: a run's
    folder once its record is stored, or ``--out`` while this process holds its lock."""
    for path in leftover_temporaries(folder):
        try:
            path.unlink()
        except OSError:
            pass  # gone already, or not ours to remove: it never stands for a result


CHECKPOINT_FILE = "checkpoint.pt"


def checkpoint_path(out: Path, run_id: str) -> Path:
    """Where a run in progress keeps its ``--checkpoint-every`` state (see checkpoint.py)."""
    return run_dir(out, run_id) / CHECKPOINT_FILE


def remove_checkpoint(out: Path, run_id: str) -> None:
    """Drop a run's checkpoint once its record is stored: the record supersedes it."""
    checkpoint_path(out, run_id).unlink(missing_ok=True)
