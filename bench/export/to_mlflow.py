"""``export mlflow``: one MLflow run per cnnbench run, in one experiment per grid.

Each run gets its config as params, its per-epoch metrics with the epoch as step, its final
metrics, and its confusion matrix and the grid's report as artifacts; the tag
``cnnbench.run_id`` makes a second export skip what the first one logged.  Without a
tracking URI the store is a SQLite file in the output directory, so nothing needs to run.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import BenchError
from .stored import TAG_PREFIX, StoredRun, grid_name, read_runs

INSTALL_HINT = "pip install 'cnnbench[mlflow]'"
LOCAL_STORE = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
REPORT = "report.html"
RUN_ID_TAG = f"{TAG_PREFIX}run_id"
BATCH_METRICS = 1000  # MLflow's limits per log_batch call
BATCH_PARAMS = 100
MAX_EXPERIMENT_NAME = 250
STATUS = {"ok": "FINISHED", "diverged": "FINISHED", "failed": "FAILED"}


@dataclass
class MlflowExport:
    tracking_uri: str
    experiment: str
    experiment_id: str
    logged: list[str]
    skipped: list[str]


def import_mlflow():
    try:
        with _quiet():
            import mlflow  # noqa: F401
            from mlflow.tracking import MlflowClient
    except ImportError:
        raise BenchError(f"export mlflow needs MLflow, which is not installed: {INSTALL_HINT}") from None
    return MlflowClient


def default_tracking_uri(out: Path) -> str:
    """$MLFLOW_TRACKING_URI, else a SQLite store in ``out`` (MLflow's own local default is a
    SQLite file in the current directory; beside the results is where it belongs)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(out).resolve() / LOCAL_STORE)}"


def export_mlflow(out: Path, tracking_uri: str | None = None, experiment: str | None = None) -> MlflowExport:
    out = Path(out)
    client_class = import_mlflow()
    invocation, runs = read_runs(out)
    uri = tracking_uri or default_tracking_uri(out)
    name = experiment or _experiment_name(grid_name(invocation, runs))
    with _quiet():
        try:
            client = client_class(tracking_uri=uri)
            experiment_id = _experiment(client, name, _local_artifacts(uri))
            done = _exported(client, experiment_id)
        except Exception as exc:  # noqa: BLE001 - an unreachable or unusable store: one line
            raise BenchError(f"cannot use the MLflow store {uri}: {_first_line(exc)}") from None
        started = _millis(invocation.get("started_at"))
        logged, skipped = [], []
        for run in runs:
            if run.run_id in done:
                skipped.append(run.run_id)
                continue
            _log_run(client, experiment_id, run, out, started)
            logged.append(run.run_id)
    return MlflowExport(uri, name, experiment_id, logged, skipped)


def _experiment_name(name: str) -> str:
    if len(name) <= MAX_EXPERIMENT_NAME:
        return name
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_EXPERIMENT_NAME - 12]}... {digest}"


def _local_artifacts(uri: str) -> str | None:
    """For a SQLite store, a folder beside its file: MLflow's default is ./mlruns in whatever
    directory the export happens to run from.  None for a server, which decides itself."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / LOCAL_ARTIFACTS).as_uri()


def _experiment(client, name: str, artifacts: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifacts, tags={f"{TAG_PREFIX}grid": name})


def _exported(client, experiment_id: str) -> set[str]:
    """cnnbench run ids already in the experiment (any status)."""
    done: set[str] = set()
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        done |= {r.data.tags[RUN_ID_TAG] for r in page if RUN_ID_TAG in r.data.tags}
        token = page.token
        if not token:
            return done


def _log_run(client, experiment_id: str, run: StoredRun, out: Path, started: int | None) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    created = client.create_run(experiment_id, start_time=started or now, run_name=run.title,
                                tags={**run.tags, "mlflow.runName": run.title})
    run_id = created.info.run_id
    stamp = started or now
    metrics = [Metric(k, v, stamp, 0) for k, v in run.metrics.items()]
    metrics += [Metric(k, v, stamp, step) for k, curve in run.curves.items() for step, v in curve]
    params = [Param(k, v) for k, v in run.params.items()]
    for i in range(0, len(params), BATCH_PARAMS):
        client.log_batch(run_id, params=params[i:i + BATCH_PARAMS])
    for i in range(0, len(metrics), BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[i:i + BATCH_METRICS])
    with tempfile.TemporaryDirectory(prefix="cnnbench-mlflow-") as scratch:
        if run.confusion:
            client.log_artifact(run_id, str(_confusion_csv(run, Path(scratch))))
        if (out / REPORT).is_file():
            client.log_artifact(run_id, str(out / REPORT))
    client.set_terminated(run_id, STATUS.get(run.status, "FINISHED"))


def _confusion_csv(run: StoredRun, folder: Path) -> Path:
    """The test confusion matrix with class names: rows true, columns predicted."""
    names = [run.classes[i] if i < len(run.classes) else str(i) for i in range(len(run.confusion))]
    path = folder / "confusion_matrix.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["true \\ predicted", *names])
        writer.writerows([name, *row] for name, row in zip(names, run.confusion))
    return path


def _millis(iso: object) -> int | None:
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's (and SQLAlchemy's) deprecation notices and INFO lines are not the user's
    business: the export prints its own summary."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
