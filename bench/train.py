"""The training loop: dataset tensors in, per-epoch records and test metrics out.

Hot-path rules (see the performance issue): batches are sliced from one uint8 tensor that
already lives on the target device and normalized there; no ``.item()`` or other host sync
inside an epoch; losses and hit counts accumulate on the device and are read once per
epoch.  The same seed gives every architecture the same batches in the same order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from architectures import get_spec

from .avg_pool import use_broadcast_avg_pool
from .checkpoint import Checkpointer, ResumeState
from .config import RunConfig
from .cuda_graph import CAPTURED, EAGER, GraphedSteps, graph_refusal
from .datasets import Dataset, Split, validation_split
from .devices import synchronize
from .flops import arch_cost
from .seeding import data_order_generator, seed_everything

# Every CPU run trains with one intra-op thread.  oneDNN splits its reductions by thread
# count, so 1 and 2 threads give different last bits (measured): fixed, a run's result
# does not depend on --workers or the machine's core count.  Cores are used by running
# one worker process per core instead, which was also faster here (see bench/perf).
CPU_RUN_THREADS = 1
# Evaluation batches: a fixed size per device, chosen for speed.  The size can move logits
# in the last bits (a kernel may block a batch of another size differently; predictions
# stay the same, tests/test_train.py), so it is a constant, not a knob.  On CPU, a batch
# whose activations stay in cache: one thread, the 10,000 MNIST test images took 0.31 s
# at 256 and 0.54 s at 1,000 (ablate-std-avg; bn-convnet 0.63 s vs 1.19 s; lenet-12, whose
# maps are small, 0.20 s either way).  On a GPU a large batch keeps it busy.
CPU_EVAL_BATCH = 256
GPU_EVAL_BATCH = 1000
MISCLASSIFIED_KEPT = 16  # the most confidently wrong test images each run keeps


def eval_batch_size(device: str | torch.device) -> int:
    return CPU_EVAL_BATCH if torch.device(device).type == "cpu" else GPU_EVAL_BATCH


@dataclass(frozen=True)
class PreparedData:
    """A dataset split for one run, on the run's device, with its normalization."""

    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split | None
    test: Split
    mean: float  # of training pixels in [0, 1]
    std: float

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,1,H,W) -> float32, normalized exactly like ToTensor() + Normalize()."""
        return images.to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std)


def prepare_data(dataset: Dataset, val_fraction: float, device: str) -> PreparedData:
    mean, std = dataset.pixel_stats()
    train, val = validation_split(dataset.train, val_fraction)
    return PreparedData(
        name=dataset.name,
        classes=dataset.classes,
        train=train.to(device),
        val=val.to(device) if val is not None else None,
        test=dataset.test.to(device),
        mean=mean,
        std=std,
    )


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    confusion: np.ndarray  # (C, C) int64, rows = true class, columns = predicted
    probabilities: torch.Tensor | None = None  # (N, C) on CPU when asked for


@dataclass
class TrainOutcome:
    """What one training run produced; turned into a stored record by ``records``."""

    status: str  # "ok" or "diverged"
    epochs: list[dict[str, float]]
    memory_format: str
    params: int
    flops_per_image: int
    total_seconds: float
    step_mode: str = EAGER  # "cuda-graph" when full batches replayed a captured CUDA graph
    seed_group: int = 1  # runs trained together with this one, itself included (bench.seed_group)
    tested_weights: str = ""
    best_epoch: int = 0
    diverged_epoch: int = 0
    test: EvalResult | None = None
    state_dict: dict[str, torch.Tensor] | None = None
    misclassified: dict[str, torch.Tensor] | None = None


EpochCallback = Callable[[RunConfig, dict[str, float]], None]


# Optimizers torch has a fused (one kernel per step) CPU and CUDA implementation of.  On the
# 2-core CPU, one thread, fused Adam made whole training steps 1.06-1.09x faster (paired A/B:
# ablate-std-avg 1.09x, ablate-std-stride 1.09x, lenet-12 1.06x): foreach Adam makes ~8
# passes over parameters and state, fused one.  Its last bits differ from the per-parameter
# loop's, which ``--optimizer-impl foreach`` reproduces exactly.
FUSED_OPTIMIZERS = ("adam", "sgd")


def make_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    fused = cfg.optimizer_impl == "fused" and cfg.optimizer in FUSED_OPTIMIZERS
    common = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, **({"fused": True} if fused else {"foreach": True})}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum, **common)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **common)
    return torch.optim.Adadelta(params, **common)


def make_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer):
    if cfg.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    return None


def choose_memory_format(cfg: RunConfig, model: nn.Module) -> torch.memory_format:
    """The memory format for this run; ``auto`` is a fixed rule, never a timing probe.

    A probe could pick differently on two runs of the same config, and the format changes
    which kernels run, hence the last bits of the result: the rule keeps runs repeatable.
    """
    if cfg.memory_format == "channels_last":
        return torch.channels_last
    if cfg.memory_format == "contiguous":
        return torch.contiguous_format
    # Measured on the 2-core CPU, one thread per worker as the grid runs: channels_last
    # (oneDNN's NHWC kernels) trained all five perf nets 1.1-1.9x faster, dilated ones
    # included.  On CUDA, fp32 convolutions of these sizes are unmeasured: keep NCHW.
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    if torch.device(cfg.device).type == "cpu" and has_conv:
        return torch.channels_last
    return torch.contiguous_format


def keep_gradients_channels_last(model: nn.Module) -> None:
    """Hand every ``nn.Flatten``'s gradient back to the feature stack in channels_last.

    Flatten's backward views the classifier's gradient as an NCHW tensor, so the layers
    before it (ReLU, pooling, BatchNorm) ran their backward on one channels_last and one
    NCHW operand, a slow strided path.  One copy into channels_last changes no value, so
    no bit of the result (tests/test_fast_path.py compares with a loop without it).
    Measured, one thread, MNIST batch 64: training steps 1.07x faster for ``convnet``,
    1.06x ``ablate-std-avg``, 1.04x ``dilated``, 1.02x ``bn-convnet``; LeNets unchanged.
    """
    for module in model.modules():
        if isinstance(module, nn.Flatten):
            module.register_forward_pre_hook(_gradient_to_channels_last)


def _gradient_to_channels_last(_module: nn.Module, args: tuple) -> None:
    x = args[0]
    if x.requires_grad and x.dim() == 4:
        x.register_hook(_channels_last)


def _channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


@contextmanager
def run_threads(device: str):
    """Run the body with ``CPU_RUN_THREADS`` torch threads on CPU; restore them after."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(CPU_RUN_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _autocast(cfg: RunConfig):
    if cfg.dtype == "bfloat16-autocast":
        return torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16)
    return nullcontext()


