"""One unit of work for an executor: a RunConfig plus how to find its data.

``execute`` is what every executor runs, in this process, a worker process or a Ray
task: load (or reuse) the data, train, and return a ``RunRecord``.  It never writes
files; the driver stores records, so every executor behaves the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .checkpoint import Checkpointer, CheckpointPlan, CheckpointUnusable
from .config import RunConfig
from .datasets import DataSearch, load_dataset
from .datasets.prepared import PreparedData, prepare_data
from .datasets.tensors import Dataset
from .determinism import deterministic_mode, nondeterministic_op
from .environment import environment
from .drivers.seed_group import train_group
from .errors import BenchError
from .records import STATUS_OK, RunRecord, TrainOutcome, failed_record, record_from_outcome
from .train import EpochCallback, run_policy, train_run


@dataclass(frozen=True)
class DataRequest:
    """Where a worker finds a dataset: picklable, so it can cross process boundaries."""

    data_dir: str | None = None
    download: bool = False  # the driver already downloaded whatever it could
    folders: tuple = ()  # (name, bench.datasets.folder.FolderSource) of each folder:PATH dataset

    def search(self) -> DataSearch:
        return DataSearch.from_cli(self.data_dir, download=self.download, folders=dict(self.folders))


@dataclass(frozen=True)
class RunTask:
    config: RunConfig
    data: DataRequest
    # Not part of the config: saving checkpoints never changes a run's result or its id.
    checkpoint: CheckpointPlan | None = None
    # Evaluations of the tested weights (bench.evaluations), not part of the run's identity either.
    evaluations: tuple[str, ...] = ()


# Per-process caches: a worker reads each dataset once and keeps one prepared copy per
# (validation fraction, device), so the runs of a process share the tensors.
_DATASETS: dict[str, Dataset] = {}
_PREPARED: dict[tuple[str, float, str], PreparedData] = {}


def provide_dataset(dataset: Dataset) -> None:
    """Hand a dataset to this process's cache (the driver, or a Ray object-store copy)."""
    _DATASETS[dataset.name] = dataset


def provided_dataset(name: str) -> Dataset | None:
    """The dataset this process was handed under ``name``, if any."""
    return _DATASETS.get(name)


def prepared_data(cfg: RunConfig, request: DataRequest) -> PreparedData:
    key = (cfg.dataset, cfg.val_fraction, cfg.device)
    if key not in _PREPARED:
        # A dataset this process loads itself is not kept beside its prepared copy: the
        # prepared train split is a second copy of the images (~50 MB for MNIST in every
        # worker).  Datasets handed over with provide_dataset (the driver's) stay cached.
        dataset = _DATASETS.get(cfg.dataset) or load_dataset(cfg.dataset, request.search())
        _PREPARED[key] = prepare_data(dataset, cfg.val_fraction, cfg.device)
    return _PREPARED[key]


@dataclass(frozen=True)
class SeedGroupTask:
    """Runs that differ only in seed, trained together by one worker: a seed group, or a stack
    when they are stacked (``bench.drivers``; ``bench.planner`` packs them)."""

    tasks: tuple[RunTask, ...]


WorkUnit = RunTask | SeedGroupTask


def execute_unit(unit: WorkUnit, on_epoch: EpochCallback | None = None) -> list[RunRecord]:
    """The records of one run, or of every run of a seed group."""
    if isinstance(unit, SeedGroupTask):
        return execute_group(unit, on_epoch)
    return [execute(unit, on_epoch)]


def execute(task: RunTask, on_epoch: EpochCallback | None = None) -> RunRecord:
    """Train one run; a failure inside it becomes a ``failed`` record, not a crash."""
    return _execute([task], lambda data: [_train(task, data, on_epoch)])[0]


def execute_group(group: SeedGroupTask, on_epoch: EpochCallback | None = None) -> list[RunRecord]:
    """Train a seed group together; a failure fails each of its runs (each is retried later)."""
    tasks = list(group.tasks)

    def train(data: PreparedData) -> list[TrainOutcome]:
        if tasks[0].config.stacked:
            from .drivers.stacked_training import train_stack

            return train_stack([t.config for t in tasks], data, on_epoch, [t.checkpoint for t in tasks])
        checkpoints = [Checkpointer(t.checkpoint, t.config.run_id(), t.config.device) if t.checkpoint else None
                       for t in tasks]
        return train_group([t.config for t in tasks], data, on_epoch, checkpoints)

    return _execute(tasks, train)


def _execute(tasks: list[RunTask], train: Callable[[PreparedData], list[TrainOutcome]]) -> list[RunRecord]:
    cfg = tasks[0].config  # a group's runs share all but the seed
    try:
        data = prepared_data(cfg, tasks[0].data)
        with run_policy(cfg).threads(), deterministic_mode(cfg.deterministic) as nondeterministic:
            outcomes = train(data)
            env = environment(cfg.device)  # the thread count the runs trained with
            evaluated = [evaluate_outcome(t, outcome, data) for t, outcome in zip(tasks, outcomes, strict=True)]
        records = [record_from_outcome(t.config, outcome, data.classes, env)
                   for t, outcome in zip(tasks, outcomes, strict=True)]
        for record, results in zip(records, evaluated):
            record.evaluations = results
        if cfg.deterministic:
            for record in records:
                record.summary["nondeterministic_ops"] = ", ".join(sorted(nondeterministic))
        return records
    except torch.OutOfMemoryError:
        _release_cuda_memory()
        return _failed(tasks, "out of memory")
    except BenchError as exc:
        return _failed(tasks, str(exc))
    except (RuntimeError, ValueError) as exc:
        # A run that crashes must not take the grid down with it; its record says why.
        op = nondeterministic_op(str(exc))  # strict mode forced on from outside (determinism.py)
        reason = f"{op} has no deterministic implementation" if op else f"{type(exc).__name__}: {exc}"
        return _failed(tasks, reason)


def evaluate_outcome(task: RunTask, outcome: TrainOutcome, data: PreparedData) -> dict:
    """The task's evaluations of the weights the test set evaluated (none for a diverged run)."""
    if not task.evaluations or outcome.status != STATUS_OK or outcome.state_dict is None:
        return {}
    from .evaluations.subject import eval_set, load_subject, run_evaluations

    subject = load_subject(task.config, outcome.state_dict, data)
    return run_evaluations(task.evaluations, subject, eval_set(data.name, data.test.images, data.test.labels,
                                                               data.classes))


def _failed(tasks: list[RunTask], reason: str) -> list[RunRecord]:
    return [failed_record(t.config, reason, environment(t.config.device)) for t in tasks]


def _train(task: RunTask, data: PreparedData, on_epoch: EpochCallback | None):
    if task.config.stacked:  # a stack of one: stacked arithmetic
        from .drivers.stacked_training import train_stack

        return train_stack([task.config], data, on_epoch, [task.checkpoint])[0]
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
