"""Training a stack of seeds (``--stack-seeds N``): the epochs of ``bench.train``, many runs wide.

Each run keeps what ``bench.train.RunLoop`` gives it alone: its data order, validation,
best-epoch choice, test and record.  Only the steps are shared: one stacked network
(``bench.drivers.stacked``) and one optimizer over its wide tensors step every run's batch at
once.  After each epoch every run's slice of the weights is copied into its own model,
which is what is evaluated, tested and stored.

``train_stack`` trains the runs it is given as one stack; how many runs a stack takes (on
CPU parts of a few, on CUDA all) ``bench.planner`` decides.  On CUDA full batches replay one
captured CUDA graph as a solo run's do (``bench.fast.cuda_graph``), with the bits of the
eager stacked steps.
Each run saves its checkpoints as a run alone does, its slice of the stack's weights and
optimizer state included, and all runs of a stack save at the same epochs; an interrupted
stack resumes only as the same stack (its seeds fix its bits), else it trains again from
epoch 1.
"""

from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F
from torch import nn

from architectures import get_spec

from ..checkpoint import CheckpointPlan, Checkpointer, CheckpointUnusable, match_parameter_layouts
from ..config import RunConfig
from ..datasets.prepared import PreparedData
from ..datasets.tensors import Split
from ..errors import one_line
from ..records import TrainOutcome
from ..seeding import seed_everything
from ..train import (
    EpochCallback,
    RunLoop,
    Training,
    autocast,
    build_training,
    make_optimizer,
    make_scheduler,
    run_policy,
    train_together,
    use_tf32,
)
from .stacked import (
    STACKED,
    stack_models,
    stack_optimizer_states,
    stack_refusal,
    unstack_into,
    unstack_optimizer_into,
)

# A stack must give what its runs give alone up to float rounding; a larger difference on
# the check batch means the architecture does something the stacked rewrite does not know.
CHECK_TOLERANCE = 1e-3