@dataclass
class Training:
    """A model ready to train under ``cfg``: what ``train_run`` and ``bench perf`` both time."""

    cfg: RunConfig
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, or its compiled form
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    memory_format: torch.memory_format
    params: int
    flops_per_image: int
    graphed: GraphedSteps | None = None  # CUDA runs whose steps replay a captured graph

    def batch(self, data: PreparedData, split: Split, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalized images and labels at ``index``, in the run's memory format.

        ``index_select``, not ``images[index]``: the same bytes, but advanced indexing's
        generic gather took 57 us for 64 MNIST images against 8 us (one thread, CPU).
        """
        x = data.normalize(split.images.index_select(0, index)).contiguous(memory_format=self.memory_format)
        return x, split.labels.index_select(0, index)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the (detached) loss and logits, with no host sync."""
        with _autocast(self.cfg):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), logits.detach()

    def train_batch(self, data: PreparedData, split: Split, index: torch.Tensor,
                    loss_sum: torch.Tensor, hits: torch.Tensor) -> None:
        """One step on the batch at ``index``, adding its loss and hits to the two sums.

        The same code runs eagerly and under CUDA-graph capture (``bench.cuda_graph``).
        """
        x, y = self.batch(data, split, index)
        loss, logits = self.step(x, y)
        # float64 before scaling, so the sum equals summing loss.item() * batch exactly
        loss_sum += loss.double() * y.numel()
        hits += (logits.argmax(1) == y).sum()

    def run_steps(self, data: PreparedData, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on ``data.train`` in batches of ``order`` (indices on the device).

        Returns the summed loss (float64) and hit count as device tensors: the caller reads
        them once, so nothing in here waits for the device.
        """
        if self.graphed is not None:
            loss_sum, hits = self.graphed.run([self.train_batch], data, order.unsqueeze(0))
            return loss_sum[0], hits[0]
        device = order.device
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        hits = torch.zeros((), dtype=torch.int64, device=device)
        batch_size = self.cfg.batch_size
        for start in range(0, len(order), batch_size):
            self.train_batch(data, data.train, order[start:start + batch_size], loss_sum, hits)
        return loss_sum, hits

    @property
    def step_mode(self) -> str:
        """How full batches step: ``cuda-graph`` (captured and replayed) or ``eager``."""
        return CAPTURED if self.graphed is not None else EAGER


def build_training(cfg: RunConfig, data: PreparedData, *, own_graph: bool = True) -> Training:
    """Seed, build the model on the device in its memory format, and make its optimizer.

    ``own_graph=False``: no CUDA graph of its own (a seed group captures its steps instead).
    """
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32

    seed_everything(cfg.seed)
    model = get_spec(cfg.arch).build(
        in_channels=data.in_channels, num_classes=len(data.classes), image_size=data.image_size
    )
    params, flops = arch_cost(cfg.arch, data.in_channels, len(data.classes), data.image_size)
    memory_format = choose_memory_format(cfg, model)
    model = model.to(device=device, memory_format=memory_format)
    if memory_format == torch.channels_last and not cfg.compile:  # compiled code picks its own layouts
        keep_gradients_channels_last(model)
        if device.type == "cpu":
            from .max_pool import use_channels_last_max_pool  # numba: imported only where used

            use_channels_last_max_pool(model)
    if device.type == "cuda" and not cfg.compile:  # compiled code writes its own backward
        use_broadcast_avg_pool(model)
    optimizer = make_optimizer(cfg, model.parameters())
    training = Training(
        cfg=cfg, model=model, forward=torch.compile(model) if cfg.compile else model,
        optimizer=optimizer, scheduler=make_scheduler(cfg, optimizer), memory_format=memory_format,
        params=params, flops_per_image=flops,
    )
    if own_graph and graph_refusal(cfg) is None:
        training.graphed = GraphedSteps([optimizer], cfg.batch_size, device)
    return training


def train_run(
    cfg: RunConfig, data: PreparedData, on_epoch: EpochCallback | None = None,
    checkpoint: Checkpointer | None = None,
) -> TrainOutcome:
    """Train ``cfg.arch`` on ``data`` for ``cfg.epochs`` and test the chosen weights."""
    started = time.perf_counter()
    training = build_training(cfg, data)
    loop = RunLoop(training, data, started, on_epoch, checkpoint)
    while loop.outcome is None:
        synchronize(cfg.device)
        t0 = time.perf_counter()
        loss_sum, hits = training.run_steps(data, loop.next_order())
        synchronize(cfg.device)
        loop.epoch_done(loss_sum, hits, time.perf_counter() - t0)
    return loop.outcome


class RunLoop:
    """One run's epochs around its steps: order, evaluation, records, best weights, checkpoints.

    ``train_run`` drives one loop with the run's own steps; ``bench.seed_group`` drives
    several whose steps share one CUDA graph.  Per epoch: ``next_order()``, train on it,
    ``epoch_done(...)``; ``outcome`` is set once the run has finished or diverged.
    """

    def __init__(self, training: Training, data: PreparedData, started: float,
                 on_epoch: EpochCallback | None = None, checkpoint: Checkpointer | None = None, *,
                 seed_group: int = 1, step_mode: str | None = None) -> None:
        self.training, self.data, self.started = training, data, started
        self.on_epoch, self.checkpoint = on_epoch, checkpoint
        # In a seed group the group steps the run (bench.seed_group), not its own Training.
        self.seed_group, self.step_mode = seed_group, step_mode or training.step_mode
        self.cfg = training.cfg
        self.generator = data_order_generator(self.cfg.seed)
        self.records: list[dict[str, float]] = []
        self.best_key: tuple[float, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.lr = math.nan
        self.outcome: TrainOutcome | None = None
        # --checkpoint-every (see checkpoint.py): resume after the saved epoch, save at epoch ends.
        resumed = (checkpoint.restore(training.model, training.optimizer, training.scheduler, self.generator)
                   if checkpoint else None)
        if resumed is not None:
            self.records, self.best_key, self.best_state, self.best_epoch = (
                resumed.records, resumed.best_key, resumed.best_state, resumed.best_epoch)
        if len(self.records) >= self.cfg.epochs:
            self.outcome = self._tested()

    def next_order(self) -> torch.Tensor:
        """Start the next epoch: training mode, and its seeded batch order on the device."""
        self.lr = self.training.optimizer.param_groups[0]["lr"]
        self.training.model.train()
        n = len(self.data.train)
        return torch.randperm(n, generator=self.generator).to(self.cfg.device, non_blocking=True)

    def epoch_done(self, loss_sum: torch.Tensor, hits: torch.Tensor, train_seconds: float) -> None:
        """The epoch's steps are done (their summed loss and hits, on the device): evaluate."""
        cfg, training, data = self.cfg, self.training, self.data
        epoch, n = len(self.records) + 1, len(data.train)
        if training.scheduler is not None:
            training.scheduler.step()
        t1 = time.perf_counter()
        val = evaluate(training.model, data.val, data, cfg, training.memory_format) if data.val is not None else None
        synchronize(cfg.device)
        record = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / n,
            "train_acc": float(hits) / n,
            "val_loss": val.loss if val else math.nan,
            "val_acc": val.accuracy if val else math.nan,
            "lr": self.lr,
            "train_seconds": train_seconds,
            "eval_seconds": time.perf_counter() - t1,
            "train_images_per_s": n / train_seconds,
        }
        self.records.append(record)
        if self.on_epoch is not None:
            self.on_epoch(cfg, record)

        if not (math.isfinite(record["train_loss"]) and (val is None or math.isfinite(val.loss))):
            self.outcome = TrainOutcome(
                status="diverged", epochs=self.records, diverged_epoch=epoch,
                total_seconds=time.perf_counter() - self.started, **self._describe(),
            )
            return
        if val is not None and cfg.test_weights == "best-val":
            key = (val.accuracy, -val.loss)
            if self.best_key is None or key > self.best_key:
                self.best_key, self.best_epoch = key, epoch
                self.best_state = {k: v.detach().clone() for k, v in training.model.state_dict().items()}
        if epoch == cfg.epochs:
            self.outcome = self._tested()
        elif self.checkpoint is not None:
            self.checkpoint.epoch_end(
                epoch, training.model, training.optimizer, training.scheduler, self.generator,
                ResumeState(epoch, self.records, self.best_key, self.best_state, self.best_epoch))

    def _describe(self) -> dict:
        training = self.training
        return {"memory_format": _format_name(training.memory_format), "step_mode": self.step_mode,
                "seed_group": self.seed_group, "params": training.params, "flops_per_image": training.flops_per_image}

    def _tested(self) -> TrainOutcome:
        """Test the chosen weights (best on validation, or the last) and describe the run."""
        model, data = self.training.model, self.data
        tested, best_epoch = "last", self.cfg.epochs
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
            tested, best_epoch = "best-val", self.best_epoch
        test = evaluate(model, data.test, data, self.cfg, self.training.memory_format, keep_probabilities=True)
        return TrainOutcome(
            status="ok",
            epochs=self.records,
            total_seconds=time.perf_counter() - self.started,
            tested_weights=tested,
            best_epoch=best_epoch,
            test=test,
            state_dict={k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone()
                        for k, v in model.state_dict().items()},
            misclassified=most_confident_errors(test, data.test),
            **self._describe(),
        )


