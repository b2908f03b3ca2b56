"""A stack's second convolution and max-pool, forward and backward, one thread: oneDNN's grouped
convolution with ``ChannelsLastMaxPool2x2`` against ``bench/fast/conv_pool.py``.

The shapes are the second layers of stacks of four ``lenet-12`` runs (6 -> 12 channels, 12x12
maps) and four ``lenet5`` runs (6 -> 16, 14x14) at batch 64, in channels_last as a CPU stack
runs them, with a gradient of ReLU-like zeros.  ``bench perf --stack-seeds`` times whole steps,
which is the measure that decides (docs/performance.md).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.config import RunConfig
from bench.fast import speedups
from bench.fast.conv_pool import ConvMaxPool
from bench.fast.max_pool import ChannelsLastMaxPool2x2

RUNS, PER_IN, BATCH = 4, 6, 64
LAYERS = {"lenet-12": (12, 12), "lenet5": (16, 14)}  # output channels per run, map size


@pytest.mark.parametrize("layer", ["onednn", "cnnbench"])
@pytest.mark.parametrize("arch", list(LAYERS))
def test_conv_pool_forward_backward(benchmark, layer, arch):
    per_out, size = LAYERS[arch]
    conv = nn.Conv2d(RUNS * PER_IN, RUNS * per_out, 5, groups=RUNS).to(memory_format=torch.channels_last)
    pool = ChannelsLastMaxPool2x2()
    fused = ConvMaxPool(conv)
    x = torch.randn(BATCH, RUNS * PER_IN, size, size).relu().contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = fused(x)
    grad = torch.randn_like(out) * (torch.rand_like(out) > 0.15)

    def forward_backward():
        y = fused(x) if layer == "cnnbench" else pool(conv(x))
        torch.autograd.grad(y, [x, conv.weight, conv.bias], grad)

    with speedups(RunConfig(arch=arch, dataset="digits")).threads():  # a CPU run's thread count
        benchmark.pedantic(forward_backward, warmup_rounds=5, rounds=200, iterations=1)
