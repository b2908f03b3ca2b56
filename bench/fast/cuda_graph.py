"""On CUDA, full training batches replay one captured CUDA graph instead of ~100 launches.

These small nets are launch-bound on a GPU: a step is about a hundred tiny kernels, each a
few microseconds of GPU work behind more of Python and launch overhead.  So the step of a
full batch is captured once and replayed: one copy of the batch's indices and one launch.

Replay runs the kernels the eager step runs, on the same data, so a run gives the same bits
either way (``tests/test_cuda.py`` trains runs both ways and compares them).  What that needs:

- **Warm-up.** The first ``WARMUP_STEPS`` full batches step eagerly, on a side stream as
  torch's CUDA-graph notes ask, so the optimizer's state exists and the libraries have set
  up their workspaces before anything is captured.
- **A fused optimizer** (``adam``, ``sgd``): its step reads only device tensors.  Adam's
  ``capturable`` flag, which capture insists on, is set for the capture alone: the fused
  kernel ignores it.  The foreach implementations compute differently when capturable, so
  those runs step eagerly.
- **The learning rate is baked into the graph**: a schedule that changes it re-captures.
- The last, shorter batch of an epoch steps eagerly (a graph has fixed shapes).

Dropout draws from torch's graph-safe generator: a replay advances the CUDA RNG as the eager
step would.  BatchNorm's running statistics are updated in place, as eagerly.
``CNNBENCH_CUDA_GRAPHS=0`` turns capture off (every step eager).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from ..config import RunConfig

WARMUP_STEPS = 3
ENV_SWITCH = "CNNBENCH_CUDA_GRAPHS"
CAPTURED = "cuda-graph"

# (data, split, index, loss_sum, hits) -> None: ``bench.train.Training.train_batch``, the same
# function eagerly and under capture.  Passed to each call, not kept: a kept bound method would
# make a cycle (Training -> GraphedSteps -> Training), freed whenever the garbage collector
# runs, so a finished run's graph would go at an unpredictable moment.
TrainBatch = Callable[..., None]


def graph_refusal(cfg: RunConfig) -> str | None:
    """Why ``cfg``'s steps cannot be replayed from a CUDA graph, or None when they can."""
    if torch.device(cfg.device).type != "cuda":
        return "not a CUDA run"
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return f"turned off by {ENV_SWITCH}=0"
    if cfg.compile:
        return "torch.compile runs its own code"
    if cfg.optimizer_impl != "fused" or cfg.optimizer not in ("adam", "sgd"):
        return "only torch's fused optimizers (adam, sgd) step the same bits when captured"
    if cfg.dtype != "float32":
        return "autocast caches its casts, which a graph would freeze"
    return None


