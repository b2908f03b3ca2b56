"""Seeds of one configuration trained together: on CUDA, one graph with a branch per run.

A grid's runs of one architecture differ only in their seed.  On a GPU each of these small
nets leaves most of the chip idle, and processes sharing a GPU take turns instead of running
side by side.  So the local executor hands a CUDA worker up to ``--seeds-together`` such runs
at once (``bench.tasks.pack_seed_groups``), and their full batches step as one captured CUDA
graph with one branch per run, each on a stream of its own: the GPU runs them side by side.

A branch is the run's own step - its kernels, data order, weights, optimizer and BatchNorm
statistics - so every run gives the bits it gives alone (tests/test_cuda.py; on CPU, where
the group steps its runs one after another, tests/test_seed_group.py).  Dropout is the
exception: its masks come from the device's one random generator, which runs stepped
together would share, so runs with dropout train alone.  Each record says how many runs it
was trained with (``seed_group``).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..checkpoint import Checkpointer
from ..config import RunConfig
from ..datasets.prepared import PreparedData
from ..records import TrainOutcome
from ..train import EAGER, EpochCallback, RunLoop, Training, build_training, train_run, train_together
from .cuda_graph import CAPTURED, GraphedSteps, graph_refusal

# Every module that draws a random mask while training (torch's dropout family).
DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def group_refusal(model: nn.Module) -> str | None:
    """Why runs of ``model``'s architecture must train alone, or None when they may share steps."""
    if any(isinstance(m, DROPOUT) and m.p > 0 for m in model.modules()):
        return "dropout masks come from the device's one random generator, which grouped runs would share"
    return None


class GroupSteps:
    """The steps of several runs' epochs at once: one CUDA graph with a branch per run where
    their steps can be captured (``cuda_graph``), else each run's own steps in turn."""

    def __init__(self, trainings: list[Training]) -> None:
        self.trainings = trainings
        cfg = trainings[0].cfg
        self.graphed = GraphedSteps([t.optimizer for t in trainings], cfg.batch_size, torch.device(cfg.device)) \
            if graph_refusal(cfg) is None else None
        self.step_mode = CAPTURED if self.graphed is not None else EAGER

    def run(self, data: PreparedData, orders: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run i trains on ``data.train`` in batches of ``orders[i]``; (runs,) loss sums and hits."""
        if self.graphed is not None:
            return self.graphed.run([t.train_batch for t in self.trainings], data, orders)
        sums = [t.run_steps(data, order) for t, order in zip(self.trainings, orders, strict=True)]
        return torch.stack([loss for loss, _ in sums]), torch.stack([hits for _, hits in sums])


def train_group(
    cfgs: list[RunConfig], data: PreparedData, on_epoch: EpochCallback | None = None,
    checkpoints: list[Checkpointer | None] | None = None,
) -> list[TrainOutcome]:
    """Train runs that differ only in seed together; their outcomes, in order.

    Each outcome is what ``train_run`` gives for that config alone, bit for bit; the epoch
    times are the group's (each run's epoch took that long in wall time).
    """
    checkpoints = checkpoints or [None] * len(cfgs)
    assert len({cfg.replace(seed=0) for cfg in cfgs}) == 1, "a seed group differs only in seed"
    started = time.perf_counter()
    trainings = [build_training(cfg, data) for cfg in cfgs]
    if len(cfgs) == 1 or group_refusal(trainings[0].model) is not None:
        del trainings
        return [train_run(cfg, data, on_epoch, checkpoint) for cfg, checkpoint in zip(cfgs, checkpoints, strict=True)]
    for training in trainings:
        training.graphed = None  # the group steps them (its own graph), not each run alone
    steps = GroupSteps(trainings)
    loops = [RunLoop(training, data, started, on_epoch, checkpoint, seed_group=len(trainings),
                     step_mode=steps.step_mode)
             for training, checkpoint in zip(trainings, checkpoints, strict=True)]
    train_together(loops, trainings[0].cfg.device, lambda orders: steps.run(data, orders))
    return [loop.outcome for loop in loops]
