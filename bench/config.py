"""RunConfig: the one frozen record of everything that determines a run.

It travels unchanged from the CLI to the runner to the stored results (as nanoGPT saves
its config beside the checkpoint).  Its hash, together with the digest of the
architecture's source, names the run: a changed field can never reuse a stale result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any, Literal

from .errors import BenchError

OPTIMIZERS = ("sgd", "adam", "adadelta")
OPTIMIZER_IMPLS = ("fused", "foreach")
FUSED_OPTIMIZERS = ("adam", "sgd")  # the optimizers torch has a one-kernel (fused) step for
LR_SCHEDULES = ("none", "step", "cosine", "onecycle")
DTYPES = ("float32", "bfloat16-autocast")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")
TEST_WEIGHTS = ("best-val", "last")

# Learning rates a user gets when they name an optimizer but no --lr: the values the
# classic tutorials use for each (Adadelta's 1.0 is PyTorch's mnist example).
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adadelta": 1.0}
# Fields added after runs were stored: at these values they are left out of the hash, so
# every run stored before keeps its id.
UNHASHED_DEFAULTS = {"stacked": False, "aten_stack": False, "warmup_epochs": 0, "train_fraction": 1.0}


@dataclass(frozen=True)
class RunConfig:
    """One training run.  Every field changes the result, so every field is hashed."""

    arch: str
    dataset: str
    seed: int = 0
    epochs: int = 3
    batch_size: int = 64
    optimizer: Literal["sgd", "adam", "adadelta"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # used by sgd only
    weight_decay: float = 0.0
    # "fused": torch's one-kernel optimizer step, for adam and sgd (adadelta has none and
    # steps with foreach); "foreach": bit-identical to torch's default per-parameter loop.
    # The two differ in the last bits (bench/train.py measures the speed).
    optimizer_impl: Literal["fused", "foreach"] = "fused"
    # Every schedule steps once per epoch (the fast paths capture an epoch's steps whole).
    lr_schedule: Literal["none", "step", "cosine", "onecycle"] = "none"
    lr_step: int = 1  # epochs between decays when lr_schedule == "step"
    lr_gamma: float = 0.7
    warmup_epochs: int = 0  # cosine: epochs of linear warm-up before the decay
    val_fraction: float = 0.1
    test_weights: Literal["best-val", "last"] = "best-val"
    # "cpu", "cuda" (whichever GPU the worker was given) or "cuda:N"; never "auto".
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16-autocast"] = "float32"
    tf32: bool = False  # lossy on Ampere+; opt-in and recorded
    memory_format: Literal["auto", "contiguous", "channels_last"] = "auto"
    compile: bool = False
    deterministic: bool = False
    # Trained as one of a stack of seeds (bench.drivers.stacked): the same arithmetic summed in
    # another order, so other last bits than alone.  Hashed only when set: solo ids stay.
    stacked: bool = False
    # A CPU stack computed by aten's kernels, not bench.fast's numba ones (numba missing or
    # failing: bench.planner decides): other last bits, so an id of its own.  Hashed only when set.
    aten_stack: bool = False
    # Share of the training split each epoch trains on (a fresh seeded share each epoch):
    # cheaper tuning trials.  Hashed only when below 1: full runs keep their ids.
    train_fraction: float = 1.0

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def config_hash(self) -> str:
        """Stable hash of the fields alone (sorted JSON, so field order never matters)."""
        hashed = {k: v for k, v in self.to_dict().items() if k not in UNHASHED_DEFAULTS or v != UNHASHED_DEFAULTS[k]}
        blob = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def run_id(self) -> str:
        """The run's name: ``<arch>-s<seed>-<hash>``, hashing config and arch source.

        Readable at a glance in a directory listing, unique for every distinct question.
        """
        from architectures import get_spec  # registry only; no model classes

        digest = hashlib.sha256(
            (self.config_hash() + get_spec(self.arch).digest).encode()
        ).hexdigest()[:10]
        return f"{self.arch}-{self.dataset}-s{self.seed}-{digest}"


def validate(cfg: RunConfig) -> None:
    """Reject values that cannot describe a run, with a message naming the option."""
    checks = [
        (cfg.epochs > 0, f"--epochs must be a positive integer, got {cfg.epochs}"),
        (cfg.batch_size > 0, f"--batch-size must be a positive integer, got {cfg.batch_size}"),
        (cfg.seed >= 0, f"seeds must be non-negative integers, got {cfg.seed}"),
        (cfg.lr > 0, f"--lr must be positive, got {cfg.lr}"),
        (cfg.momentum >= 0, f"--momentum must be >= 0, got {cfg.momentum}"),
        (cfg.weight_decay >= 0, f"--weight-decay must be >= 0, got {cfg.weight_decay}"),
        (0 <= cfg.val_fraction < 1, f"--val-fraction must be in [0, 1), got {cfg.val_fraction}"),
        (cfg.lr_step > 0, f"--lr-step must be a positive integer, got {cfg.lr_step}"),
        (0 < cfg.lr_gamma <= 1, f"--lr-gamma must be in (0, 1], got {cfg.lr_gamma}"),
        (cfg.warmup_epochs >= 0, f"--warmup-epochs must be >= 0, got {cfg.warmup_epochs}"),
        (cfg.warmup_epochs < cfg.epochs or cfg.warmup_epochs == 0,
         f"--warmup-epochs {cfg.warmup_epochs} leaves no epoch of the {cfg.epochs} to decay in"),
        (0 < cfg.train_fraction <= 1, f"the training fraction must be in (0, 1], got {cfg.train_fraction}"),
        (cfg.optimizer in OPTIMIZERS,
         f"unknown optimizer {cfg.optimizer!r}; choose from {', '.join(OPTIMIZERS)}"),
        (cfg.optimizer_impl in OPTIMIZER_IMPLS,
         f"unknown optimizer implementation {cfg.optimizer_impl!r}; choose from {', '.join(OPTIMIZER_IMPLS)}"),
        (cfg.lr_schedule in LR_SCHEDULES,
         f"unknown lr schedule {cfg.lr_schedule!r}; choose from {', '.join(LR_SCHEDULES)}"),
        (cfg.dtype in DTYPES, f"unknown dtype {cfg.dtype!r}; choose from {', '.join(DTYPES)}"),
        (cfg.memory_format in MEMORY_FORMATS,
         f"unknown memory format {cfg.memory_format!r}; choose from {', '.join(MEMORY_FORMATS)}"),
        (cfg.test_weights in TEST_WEIGHTS,
         f"unknown test weights {cfg.test_weights!r}; choose from {', '.join(TEST_WEIGHTS)}"),
        (cfg.device in ("cpu", "cuda") or cfg.device.startswith("cuda:"),
         f"RunConfig needs a resolved device ('cpu', 'cuda' or 'cuda:N'), got {cfg.device!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise BenchError(message)
    if cfg.test_weights == "best-val" and cfg.val_fraction == 0:
        # Without a validation set "best" is undefined; say so rather than silently
        # testing the last weights under a misleading label.
        raise BenchError("--test-weights best-val needs --val-fraction > 0 (or use --test-weights last)")