class GraphedSteps:
    """Training steps on CUDA: eager warm-up, then replays of one captured step.

    It steps one run, or several runs of one architecture together (``bench.drivers.seed_group``):
    then the graph holds one branch per run, each captured on a stream of its own, so the
    GPU runs the branches side by side.  A branch is the run's own step, the kernels it runs
    alone, so each run gets the bits it gets alone.  Or it steps a stack of ``stacked_runs``
    seeds (``bench.drivers.stacked_training``): one optimizer, one step over all their batches.
    """

    step_mode = CAPTURED

    def __init__(self, optimizers: list[torch.optim.Optimizer], batch_size: int, device: torch.device,
                 stacked_runs: int = 0) -> None:
        self.optimizers = optimizers
        self.batch_size = batch_size
        self.stacked = stacked_runs > 0
        assert not self.stacked or len(optimizers) == 1, "a stack steps with one optimizer"
        runs = stacked_runs or len(optimizers)
        # The graph reads each run's batch indices from, and adds to its sums in, these
        # tensors: a graph's memory addresses are fixed when it is captured.
        self.index = torch.zeros(runs, batch_size, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros(runs, dtype=torch.float64, device=device)
        self.hits = torch.zeros(runs, dtype=torch.int64, device=device)
        branches = len(optimizers)
        self.streams = [torch.cuda.Stream(device=device) for _ in range(branches)] if branches > 1 else []
        self.warm_steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.captured_for: tuple | None = None
        self.captures = 0
        self.replays = 0

    def run(self, train_batches: list[TrainBatch], data, orders: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Train run i on ``data.train`` in batches of ``orders[i]``; per-run loss sums and hits.

        ``orders``: (runs, n) indices on the device.  The sums come back as (runs,) tensors.
        """
        assert len(train_batches) == len(self.optimizers) and len(orders) == len(self.index)
        self.loss_sum.zero_()
        self.hits.zero_()
        size = self.batch_size
        for start in range(0, orders.shape[1], size):
            index = orders[:, start:start + size]
            if index.shape[1] < size:
                self._eager(train_batches, data, index)
            elif self.warm_steps < WARMUP_STEPS:
                self._warm_up(train_batches, data, index)
            else:
                self._replay(train_batches, data, index)
        # Copies: the next call zeroes these accumulators while the caller may still read.
        return self.loss_sum.clone(), self.hits.clone()

    def _eager(self, train_batches: list[TrainBatch], data, index: torch.Tensor) -> None:
        if self.stacked:  # one step for every run of the stack: (runs, batch) indices, (runs,) sums
            train_batches[0](data, data.train, index, self.loss_sum, self.hits)
            return
        for i, train_batch in enumerate(train_batches):
            train_batch(data, data.train, index[i], self.loss_sum[i], self.hits[i])

    def _warm_up(self, train_batches: list[TrainBatch], data, index: torch.Tensor) -> None:
        side = torch.cuda.Stream(device=index.device)
        side.wait_stream(torch.cuda.current_stream(index.device))
        with torch.cuda.stream(side):
            self._eager(train_batches, data, index)
        torch.cuda.current_stream(index.device).wait_stream(side)
        self.warm_steps += 1

    def _replay(self, train_batches: list[TrainBatch], data, index: torch.Tensor) -> None:
        # What the graph depends on beyond its own tensors: the dataset's storage and the
        # learning rates baked into the optimizers' kernels.
        key = (data.train.images, data.train.labels,
               tuple(float(group["lr"]) for optimizer in self.optimizers for group in optimizer.param_groups))
        if self.graph is None or not _same_key(key, self.captured_for):
            self._capture(train_batches, data)
            self.captured_for = key
        self.index.copy_(index)
        self.graph.replay()
        self.replays += 1

    def _capture(self, train_batches: list[TrainBatch], data) -> None:
        if self.graph is not None:  # a new learning rate: the old graph may still be running
            torch.cuda.synchronize(self.index.device)
            self.graph = None  # release its memory pool before the new capture takes one
        groups = [group for optimizer in self.optimizers for group in optimizer.param_groups]
        flags = [group.get("capturable") for group in groups]
        for group in groups:
            if "capturable" in group:
                group["capturable"] = True
        # Gradients must not exist at capture: the captured backward then writes fresh ones
        # (in the graph's pool) on every replay, as an eager step after zero_grad(set_to_none).
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                if not self.streams:
                    self._eager(train_batches, data, self.index)
                else:  # fork one branch per run from the capture stream, then join them all
                    origin = torch.cuda.current_stream(self.index.device)
                    for i, (train_batch, stream) in enumerate(zip(train_batches, self.streams, strict=True)):
                        stream.wait_stream(origin)
                        with torch.cuda.stream(stream):
                            train_batch(data, data.train, self.index[i], self.loss_sum[i], self.hits[i])
                    for stream in self.streams:
                        origin.wait_stream(stream)
        finally:
            for group, flag in zip(groups, flags, strict=True):
                if flag is not None:
                    group["capturable"] = flag
        self.graph = graph
        self.captures += 1


def _same_key(a: tuple, b: tuple | None) -> bool:
    return b is not None and a[0] is b[0] and a[1] is b[1] and a[2] == b[2]
