"""The training loop: dataset tensors in, per-epoch records and test metrics out.

The tutorial's loop, top to bottom: seed, build the model, then per epoch shuffle, step
through the batches, evaluate on the validation split and keep the best weights; at the
end test the chosen weights.  Batches are sliced from one uint8 tensor on the run's device
and normalized there; losses and hit counts add up on the device and are read once per
epoch.  The same seed gives every architecture the same batches in the same order.

What ``bench.fast`` changes for speed it decides in one place, ``run_policy(cfg)``; with
``CNNBENCH_PLAIN=1`` that is ``PlainPolicy`` and this file trains the tutorial's way.
Drivers that step several runs at once (``bench.drivers``) import this loop, never the reverse.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from architectures import get_spec

from .checkpoint import Checkpointer, ResumeState
from .config import FUSED_OPTIMIZERS, RunConfig
from .datasets.prepared import PreparedData
from .datasets.tensors import Split
from .devices import synchronize
from .fast import speedups
from .flops import arch_cost
from .records import STATUS_DIVERGED, STATUS_OK, EvalResult, TrainOutcome
from .seeding import data_order_generator, seed_everything

MISCLASSIFIED_KEPT = 16  # the most confidently wrong test images each run keeps
EAGER = "eager"
# CNNBENCH_PLAIN=1: every run trains under PlainPolicy, no bench.fast trick (a check, not a mode).
PLAIN_ENV = "CNNBENCH_PLAIN"

EpochCallback = Callable[[RunConfig, dict[str, float]], None]


class PlainPolicy:
    """The tutorial's choices: what every run would do without ``bench.fast``.

    The same interface as ``bench.fast.Speedups``; what the config asks for (the fused
    optimizer, a memory format named by --memory-format) it still gets, only nothing for speed.
    ``threads()`` is entered by whoever executes a run (``bench.tasks``), around the run.
    """

    eval_batch = 1000

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    @property
    def optimizer_options(self) -> dict[str, bool]:
        fused = self.cfg.optimizer_impl == "fused" and self.cfg.optimizer in FUSED_OPTIMIZERS
        return {"fused": True} if fused else {}

    @contextmanager
    def threads(self) -> Iterator[None]:
        yield  # torch's default thread count

    def memory_format(self, model: nn.Module) -> torch.memory_format:
        return torch.channels_last if self.cfg.memory_format == "channels_last" else torch.contiguous_format

    def prepare(self, model: nn.Module, memory_format: torch.memory_format) -> None:
        pass

    def prepare_stack(self, model: nn.Module, memory_format: torch.memory_format) -> None:
        pass

    def stack_kernel_refusal(self) -> str | None:
        return "the plain policy uses none of bench.fast's kernels" if self.cfg.device == "cpu" else None

    def graph_refusal(self) -> str | None:
        return "the plain policy captures no CUDA graphs"

    def graph(self, optimizers: list[torch.optim.Optimizer], stacked_runs: int = 0) -> None:
        return None


def run_policy(cfg: RunConfig):
    """What a run changes for speed: ``bench.fast``'s choices, or ``PlainPolicy`` under CNNBENCH_PLAIN=1."""
    if os.environ.get(PLAIN_ENV, "0").strip() == "1":
        return PlainPolicy(cfg)
    return speedups(cfg)


def make_optimizer(cfg: RunConfig, params, options: dict[str, bool]) -> torch.optim.Optimizer:
    common = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, **options}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum, **common)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **common)
    return torch.optim.Adadelta(params, **common)


def make_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer):
    """The run's schedule, stepped once per epoch (``RunLoop.epoch_done``)."""
    schedulers = torch.optim.lr_scheduler
    if cfg.lr_schedule == "step":
        return schedulers.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    if cfg.lr_schedule == "cosine":
        return schedulers.LambdaLR(optimizer, lambda epoch: cosine_factor(epoch, cfg.epochs, cfg.warmup_epochs))
    if cfg.lr_schedule == "onecycle":
        # One step more than epochs: the annealed end lies after the last epoch, which still trains.
        # The rate only: a captured CUDA graph (bench.fast.cuda_graph) re-captures for a new rate, not new betas.
        return schedulers.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs + 1, cycle_momentum=False)
    return None


