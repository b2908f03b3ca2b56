"""Mid-run checkpoints: an interrupted long run resumes mid-way.

By default a run saves whenever about a minute of training would otherwise be at risk
(``DEFAULT_CHECKPOINT_SECONDS``); ``--checkpoint-every N`` saves each N epochs instead,
and ``--checkpoint-every 0`` never.  A save writes everything the next epoch depends on
to ``runs/<run_id>/checkpoint.pt`` (atomically): model, optimizer and scheduler state,
the RNG states (torch CPU and CUDA, the data-order generator, Python, numpy) and the
loop's own bookkeeping (epoch records, best validation weights).  A run that finds its
checkpoint starts after the saved epoch and, on CPU, ends bit for bit where an
uninterrupted run ends.  The driver deletes the checkpoint once the run's record is stored.

Why this is not a ``RunConfig`` field: how often a run saves its state does not change
what it computes, so it must not change the run id (turning it on would otherwise orphan
every finished result, and a resumed run could never be matched with its record).  It
travels beside the config, in the ``RunTask``.

The checkpoint is written by whichever process trains the run, so it assumes that
process sees the output directory: always true for the local executor and a private Ray
instance; on a Ray cluster (``--ray-address``) the default policy saves nothing.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic
from typing import Any

import numpy as np
import torch

from .storage import atomic_torch_save

CHECKPOINT_VERSION = 1
# What a damaged or foreign checkpoint raises.  Deliberately not ``Exception``: the
# runner's ``Interrupted`` (Ctrl-C while loading) must stop the run, not restart it.
_UNREADABLE = (OSError, EOFError, RuntimeError, ValueError, KeyError, TypeError, IndexError,
               AttributeError, pickle.UnpicklingError)


# The default policy: save at an epoch's end when the training since the last save plus one
# more epoch would pass this, so an interrupted run loses about a minute (or one epoch, when
# epochs are longer) and a run shorter than a minute never writes a checkpoint.
DEFAULT_CHECKPOINT_SECONDS = 60.0


@dataclass(frozen=True)
class CheckpointPlan:
    """Where a run keeps its checkpoint and how often it saves one (picklable)."""

    path: str
    every: int = 0  # save each ``every`` epochs; 0 = by ``seconds``, or never
    resume: bool = True  # False under --force: a stale checkpoint is ignored and replaced
    seconds: float = 0.0  # with every == 0: save before more than this much training is unsaved


def checkpoint_plan(path: str, every: int | None, resume: bool = True) -> CheckpointPlan:
    """``--checkpoint-every``: N saves each N epochs, 0 never, None the default (by time)."""
    if every is None:
        return CheckpointPlan(path, every=0, resume=resume, seconds=DEFAULT_CHECKPOINT_SECONDS)
    return CheckpointPlan(path, every=every, resume=resume)


@dataclass
class ResumeState:
    """The training loop's own state after the last saved epoch."""

    epoch: int
    records: list[dict[str, float]]
    best_key: tuple[float, float] | None
    best_state: dict[str, torch.Tensor] | None
    best_epoch: int


