"""aten's 2x2 max-pool against bench/fast/max_pool.py's kernels, forward and backward, one thread.

The shapes are the pooled maps of ``lenet-12`` (64x6x24x24, 64x12x8x8) and ``bn-convnet``
(64x32x14x14) at batch 64, in channels_last as the CPU training path runs them.  In isolation
the maps stay in cache; inside a training step they do not, which is where the smaller index
(one byte, not eight) and the single write of the gradient pay most, so ``bench perf``'s whole
steps are the measure that decides (docs/performance.md).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.config import RunConfig
from bench.fast import speedups
from bench.fast.max_pool import ChannelsLastMaxPool2x2

SHAPES = [(64, 6, 24, 24), (64, 12, 8, 8), (64, 32, 14, 14)]
POOLS = {"aten": lambda: nn.MaxPool2d(2), "cnnbench": ChannelsLastMaxPool2x2}


@pytest.mark.parametrize("pool", list(POOLS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_max_pool_forward_backward(benchmark, pool, shape):
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_()
    module = POOLS[pool]()
    grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2).contiguous(
        memory_format=torch.channels_last)

    def forward_backward():
        module(x).backward(grad)

    with speedups(RunConfig(arch="lenet-12", dataset="digits")).threads():  # a CPU run's thread count
        benchmark.pedantic(forward_backward, warmup_rounds=5, rounds=200, iterations=1)