def refusal(arch: str, in_channels: int, num_classes: int, image_size: int) -> str | None:
    """Why runs of ``arch`` cannot be stacked for this input, or None after a check that they can.

    The check stacks two freshly built copies and compares the stack's logits with each
    copy's own on a few random images.
    """
    with torch.random.fork_rng(devices=[]):  # building draws weights; the runs' seeds must not notice
        models = [get_spec(arch).build(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
                  for _ in range(2)]
        reason = stack_refusal(models[0])
        if reason is not None:
            return reason
        x = torch.rand(2, 3, in_channels, image_size, image_size)
        try:
            with torch.no_grad():
                alone = torch.stack([m.eval()(x[i]) for i, m in enumerate(models)])
                stacked = stack_models(models).eval()(_side_by_side(x))
        except Exception as exc:  # noqa: BLE001 - any failure means: train these runs alone
            return f"its stacked form fails ({one_line(exc)})"
    if stacked.shape != alone.shape or not torch.allclose(stacked, alone, atol=CHECK_TOLERANCE, rtol=CHECK_TOLERANCE):
        return "its stacked form computes something else than the runs alone (a layer it cannot widen?)"
    return None


def _side_by_side(x: torch.Tensor) -> torch.Tensor:
    """(N, B, C, H, W), one batch per run -> (B, N*C, H, W), the stack's input."""
    n, b, c, h, w = x.shape
    return x.transpose(0, 1).reshape(b, n * c, h, w)


class StackSteps:
    """The steps of a stack: one wide network and one optimizer for its runs."""

    def __init__(self, cfgs: list[RunConfig], data: PreparedData, resumed: list[Training] | None = None) -> None:
        """``resumed``: the runs' own trainings, restored from their checkpoints, to go on from."""
        cfg = cfgs[0]
        self.cfg, self.runs = cfg, len(cfgs)
        policy = run_policy(cfg)
        use_tf32(cfg)
        models = []
        for i, run in enumerate(cfgs):  # each run's initial weights, drawn from its seed as alone
            seed_everything(run.seed)
            models.append(get_spec(cfg.arch).build(
                in_channels=data.in_channels, num_classes=len(data.classes), image_size=data.image_size))
            if resumed is not None:
                models[-1].load_state_dict(resumed[i].model.state_dict())
        stacked = stack_models(models)
        self.memory_format = policy.memory_format(stacked)
        self.model: nn.Module = stacked.to(device=cfg.device, memory_format=self.memory_format)
        policy.prepare_stack(self.model, self.memory_format)
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.optimizer = make_optimizer(cfg, self.model.parameters(), policy.optimizer_options)
        self.scheduler = make_scheduler(cfg, self.optimizer)
        if resumed is not None:
            stack_optimizer_states(self.optimizer, self.model, [t.optimizer for t in resumed],
                                   [t.model for t in resumed])
            match_parameter_layouts(self.optimizer)
            if self.scheduler is not None:
                self.scheduler.load_state_dict(resumed[0].scheduler.state_dict())
        # On CUDA a stack's full batches replay one captured step, as a solo run's do: eager,
        # a step's hundred launches, not the GPU, would set the pace (docs/performance.md).
        self.graphed = policy.graph([self.optimizer], stacked_runs=self.runs)

    def batch(self, data: PreparedData, split: Split, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(runs, b) indices -> the runs' images side by side, (b, runs*C, H, W), and (runs, b) labels."""
        images = data.normalize(split.images.index_select(0, index.flatten()))
        x = _side_by_side(images.view(*index.shape, *images.shape[1:]))
        return x.contiguous(memory_format=self.memory_format), split.labels.index_select(0, index.flatten())

    def train_batch(self, data: PreparedData, split: Split, index: torch.Tensor,
                    loss_sums: torch.Tensor, hits: torch.Tensor) -> None:
        """One step of every run on its batch, ``index[i]`` for run i; adds to the (runs,) sums."""
        runs, b = index.shape
        x, y = self.batch(data, split, index)
        with autocast(self.cfg):
            logits = self.forward(x)  # (runs, b, classes)
            losses = F.cross_entropy(logits.reshape(runs * b, -1).float(), y, reduction="none")
            losses = losses.view(runs, b).mean(1)
        self.optimizer.zero_grad(set_to_none=True)
        # The sum's gradient in each run's weights is that run's own mean loss's gradient.
        losses.sum().backward()
        self.optimizer.step()
        loss_sums += losses.detach().double() * b
        hits += (logits.detach().argmax(2) == y.view(runs, b)).sum(1)

    def run(self, data: PreparedData, orders: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run i trains on ``data.train`` in batches of ``orders[i]``; (runs,) loss sums and hits."""
        self.model.train()
        if self.graphed is not None:
            loss_sums, hits = self.graphed.run([self.train_batch], data, orders)
        else:
            loss_sums = torch.zeros(self.runs, dtype=torch.float64, device=orders.device)
            hits = torch.zeros(self.runs, dtype=torch.int64, device=orders.device)
            for start in range(0, orders.shape[1], self.cfg.batch_size):
                self.train_batch(data, data.train, orders[:, start:start + self.cfg.batch_size], loss_sums, hits)
        if self.scheduler is not None:
            self.scheduler.step()
        return loss_sums, hits


def train_stack(cfgs: list[RunConfig], data: PreparedData, on_epoch: EpochCallback | None = None,
                plans: list[CheckpointPlan | None] | None = None) -> list[TrainOutcome]:
    """Train runs that differ only in seed as one stack; their outcomes, in order.

    ``plans``: each run's checkpoint plan (or None: it saves none).
    """
    assert len({cfg.replace(seed=0) for cfg in cfgs}) == 1, "a stack's runs differ only in seed"
    plans = plans or [None] * len(cfgs)
    started = time.perf_counter()
    together = ",".join(str(cfg.seed) for cfg in cfgs)
    try:
        trainings, loops = _own_runs(cfgs, data, started, on_epoch, plans, together)
    except CheckpointUnusable:
        loops = None
    if loops is None:  # the runs cannot go on together from their checkpoints: all start over
        fresh = [dataclasses.replace(plan, resume=False) if plan else None for plan in plans]
        trainings, loops = _own_runs(cfgs, data, started, on_epoch, fresh, together)
    steps = StackSteps(cfgs, data, resumed=trainings if loops[0].records else None)
    models = [training.model for training in trainings]
    saving = any(loop.checkpoint is not None for loop in loops)

    def after_steps() -> None:
        # each run's own model takes its slice, to be evaluated, and its optimizer its state, to be saved
        unstack_into(steps.model, models)
        if saving:
            unstack_optimizer_into(steps.optimizer, steps.model, [t.optimizer for t in trainings], models)

    train_together(loops, cfgs[0].device, lambda orders: steps.run(data, orders), after_steps)
    for loop in loops:
        loop.outcome.stacked_with = together
    return [loop.outcome for loop in loops]


def _own_runs(cfgs: list[RunConfig], data: PreparedData, started: float, on_epoch: EpochCallback | None,
              plans: list[CheckpointPlan | None], together: str) -> tuple[list[Training], list[RunLoop] | None]:
    """Each run's own training (its model, for evaluation) and loop, restored from its checkpoint
    where it has one; no loops when the runs' checkpoints left them at different epochs."""
    trainings = [build_training(cfg, data) for cfg in cfgs]
    for training in trainings:
        training.graphed = None  # the stack steps them
        # A step with no gradients changes nothing; it tells the run's scheduler, which its loop
        # steps each epoch, that the stack's steps are its optimizer's.
        training.optimizer.step()
    shared_due: dict[int, bool] = {}
    hooks = [Checkpointer(plan, cfg.run_id(), cfg.device, stack=together, shared_due=shared_due) if plan else None
             for cfg, plan in zip(cfgs, plans, strict=True)]
    loops = [RunLoop(training, data, started, on_epoch, hook, seed_group=len(cfgs), step_mode=STACKED)
             for training, hook in zip(trainings, hooks, strict=True)]
    if len({len(loop.records) for loop in loops}) > 1:
        return trainings, None
    return trainings, loops
