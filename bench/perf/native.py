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


def epoch_order(n: int, count: int, seed: int, device: str) -> torch.Tensor:
    """``count`` indices: seeded permutations of ``range(n)`` back to back, as epochs give."""
    generator = data_order_generator(seed)
    parts, have = [], 0
    while have < count:
        parts.append(torch.randperm(n, generator=generator))
        have += n
    return torch.cat(parts)[:count].to(device)


def time_native(
    cfg: RunConfig, data: PreparedData, *, warmup: int, steps: int | None,
) -> tuple[Training, int, float]:
    """Images trained and seconds taken: ``steps`` steps, or one whole epoch if None.

    With the thread count a run uses (``run_threads``: one on CPU), as a grid trains.
    """
    with run_threads(cfg.device):
        return _time_native(cfg, data, warmup=warmup, steps=steps)


def _time_native(cfg: RunConfig, data: PreparedData, *, warmup: int, steps: int | None):
    training = native_training(cfg, data)
    n, batch = len(data.train), cfg.batch_size
    count = n if steps is None else steps * batch
    order = epoch_order(n, warmup * batch + count, cfg.seed, cfg.device)
    training.run_steps(data, order[:warmup * batch])
    synchronize(cfg.device)
    t0 = time.perf_counter()
    loss_sum, _hits = training.run_steps(data, order[warmup * batch:])
    synchronize(cfg.device)
    seconds = time.perf_counter() - t0
    if not torch.isfinite(loss_sum):  # read once, after timing
        raise RuntimeError(f"{cfg.arch}: training diverged during the perf measurement")
    return training, count, seconds