@torch.inference_mode()
def evaluate(
    model: nn.Module, split: Split, data: PreparedData, cfg: RunConfig,
    memory_format: torch.memory_format = torch.contiguous_format, *, keep_probabilities: bool = False,
) -> EvalResult:
    """Loss, accuracy and confusion matrix of ``model`` on ``split`` (eval mode)."""
    was_training = model.training
    model.eval()
    num_classes = len(data.classes)
    loss_sum = torch.zeros((), dtype=torch.float64, device=split.images.device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=split.images.device)
    kept = []
    size = eval_batch_size(split.images.device)
    for start in range(0, len(split), size):
        x = data.normalize(split.images[start:start + size]).contiguous(memory_format=memory_format)
        y = split.labels[start:start + size]
        with _autocast(cfg):
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        confusion += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes**2)
        if keep_probabilities:
            kept.append(logits.softmax(1).cpu())
    model.train(was_training)
    matrix = confusion.reshape(num_classes, num_classes).cpu().numpy()
    n = max(len(split), 1)
    return EvalResult(
        loss=float(loss_sum) / n,
        accuracy=float(np.trace(matrix)) / n,
        confusion=matrix,
        probabilities=torch.cat(kept) if kept else None,
    )


def most_confident_errors(test: EvalResult, split: Split, k: int = MISCLASSIFIED_KEPT) -> dict[str, torch.Tensor]:
    """The ``k`` wrong test predictions made with the highest confidence, with their images."""
    probs = test.probabilities
    labels = split.labels.cpu()
    confidence, predicted = probs.max(1)
    wrong = (predicted != labels).nonzero().flatten()
    order = confidence[wrong].argsort(descending=True, stable=True)[:k]
    index = wrong[order]
    return {
        "index": index,
        "images": split.images.cpu()[index],
        "true": labels[index],
        "predicted": predicted[index],
        "confidence": confidence[index],
    }


def _format_name(fmt: torch.memory_format) -> str:
    return "channels_last" if fmt == torch.channels_last else "contiguous"
