"""export mlflow / export tensorboard: read back with the trackers' own readers."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from bench.storage import read_tables

# MLflow's SQLite store runs on SQLAlchemy, whose 2.1 release deprecates a loader MLflow uses:
# its notices are MLflow's business (the exporter hides them from users too).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def results(digits_run, tmp_path) -> Path:
    """A copy of the small finished digits grid (2 architectures x 2 seeds x 2 epochs), with a report."""
    out = tmp_path / "results"
    shutil.copytree(digits_run, out)
    (out / "report.html").write_text("<html>the grid's report</html>")
    return out


def test_mlflow_export_reads_back_and_a_second_export_adds_nothing(results, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert run_cli("export", "mlflow", str(results)) == 0
    text = capsys.readouterr().out
    uri = f"sqlite:///{results.resolve() / 'mlflow.db'}"
    assert "4 run(s) logged, 0 already there" in text and uri in text
    assert list(cwd.iterdir()) == []  # the default store lives beside the results

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cnnbench: lenet, dilated on digits")
    found = client.search_runs([experiment.experiment_id])
    tables = read_tables(results)
    runs, epochs = tables["runs.csv"], tables["epochs.csv"]
    assert sorted(r.data.tags["cnnbench.run_id"] for r in found) == sorted(runs["run_id"])
    for mlrun in found:
        row = runs[runs["run_id"] == mlrun.data.tags["cnnbench.run_id"]].iloc[0]
        assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == f"{row['arch']} seed {row['seed']}"
        params = mlrun.data.params
        assert (params["arch"], params["seed"], params["lr"], params["epochs"]) == \
            (row["arch"], str(row["seed"]), str(row["lr"]), str(row["epochs"]))
        assert mlrun.data.metrics["test_acc"] == row["test_acc"]
        assert mlrun.data.metrics["total_train_seconds"] == row["train_seconds"]
        curve = epochs[epochs["run_id"] == row["run_id"]].sort_values("epoch")
        history = sorted(client.get_metric_history(mlrun.info.run_id, "val_acc"), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == list(zip(curve["epoch"], curve["val_acc"]))
        artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
        assert artifacts == {"confusion_matrix.csv", "report.html"}
        local = Path(client.download_artifacts(mlrun.info.run_id, "confusion_matrix.csv", str(tmp_path)))
        header, *rows = local.read_text().splitlines()
        assert header.split(",")[1:] == [str(i) for i in range(10)] and len(rows) == 10
        assert sum(int(c) for r in rows for c in r.split(",")[1:]) == 360  # every digits test image

    assert run_cli("export", "mlflow", str(results)) == 0
    assert "0 run(s) logged, 4 already there" in capsys.readouterr().out
    assert len(client.search_runs([experiment.experiment_id])) == 4


def test_mlflow_export_to_a_given_uri_and_experiment(results, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    uri = f"sqlite:///{tmp_path / 'store' / 'elsewhere.db'}"
    (tmp_path / "store").mkdir()
    assert run_cli("export", "mlflow", str(results), "--tracking-uri", uri, "--experiment", "mine") == 0
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mine")
    assert len(client.search_runs([experiment.experiment_id])) == 4
    assert not (results / "mlflow.db").exists()
    # A SQLite store keeps its artifacts beside its file, never in the current directory.
    assert experiment.artifact_location == (tmp_path / "store" / "mlartifacts").as_uri()
    assert list(cwd.iterdir()) == []


def test_tensorboard_export_reads_back_and_rewrites(results, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    epochs = read_tables(results)["epochs.csv"]
    for _ in range(2):  # the second export rewrites: each curve once
        assert run_cli("export", "tensorboard", str(results)) == 0
    assert "4 run(s) written" in capsys.readouterr().out
    folders = sorted((results / "tensorboard").iterdir())
    assert [f.name for f in folders] == sorted(epochs["run_id"].unique())
    for folder in folders:
        events = EventAccumulator(str(folder)).Reload()
        curve = epochs[epochs["run_id"] == folder.name].sort_values("epoch")
        train_loss = events.Scalars("loss/train")
        assert [e.step for e in train_loss] == list(curve["epoch"])
        assert [e.value for e in train_loss] == pytest.approx(list(curve["train_loss"]), rel=1e-6)
        assert len(events.Scalars("acc/test")) == 1


@pytest.mark.parametrize(("tracker", "module", "hint"), [
    ("mlflow", "mlflow", "export mlflow needs MLflow, which is not installed: pip install 'cnnbench[mlflow]'"),
    ("tensorboard", "torch.utils.tensorboard",
     "export tensorboard needs TensorBoard, which is not installed: pip install 'cnnbench[tensorboard]'"),
])
def test_without_the_tracker_one_line_says_what_to_install(tracker, module, hint, results, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)  # what an absent package looks like to import
    assert run_cli("export", tracker, str(results)) == 2
    assert capsys.readouterr().err.strip() == f"error: {hint}"


def test_exporting_what_is_not_an_output_directory_is_one_line(tmp_path, capsys):
    pytest.importorskip("mlflow")
    assert run_cli("export", "mlflow", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "config.json not found" in err and len(err.splitlines()) == 1
