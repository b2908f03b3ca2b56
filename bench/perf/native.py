"""cnnbench's own training path, timed step for step like the recipe.

It drives ``bench.train``'s ``Training`` - the object ``train_run`` trains with - so what
is timed here is what a benchmark run executes, memory-format rule included.
"""

from __future__ import annotations

import time

import torch

from ..config import RunConfig
from ..datasets.prepared import PreparedData
from ..devices import synchronize
from ..drivers.seed_group import GroupSteps
from ..seeding import data_order_generator
from ..train import build_training, run_policy


class Orders:
    """Back-to-back seeded epoch permutations of one run, as a run draws them."""

    def __init__(self, seed: int, n: int) -> None:
        self.generator, self.n = data_order_generator(seed), n
        self.pending = torch.empty(0, dtype=torch.int64)

    def take(self, count: int) -> torch.Tensor:
        while len(self.pending) < count:
            self.pending = torch.cat([self.pending, torch.randperm(self.n, generator=self.generator)])
        order, self.pending = self.pending[:count], self.pending[count:]
        return order


class SeedsSession:
    """Several seeds of one config timed together; ``_run(count)`` trains each on ``count``
    images and returns their (runs,) loss sums.  A block's images are all the runs' images."""

    cfg: RunConfig
    data: PreparedData
    runs: int
    step_mode: str  # how the runs step together

    def _run(self, count: int) -> torch.Tensor:
        raise NotImplementedError

    def warm_up(self, steps: int) -> None:
        self._run(steps * self.cfg.batch_size)

    def block(self, steps: int | None) -> tuple[int, float]:
        count = len(self.data.train) if steps is None else steps * self.cfg.batch_size
        synchronize(self.cfg.device)
        t0 = time.perf_counter()
        loss_sums = self._run(count)
        synchronize(self.cfg.device)
        seconds = time.perf_counter() - t0
        if not torch.isfinite(loss_sums).all():
            raise RuntimeError(f"{self.cfg.arch}: training diverged during the perf measurement")
        return count * self.runs, seconds


class NativeSession:
    """cnnbench's ``Training`` for ``cfg``, timed in blocks of steps (or epochs).

    Every block runs with the thread count a run uses (one on CPU), as a grid trains; the
    process's own setting is restored in between.
    """

    def __init__(self, cfg: RunConfig, data: PreparedData, *, own_graph: bool = True) -> None:
        self.cfg, self.data = cfg, data
        self.training = build_training(cfg, data)
        if not own_graph:
            self.training.graphed = None  # a seed group steps it
        self.orders = Orders(cfg.seed, len(data.train))

    def order(self, count: int) -> torch.Tensor:
        """The next ``count`` indices of back-to-back seeded epoch permutations."""
        return self.orders.take(count).to(self.cfg.device)

    def warm_up(self, steps: int) -> None:
        with self.training.policy.threads():
            self.training.run_steps(self.data, self.order(steps * self.cfg.batch_size))

    def block(self, steps: int | None) -> tuple[int, float]:
        """Images and seconds of ``steps`` steps, or of one whole epoch if None."""
        count = len(self.data.train) if steps is None else steps * self.cfg.batch_size
        order = self.order(count)
        with self.training.policy.threads():
            synchronize(self.cfg.device)
            t0 = time.perf_counter()
            loss_sum, _hits = self.training.run_steps(self.data, order)
            synchronize(self.cfg.device)
            seconds = time.perf_counter() - t0
        if not torch.isfinite(loss_sum):  # read once, after timing
            raise RuntimeError(f"{self.cfg.arch}: training diverged during the perf measurement")
        return count, seconds


class StackedSession(SeedsSession):
    """``runs`` seeds of ``cfg`` trained as a stack (``--stack-seeds``), as a grid's worker does:
    on a GPU one stack, on a CPU core parts of ``CPU_STACK_PART`` one after another.  Timed like
    ``NativeSession``; a block's images are all the runs' images."""

    def __init__(self, cfg: RunConfig, data: PreparedData, runs: int) -> None:
        from ..drivers.stacked import STACKED
        from ..drivers.stacked_training import StackSteps
        from ..planner import stack_part

        self.cfg, self.data, self.runs = cfg, data, runs
        cfgs = [cfg.replace(seed=cfg.seed + i, stacked=True) for i in range(runs)]
        part = stack_part(cfg.device, runs)
        self.parts = [StackSteps(cfgs[i:i + part], data) for i in range(0, runs, part)]
        self.orders = [Orders(c.seed, len(data.train)) for c in cfgs]
        self.step_mode = STACKED

    def _run(self, count: int) -> torch.Tensor:
        orders = torch.stack([o.take(count) for o in self.orders]).to(self.cfg.device)
        with run_policy(self.cfg).threads():
            sums, first = [], 0
            for part in self.parts:
                loss_sums, _hits = part.run(self.data, orders[first:first + part.runs])
                sums.append(loss_sums)
                first += part.runs
        return torch.cat(sums)


class SeedGroupSession(SeedsSession):
    """``runs`` seeds of ``cfg`` (seed, seed + 1, ...) stepped together as a seed group.

    Their steps run as a grid's worker runs them (``bench.drivers.seed_group.GroupSteps``: on CUDA one
    graph with a branch per run, on CPU one run after another).  Timed like
    ``NativeSession``: a block is the same number of steps for every run, and its images are
    all the runs' images.
    """

    def __init__(self, cfg: RunConfig, data: PreparedData, runs: int) -> None:
        self.cfg, self.data, self.runs = cfg, data, runs
        self.sessions = [NativeSession(cfg.replace(seed=cfg.seed + i), data, own_graph=False) for i in range(runs)]
        self.steps = GroupSteps([s.training for s in self.sessions])
        self.step_mode = self.steps.step_mode

    def _run(self, count: int) -> torch.Tensor:
        orders = torch.stack([s.order(count) for s in self.sessions])
        with self.sessions[0].training.policy.threads():
            return self.steps.run(self.data, orders)[0]