def cosine_factor(epoch: int, epochs: int, warmup: int) -> float:
    """The learning rate's multiple in epoch ``epoch`` (0-based): a linear ramp over ``warmup``
    epochs, then half a cosine down, ending above zero so that the last epoch still trains."""
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))


def autocast(cfg: RunConfig):
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
    policy: object  # bench.fast.Speedups or PlainPolicy
    graphed: object | None = None  # steps that replay a captured CUDA graph (bench.fast.cuda_graph)

    def batch(self, data: PreparedData, split: Split, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalized images and labels at ``index``, in the run's memory format."""
        # index_select, not images[index]: the same bytes without advanced indexing's generic gather.
        x = data.normalize(split.images.index_select(0, index)).contiguous(memory_format=self.memory_format)
        return x, split.labels.index_select(0, index)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the (detached) loss and logits, with no host sync."""
        with autocast(self.cfg):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), logits.detach()

    def train_batch(self, data: PreparedData, split: Split, index: torch.Tensor,
                    loss_sum: torch.Tensor, hits: torch.Tensor) -> None:
        """One step on the batch at ``index``, adding its loss and hits to the two sums."""
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
        loss_sum = torch.zeros((), dtype=torch.float64, device=order.device)
        hits = torch.zeros((), dtype=torch.int64, device=order.device)
        for start in range(0, len(order), self.cfg.batch_size):
            self.train_batch(data, data.train, order[start:start + self.cfg.batch_size], loss_sum, hits)
        return loss_sum, hits

    @property
    def step_mode(self) -> str:
        """How full batches step: ``eager``, or how ``graphed`` steps them."""
        return self.graphed.step_mode if self.graphed is not None else EAGER


def use_tf32(cfg: RunConfig) -> None:
    """TF32 matmuls and convolutions on CUDA only if the run asks (cuDNN's default is on)."""
    if torch.device(cfg.device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32


def build_training(cfg: RunConfig, data: PreparedData) -> Training:
    """Seed, build the model on the device in its memory format, and make its optimizer."""
    policy = run_policy(cfg)
    device = torch.device(cfg.device)
    use_tf32(cfg)
    seed_everything(cfg.seed)
    model = get_spec(cfg.arch).build(
        in_channels=data.in_channels, num_classes=len(data.classes), image_size=data.image_size
    )
    params, flops = arch_cost(cfg.arch, data.in_channels, len(data.classes), data.image_size)
    memory_format = policy.memory_format(model)
    model = model.to(device=device, memory_format=memory_format)
    policy.prepare(model, memory_format)
    optimizer = make_optimizer(cfg, model.parameters(), policy.optimizer_options)
    return Training(
        cfg=cfg, model=model, forward=torch.compile(model) if cfg.compile else model,
        optimizer=optimizer, scheduler=make_scheduler(cfg, optimizer), memory_format=memory_format,
        params=params, flops_per_image=flops, policy=policy, graphed=policy.graph([optimizer]),
    )


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


def train_together(loops: list[RunLoop], device: str, run_steps: Callable, after_steps: Callable | None = None) -> None:
    """Drive several runs' epochs whose steps run together, until every loop has its outcome.

    ``run_steps(orders)`` trains run i on ``orders[i]`` and returns (runs,) loss sums and hits;
    ``after_steps()`` runs once the epoch's steps are done, before any run is evaluated.
    """
    while any(loop.outcome is None for loop in loops):
        synchronize(device)
        t0 = time.perf_counter()
        # A run that diverged has its outcome; it keeps stepping (on any order) so that the
        # others' steps stay the same, and its results are no longer read.
        orders = [loop.next_order() if loop.outcome is None else None for loop in loops]
        filler = next(order for order in orders if order is not None)
        loss_sums, hits = run_steps(torch.stack([filler if order is None else order for order in orders]))
        synchronize(device)
        seconds = time.perf_counter() - t0
        if after_steps is not None:
            after_steps()
        for i, loop in enumerate(loops):
            if loop.outcome is None:
                loop.epoch_done(loss_sums[i], hits[i], seconds)


class RunLoop:
    """One run's epochs around its steps: order, evaluation, records, best weights, checkpoints.

    ``train_run`` drives one loop with the run's own steps; ``bench.drivers`` drive several
    whose steps run together.  Per epoch: ``next_order()``, train on it,
    ``epoch_done(...)``; ``outcome`` is set once the run has finished or diverged.
    """

    def __init__(self, training: Training, data: PreparedData, started: float,
                 on_epoch: EpochCallback | None = None, checkpoint: Checkpointer | None = None, *,
                 seed_group: int = 1, step_mode: str | None = None) -> None:
        self.training, self.data, self.started = training, data, started
        self.on_epoch, self.checkpoint = on_epoch, checkpoint
        self.seed_group, self.step_mode = seed_group, step_mode or training.step_mode
        self.cfg = training.cfg
        self.generator = data_order_generator(self.cfg.seed)
        self.records: list[dict[str, float]] = []
        self.best_key: tuple[float, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.lr = math.nan
        self.outcome: TrainOutcome | None = None
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
        order = torch.randperm(len(self.data.train), generator=self.generator)
        return order[:self.images_per_epoch].to(self.cfg.device, non_blocking=True)

    @property
    def images_per_epoch(self) -> int:
        """The training images an epoch steps through: all, or ``train_fraction`` of them."""
        n = len(self.data.train)
        return n if self.cfg.train_fraction >= 1 else max(1, round(self.cfg.train_fraction * n))

    def epoch_done(self, loss_sum: torch.Tensor, hits: torch.Tensor, train_seconds: float) -> None:
        """The epoch's steps are done (their summed loss and hits, on the device): evaluate."""
        cfg, training, data = self.cfg, self.training, self.data
        epoch, n = len(self.records) + 1, self.images_per_epoch
        if training.scheduler is not None:
            training.scheduler.step()
        t1 = time.perf_counter()
        val = evaluate(training, data, data.val) if data.val is not None else None
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
                status=STATUS_DIVERGED, epochs=self.records, diverged_epoch=epoch,
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
        layout = "channels_last" if training.memory_format == torch.channels_last else "contiguous"
        return {"memory_format": layout, "step_mode": self.step_mode, "seed_group": self.seed_group,
                "params": training.params, "flops_per_image": training.flops_per_image}

    def _tested(self) -> TrainOutcome:
        """Test the chosen weights (best on validation, or the last) and describe the run."""
        model, data = self.training.model, self.data
        tested, best_epoch = "last", self.cfg.epochs
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
            tested, best_epoch = "best-val", self.best_epoch
        test = evaluate(self.training, data, data.test, keep_probabilities=True)
        return TrainOutcome(
            status=STATUS_OK,
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
def evaluate(training: Training, data: PreparedData, split: Split, *,
             keep_probabilities: bool = False) -> EvalResult:
    """Loss, accuracy and confusion matrix of ``training.model`` on ``split`` (eval mode).

    ``keep_probabilities`` (the test pass) also keeps each image's softmax and whether it was
    classified right, for the record's per-image results.
    """
    model, cfg = training.model, training.cfg
    was_training = model.training
    model.eval()
    num_classes = len(data.classes)
    loss_sum = torch.zeros((), dtype=torch.float64, device=split.images.device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=split.images.device)
    kept, hits = [], []
    size = training.policy.eval_batch
    for start in range(0, len(split), size):
        x = data.normalize(split.images[start:start + size]).contiguous(memory_format=training.memory_format)
        y = split.labels[start:start + size]
        with autocast(cfg):
            logits = model(x)
        logits = logits.float()
        predicted = logits.argmax(1)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        confusion += torch.bincount(y * num_classes + predicted, minlength=num_classes**2)
        if keep_probabilities:
            kept.append(logits.softmax(1).cpu())
            hits.append((predicted == y).cpu())
    model.train(was_training)
    matrix = confusion.reshape(num_classes, num_classes).cpu().numpy()
    n = max(len(split), 1)
    return EvalResult(
        loss=float(loss_sum) / n,
        accuracy=float(np.trace(matrix)) / n,
        confusion=matrix,
        probabilities=torch.cat(kept) if kept else None,
        correct=torch.cat(hits).numpy() if hits else None,
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
