"""What a run produced (``TrainOutcome``) and how it is stored (``RunRecord``).

One ``RunRecord`` per run, keyed by run id, written as ``runs/<run_id>/record.json``.  The
tables are always rebuilt from records; their columns are declared in ``bench.schema``.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from architectures import get_spec

from .config import RunConfig
from .errors import BenchError
from .evaluations.stored import check_stored, values_of
from .learning import record_learning
from .schema import EPOCHS, RECORD_VERSION, RUNS, STATUS_DIVERGED, STATUS_FAILED, STATUS_OK, SUMMARY, Table

__all__ = ["STATUS_DIVERGED", "STATUS_FAILED", "STATUS_OK", "EvalResult", "RunRecord", "TrainOutcome",
           "failed_record", "record_from_outcome"]


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    confusion: np.ndarray  # (C, C) int64, rows = true class, columns = predicted
    probabilities: torch.Tensor | None = None  # (N, C) on CPU when asked for
    correct: np.ndarray | None = None  # (N,) bool: which images were classified right, when asked for


@dataclass
class TrainOutcome:
    """What one training run produced, before it is stored."""

    status: str  # "ok" or "diverged"
    epochs: list[dict[str, float]]
    memory_format: str
    params: int
    flops_per_image: int
    total_seconds: float
    step_mode: str = "eager"
    seed_group: int = 1  # runs trained together with this one, itself included
    stacked_with: str = ""  # a stacked run: the seeds of its stack part ("0,1,2,3"), which fix its bits
    tested_weights: str = ""
    best_epoch: int = 0
    diverged_epoch: int = 0
    test: EvalResult | None = None
    state_dict: dict[str, torch.Tensor] | None = None
    misclassified: dict[str, torch.Tensor] | None = None


@dataclass
class RunRecord:
    """Everything stored about one run, except its tensors (weights, misclassified)."""

    run_id: str
    config: RunConfig
    status: str
    error: str = ""
    arch: dict[str, Any] = field(default_factory=dict)  # family, factors, digest, params, flops
    summary: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, float]] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    test_correct: np.ndarray | None = None  # (N,) bool, test images in order; None before version 2
    # bench.evaluations' results by evaluation, as stored (bench.evaluations.stored); not part of the
    # run's identity: ``python -m bench evaluate`` adds them to a finished run.
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Tensors travel with the record from a worker to the driver, which stores them in
    # their own files; they are not part of the JSON.
    state_dict: dict[str, torch.Tensor] | None = None
    misclassified: dict[str, torch.Tensor] | None = None

    # -- JSON ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "run_id": self.run_id,
            "config": self.config.to_dict(),
            "status": self.status,
            "error": self.error,
            "arch": self.arch,
            "summary": self.summary,
            "epochs": self.epochs,
            "confusion": self.confusion,
            "classes": self.classes,
            "env": self.env,
            "test_correct": pack_bits(self.test_correct) if self.test_correct is not None else None,
            "evaluations": self.evaluations,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        version = data.get("version")
        if not isinstance(version, int):
            raise ValueError(f"record has no version: {version!r}")  # damaged, not ours
        if version > RECORD_VERSION:
            raise BenchError(f"record of {data.get('run_id', '?')} has version {version!r}; this cnnbench "
                             f"reads versions up to {RECORD_VERSION} (is it from a newer cnnbench?)")
        return cls(
            run_id=data["run_id"],
            config=RunConfig.from_dict(data["config"]),
            status=data["status"],
            error=data.get("error", ""),
            arch=data.get("arch", {}),
            summary=data.get("summary", {}),
            epochs=data.get("epochs", []),
            confusion=data.get("confusion", []),
            classes=data.get("classes", []),
            env=data.get("env", {}),
            test_correct=unpack_bits(data["test_correct"]) if data.get("test_correct") else None,
            evaluations=_checked_evaluations(data.get("evaluations") or {}),
        )

    # -- table rows (bench.schema) ------------------------------------------------------
    def keys(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "arch": self.config.arch,
                "dataset": self.config.dataset, "seed": self.config.seed}

    def runs_row(self) -> dict[str, Any]:
        values: dict[str, Any] = {"run_id": self.run_id, **self.config.to_dict(),
                                  "status": self.status, "error": self.error,
                                  "family": self.arch.get("family", ""),
                                  "params": self.arch.get("params"),
                                  "flops_per_image": self.arch.get("flops_per_image"),
                                  "arch_digest": self.arch.get("digest", "")}
        values.update({f"factor_{factor}": level for factor, level in sorted(self.arch.get("factors", {}).items())})
        values.update(self.summary)
        values["learning"] = record_learning(self)
        matrix = np.asarray(self.confusion, dtype=np.int64)
        if matrix.size:
            totals = matrix.sum(1)
            accuracy = np.divide(np.diag(matrix), totals, where=totals > 0, out=np.full(len(totals), math.nan))
            values.update({f"class_acc_{i}": float(acc) for i, acc in enumerate(accuracy)})
        values.update(self.env)
        # An evaluation this process has not registered (one defined elsewhere) stays in the record only.
        values.update({k: v for k, v in values_of(self.evaluations).items() if RUNS.column(k) is not None})
        return _in_schema_order(values, RUNS)

    def epoch_rows(self) -> list[dict[str, Any]]:
        keys = self.keys()
        metrics = EPOCHS.names[len(keys):]
        return [{**keys, **{c: e.get(c, math.nan) for c in metrics}} for e in self.epochs]

    def confusion_rows(self) -> list[dict[str, Any]]:
        keys = self.keys()
        return [
            {**keys, "true": t, "predicted": p, "count": int(c)}
            for t, row in enumerate(self.confusion)
            for p, c in enumerate(row)
        ]


def _checked_evaluations(evaluations: Any) -> dict[str, dict[str, Any]]:
    check_stored(evaluations)  # a damaged one makes the record damaged (ValueError)
    return evaluations


def pack_bits(correct: np.ndarray) -> dict[str, Any]:
    """Per-image booleans as JSON: their count and base64 of the bits (10,000 images: 1.25 KB)."""
    bits = np.packbits(np.asarray(correct, dtype=bool), bitorder="little")
    return {"images": int(len(correct)), "bits": base64.b64encode(bits.tobytes()).decode("ascii")}


def unpack_bits(packed: dict[str, Any]) -> np.ndarray:
    """The inverse of ``pack_bits``; a wrong length is a damaged record."""
    n = int(packed["images"])
    raw = np.frombuffer(base64.b64decode(packed["bits"], validate=True), dtype=np.uint8)
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"test_correct holds {len(raw)} bytes for {n} images")
    return np.unpackbits(raw, count=n, bitorder="little").astype(bool)


def _in_schema_order(values: dict[str, Any], table: Table) -> dict[str, Any]:
    """``values`` ordered as ``table`` declares them; a column it does not declare is a bug."""
    unknown = [name for name in values if table.column(name) is None]
    assert not unknown, f"columns missing from bench.schema: {unknown}"
    ordered: dict[str, Any] = {}
    for column in table.columns:
        if column.pattern is None:
            if column.name in values:
                ordered[column.name] = values[column.name]
        else:
            ordered.update((k, v) for k, v in values.items() if column.pattern.match(k))
    return ordered


def arch_info(cfg: RunConfig, params: int | None = None, flops: int | None = None) -> dict[str, Any]:
    spec = get_spec(cfg.arch)
    return {
        "family": spec.family,
        "factors": dict(spec.factors),
        "tags": sorted(spec.tags),
        "digest": spec.digest,
        "params": params,
        "flops_per_image": flops,
    }


def record_from_outcome(
    cfg: RunConfig, outcome: TrainOutcome, classes: tuple[str, ...], env: dict[str, Any]
) -> RunRecord:
    epochs = outcome.epochs
    train_seconds = [e["train_seconds"] for e in epochs]
    total_images = sum(e["train_seconds"] * e["train_images_per_s"] for e in epochs)
    last = epochs[-1] if epochs else {}
    best = epochs[outcome.best_epoch - 1] if outcome.best_epoch else {}
    summary = {
        "tested_weights": outcome.tested_weights,
        "best_epoch": outcome.best_epoch,
        "best_val_acc": best.get("val_acc", math.nan),
        "best_val_loss": best.get("val_loss", math.nan),
        "final_train_loss": last.get("train_loss", math.nan),
        "final_train_acc": last.get("train_acc", math.nan),
        "final_val_loss": last.get("val_loss", math.nan),
        "final_val_acc": last.get("val_acc", math.nan),
        "test_loss": outcome.test.loss if outcome.test else math.nan,
        "test_acc": outcome.test.accuracy if outcome.test else math.nan,
        "diverged_epoch": outcome.diverged_epoch,
        "epochs_run": len(epochs),
        "total_seconds": outcome.total_seconds,
        "train_seconds": sum(train_seconds),
        "mean_epoch_seconds": float(np.mean(train_seconds)) if train_seconds else math.nan,
        "train_images_per_s": total_images / sum(train_seconds) if train_seconds else math.nan,
        "memory_format": outcome.memory_format,
        "step_mode": outcome.step_mode,
        "seed_group": outcome.seed_group,
        "stacked_with": outcome.stacked_with,
    }
    assert tuple(summary) == SUMMARY, "bench.schema.SUMMARY and the summary written must agree"
    error = f"loss became non-finite in epoch {outcome.diverged_epoch}" if outcome.status == STATUS_DIVERGED else ""
    return RunRecord(
        run_id=cfg.run_id(),
        config=cfg,
        status=outcome.status,
        error=error,
        arch=arch_info(cfg, outcome.params, outcome.flops_per_image),
        summary=summary,
        epochs=epochs,
        confusion=outcome.test.confusion.tolist() if outcome.test else [],
        classes=list(classes),
        env=env,
        test_correct=outcome.test.correct if outcome.test else None,
        state_dict=outcome.state_dict,
        misclassified=outcome.misclassified,
    )


def failed_record(cfg: RunConfig, error: str, env: dict[str, Any] | None = None) -> RunRecord:
    """The record of a run that could not finish (out of memory, a crash in a worker)."""
    return RunRecord(
        run_id=cfg.run_id(), config=cfg, status=STATUS_FAILED, error=error,
        arch=arch_info(cfg), env=env or {},
    )

