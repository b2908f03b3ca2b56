"""``export tensorboard``: each run's curves as TensorBoard scalars, one folder per run.

Curves are grouped as TensorBoard shows them (``loss/train``, ``loss/val``, ``acc/train``,
...), with the epoch as step; the test metrics are one point at the last epoch.  A run's
folder is rewritten on each export, so exporting twice shows each curve once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import BenchError
from .stored import read_runs

INSTALL_HINT = "pip install 'cnnbench[tensorboard]'"
DEFAULT_LOGDIR = "tensorboard"
EVENTS = "events.out.tfevents.*"
# epochs.csv column -> TensorBoard tag
CURVES = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "acc/train", "val_acc": "acc/val",
          "lr": "lr", "train_seconds": "seconds/train", "eval_seconds": "seconds/eval",
          "train_images_per_s": "images_per_s/train"}
FINAL = {"test_acc": "acc/test", "test_loss": "loss/test"}


@dataclass
class TensorBoardExport:
    logdir: Path
    runs: list[str]


def import_writer():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise BenchError(f"export tensorboard needs TensorBoard, which is not installed: {INSTALL_HINT}") from None
    return SummaryWriter


def export_tensorboard(out: Path, logdir: Path | None = None) -> TensorBoardExport:
    out = Path(out)
    writer_class = import_writer()
    _, runs = read_runs(out)
    logdir = Path(logdir) if logdir is not None else out / DEFAULT_LOGDIR
    for run in runs:
        folder = logdir / run.run_id
        for old in folder.glob(EVENTS):
            old.unlink()
        try:
            writer = writer_class(log_dir=str(folder))
        except OSError as exc:
            raise BenchError(f"cannot write {folder}: {exc.strerror or exc}") from None
        with warnings.catch_warnings(), writer:
            warnings.simplefilter("ignore", DeprecationWarning)
            for name, curve in run.curves.items():
                for step, value in curve:
                    writer.add_scalar(CURVES.get(name, name), value, step)
            last = max((step for curve in run.curves.values() for step, _ in curve), default=0)
            for name, tag in FINAL.items():
                if name in run.metrics:
                    writer.add_scalar(tag, run.metrics[name], last)
            writer.add_text("cnnbench/config", "  \n".join(f"{k}: {v}" for k, v in run.params.items()))
    return TensorBoardExport(logdir, [r.run_id for r in runs])
