"""cnnbench's own training path, timed step for step like the recipe.

It drives ``bench.train``'s ``Training`` - the object ``train_run`` trains with - so what
is timed here is what a benchmark run executes, memory-format rule included.
"""

from __future__ import annotations

import time

import torch

from ..config import RunConfig
from ..devices import synchronize
from ..seeding import data_order_generator
from ..train import PreparedData, Training, build_training, run_threads


def native_training(cfg: RunConfig, data: PreparedData) -> Training:
    return build_training(cfg, data)


class NativeSession:
    """cnnbench's ``Training`` for ``cfg``, timed in blocks of steps (or epochs).

    Every block runs with the thread count a run uses (``run_threads``: one on CPU), as a
    grid trains; the process's own setting is restored in between.
    """

    def __init__(self, cfg: RunConfig, data: PreparedData) -> None:
        self.cfg, self.data = cfg, data
        with run_threads(cfg.device):
            self.training = native_training(cfg, data)
        self.generator = data_order_generator(cfg.seed)
        self.pending = torch.empty(0, dtype=torch.int64)

    def _order(self, count: int) -> torch.Tensor:
        """The next ``count`` indices of back-to-back seeded epoch permutations."""
        while len(self.pending) < count:
            self.pending = torch.cat([self.pending, torch.randperm(len(self.data.train), generator=self.generator)])
        order, self.pending = self.pending[:count], self.pending[count:]
        return order.to(self.cfg.device)

    def warm_up(self, steps: int) -> None:
        with run_threads(self.cfg.device):
            self.training.run_steps(self.data, self._order(steps * self.cfg.batch_size))

    def block(self, steps: int | None) -> tuple[int, float]:
        """Images and seconds of ``steps`` steps, or of one whole epoch if None."""
        count = len(self.data.train) if steps is None else steps * self.cfg.batch_size
        order = self._order(count)
        with run_threads(self.cfg.device):
            synchronize(self.cfg.device)
            t0 = time.perf_counter()
            loss_sum, _hits = self.training.run_steps(self.data, order)
            synchronize(self.cfg.device)
            seconds = time.perf_counter() - t0
        if not torch.isfinite(loss_sum):  # read once, after timing
            raise RuntimeError(f"{self.cfg.arch}: training diverged during the perf measurement")
        return count, seconds