@dataclass
class Checkpointer:
    """The hook ``train_run`` calls: ``restore`` once before the loop, ``epoch_end`` after each epoch."""

    plan: CheckpointPlan
    run_id: str
    device: str = "cpu"
    resumed_from: int = 0  # the epoch a restored checkpoint had reached (0: fresh start)
    problems: list[str] = field(default_factory=list)
    # A stacked run's seeds (``stacked_with``): its bits hold only in that stack, so it
    # resumes only in that stack.
    stack: str = ""
    # The runs of a stack save at the same epochs: the first to ask decides for all.
    shared_due: dict[int, bool] | None = field(default=None, repr=False)
    _saved_at: float | None = field(default=None, repr=False)  # last save (or the start), monotonic
    _epoch_at: float | None = field(default=None, repr=False)  # the previous epoch's end (or the start)

    @property
    def path(self) -> Path:
        return Path(self.plan.path)

    def restore(self, model, optimizer, scheduler, generator: torch.Generator) -> ResumeState | None:
        """Load the checkpoint into the freshly built objects; None to start from epoch 1."""
        self._saved_at = self._epoch_at = monotonic()
        if not self.plan.resume or not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if state.get("version") != CHECKPOINT_VERSION or state.get("run_id") != self.run_id:
                raise ValueError("it belongs to another run or version")
            if state.get("stack", "") != self.stack:
                raise ValueError(f"it was saved in a stack of seeds {state.get('stack', '')!r}, not {self.stack!r}")
        except _UNREADABLE as exc:
            # A checkpoint only saves time; a damaged one must never cost the run.
            self.problems.append(f"ignored unreadable checkpoint {self.path}: {exc}")
            return None
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            match_parameter_layouts(optimizer)
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
            _set_rng_states(state["rng"], generator, self.device)
        except _UNREADABLE as exc:
            # The objects are half-loaded now: the caller starts the run again without it.
            self.problems.append(f"ignored unusable checkpoint {self.path}: {exc}")
            raise CheckpointUnusable(str(exc)) from None
        loop = state["loop"]
        best_key = loop["best_key"]
        self.resumed_from = int(loop["epoch"])
        return ResumeState(
            epoch=int(loop["epoch"]),
            records=list(loop["records"]),
            best_key=tuple(best_key) if best_key is not None else None,
            best_state=loop["best_state"],
            best_epoch=int(loop["best_epoch"]),
        )

    def epoch_end(self, epoch: int, model, optimizer, scheduler, generator: torch.Generator,
                  loop: ResumeState) -> None:
        """Save when the plan says so (never after the last epoch: the record follows)."""
        if not self.due(epoch):
            return
        atomic_torch_save(self.path, {
            "version": CHECKPOINT_VERSION,
            "run_id": self.run_id,
            "stack": self.stack,
            "model": _cpu(model.state_dict()),
            "optimizer": _cpu(optimizer.state_dict()),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": _rng_states(generator, self.device),
            "loop": {
                "epoch": epoch,
                "records": loop.records,
                "best_key": list(loop.best_key) if loop.best_key is not None else None,
                "best_state": _cpu(loop.best_state) if loop.best_state is not None else None,
                "best_epoch": loop.best_epoch,
            },
        })
        self._saved_at = monotonic()

    def due(self, epoch: int) -> bool:
        """Whether to save after ``epoch``: each ``every`` epochs, or before ``seconds`` are at risk."""
        if self.shared_due is not None:
            if epoch not in self.shared_due:
                self.shared_due[epoch] = self._due(epoch)
            return self.shared_due[epoch]
        return self._due(epoch)

    def _due(self, epoch: int) -> bool:
        if self.plan.every > 0:
            return epoch % self.plan.every == 0
        if self.plan.seconds <= 0:
            return False
        now = monotonic()
        if self._saved_at is None or self._epoch_at is None:
            self._saved_at = self._epoch_at = now
        epoch_seconds, self._epoch_at = now - self._epoch_at, now
        # Unsaved so far plus the next epoch (about as long as this one) would pass the budget.
        return (now - self._saved_at) + epoch_seconds > self.plan.seconds


class CheckpointUnusable(Exception):
    """The checkpoint could not be loaded; the run starts over from epoch 1."""


def _cpu(obj: Any) -> Any:
    """A deep copy with every tensor on the CPU (a checkpoint must load on any machine)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", memory_format=torch.contiguous_format).clone()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def _rng_states(generator: torch.Generator, device: str) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state(torch.device(device)) if device.startswith("cuda") else None,
        "data_order": generator.get_state(),
        # Plain ints and tensors only, so the file loads with weights_only=True.
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }


def _set_rng_states(rng: dict[str, Any], generator: torch.Generator, device: str) -> None:
    torch.set_rng_state(rng["torch_cpu"])
    if device.startswith("cuda") and rng["torch_cuda"] is not None:
        torch.cuda.set_rng_state(rng["torch_cuda"], torch.device(device))
    generator.set_state(rng["data_order"])
    version, internal, gauss_next = rng["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Put each parameter-shaped optimizer state tensor back in its parameter's memory layout.

    A checkpoint stores tensors contiguous, and ``load_state_dict`` restores device and dtype
    but not strides.  torch's fused Adam pairs a parameter with its state by memory position,
    so a contiguous ``exp_avg`` beside a channels_last weight would update the wrong elements;
    foreach Adam pairs by index.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
