"""Seeds of one configuration trained together: on CUDA, one graph with a branch per run.

A grid's runs of one architecture differ only in their seed.  On a GPU each of these small
nets leaves most of the chip idle, and processes sharing a GPU take turns instead of running
side by side.  So the local executor hands a CUDA worker up to ``--seeds-together`` such runs
at once (``bench.planner``), and their full batches step as one captured CUDA
graph with one branch per run, each on a stream of its own: the GPU runs them side by side.

A branch is the run's own step - its kernels, data order, weights, optimizer and BatchNorm
statistics - so every run gives the bits it gives alone (tests/test_cuda.py; on CPU, where
the group steps its runs one after another, tests/test_seed_group.py).  Dropout is the
exception: its masks come from the device's one random generator, which runs stepped
together would share, so the planner has runs with dropout train alone.  Each record says
how many runs it was trained with (``seed_group``).
"""

from __future__ import annotations

import time

import torch

from ..checkpoint import Checkpointer
from ..config import RunConfig
from ..datasets.prepared import PreparedData
from ..records import TrainOutcome
from ..train import EAGER, EpochCallback, RunLoop, Training, build_training, train_run, train_together


class GroupSteps:
    """The steps of several runs' epochs at once: one CUDA graph with a branch per run where
    their steps can be captured (``cuda_graph``), else each run's own steps in turn."""

    def __init__(self, trainings: list[Training]) -> None:
        self.trainings = trainings
        self.graphed = trainings[0].policy.graph([t.optimizer for t in trainings])
        self.step_mode = self.graphed.step_mode if self.graphed is not None else EAGER

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
    times are the group's (each run's epoch took that long in wall time).  Which runs may
    form a group (no dropout, steps the policy captures) ``bench.planner`` decided.
    """
    checkpoints = checkpoints or [None] * len(cfgs)
    assert len({cfg.replace(seed=0) for cfg in cfgs}) == 1, "a seed group differs only in seed"
    if len(cfgs) == 1:
        return [train_run(cfgs[0], data, on_epoch, checkpoints[0])]
    started = time.perf_counter()
    trainings = [build_training(cfg, data) for cfg in cfgs]
    for training in trainings:
        training.graphed = None  # the group steps them (its own graph), not each run alone
    steps = GroupSteps(trainings)
    loops = [RunLoop(training, data, started, on_epoch, checkpoint, seed_group=len(trainings),
                     step_mode=steps.step_mode)
             for training, checkpoint in zip(trainings, checkpoints, strict=True)]
    train_together(loops, trainings[0].cfg.device, lambda orders: steps.run(data, orders))
    return [loop.outcome for loop in loops]
