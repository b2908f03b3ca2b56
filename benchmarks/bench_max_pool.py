"""aten's 2x2 max-pool against bench/max_pool.py's kernels, forward and backward, one thread.

The shapes are the pooled maps of ``lenet-12`` (64x6x24x24, 64x12x8x8) and ``bn-convnet``
(64x32x14x14) at batch 64, in channels_last as the CPU training path runs them.  Measured in
isolation the maps stay in cache; inside a training step they do not, which is where the
smaller index (one byte, not eight) and the single write of the gradient pay most.  Here
the small 64x12x8x8 map came out slower (92 us against 79: the Python autograd Function
costs ~20 us a call), yet whole ``lenet-12`` steps were faster with it on the kernels than
on aten's (17,485-17,488 images/s against 17,155-17,230, one thread), so every 2x2 pool
takes them.  ``bench perf`` times whole steps.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.max_pool import ChannelsLastMaxPool2x2
from bench.train import run_threads

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

    with run_threads("cpu"):
        benchmark.pedantic(forward_backward, warmup_rounds=5, rounds=200, iterations=1)
