"""One unit of work for an executor: a RunConfig plus how to find its data.

``execute`` is what every executor runs, in this process, a worker process or a Ray
task: load (or reuse) the data, train, and return a ``RunRecord``.  It never writes
files; the driver stores records, so every executor behaves the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checkpoint import CheckpointPlan, Checkpointer, CheckpointUnusable
from .config import RunConfig
from .datasets import DataSearch, Dataset, load_dataset
from .determinism import deterministic_mode, nondeterministic_op
from .environment import environment
from .errors import BenchError
from .records import RunRecord, failed_record, record_from_outcome
from .train import EpochCallback, PreparedData, prepare_data, run_threads, train_run


@dataclass(frozen=True)
class DataRequest:
    """Where a worker finds a dataset: picklable, so it can cross process boundaries."""

    data_dir: str | None = None
    download: bool = False  # the driver already downloaded whatever it could

    def search(self) -> DataSearch:
        return DataSearch.from_cli(self.data_dir, download=self.download)


@dataclass(frozen=True)
class RunTask:
    config: RunConfig
    data: DataRequest
    # Not part of the config: saving checkpoints never changes a run's result or its id.
    checkpoint: CheckpointPlan | None = None


# Per-process caches: a worker reads each dataset once and keeps one prepared copy per
# (validation fraction, device), so the runs of a process share the tensors.
_DATASETS: dict[str, Dataset] = {}
_PREPARED: dict[tuple[str, float, str], PreparedData] = {}


def provide_dataset(dataset: Dataset) -> None:
    """Hand a dataset to this process's cache (the driver, or a Ray object-store copy)."""
    _DATASETS[dataset.name] = dataset


def prepared_data(cfg: RunConfig, request: DataRequest) -> PreparedData:
    key = (cfg.dataset, cfg.val_fraction, cfg.device)
    if key not in _PREPARED:
        # A dataset this process loads itself is not kept beside its prepared copy: the
        # prepared train split is a second copy of the images (~50 MB for MNIST in every
        # worker).  Datasets handed over with provide_dataset (the driver's) stay cached.
        dataset = _DATASETS.get(cfg.dataset) or load_dataset(cfg.dataset, request.search())
        _PREPARED[key] = prepare_data(dataset, cfg.val_fraction, cfg.device)
    return _PREPARED[key]


def execute(task: RunTask, on_epoch: EpochCallback | None = None) -> RunRecord:
    """Train one run; a failure inside it becomes a ``failed`` record, not a crash."""
    cfg = task.config
    with run_threads(cfg.device):  # the thread count is part of what makes a run's bits
        return _execute(cfg, task, on_epoch)


def _execute(cfg: RunConfig, task: RunTask, on_epoch: EpochCallback | None) -> RunRecord:
    try:
        data = prepared_data(cfg, task.data)
        with deterministic_mode(cfg.deterministic) as nondeterministic:
            outcome = _train(task, data, on_epoch)
        record = record_from_outcome(cfg, outcome, data.classes, environment(cfg.device))
        if cfg.deterministic:
            record.summary["nondeterministic_ops"] = ", ".join(sorted(nondeterministic))
        return record
    except torch.OutOfMemoryError:
        _release_cuda_memory()
        return failed_record(cfg, "out of memory", environment(cfg.device))
    except BenchError as exc:
        return failed_record(cfg, str(exc), environment(cfg.device))
    except (RuntimeError, ValueError) as exc:
        # A run that crashes must not take the grid down with it; its record says why.
        op = nondeterministic_op(str(exc))  # strict mode forced on from outside (determinism.py)
        reason = f"{op} has no deterministic implementation" if op else f"{type(exc).__name__}: {exc}"
        return failed_record(cfg, reason, environment(cfg.device))


def _train(task: RunTask, data: PreparedData, on_epoch: EpochCallback | None):
    if task.checkpoint is None:
        return train_run(task.config, data, on_epoch)
    hook = Checkpointer(task.checkpoint, task.config.run_id(), task.config.device)
    try:
        return train_run(task.config, data, on_epoch, hook)
    except CheckpointUnusable:
        # A checkpoint only saves time: when it cannot be applied, train from epoch 1.
        fresh = CheckpointPlan(task.checkpoint.path, task.checkpoint.every, resume=False)
        return train_run(task.config, data, on_epoch, Checkpointer(fresh, task.config.run_id(), task.config.device))


def _release_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
