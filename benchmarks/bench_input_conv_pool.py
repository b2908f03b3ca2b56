"""A stack's first convolution and max-pool, forward and backward, one thread: oneDNN's grouped
convolution with ``ChannelsLastMaxPool2x2`` against ``bench/fast/input_conv_pool.py``.

The shapes are the first layers of stacks of four ``lenet-12`` runs (5x5, 28x28 input) and
four ``lenet5`` runs (5x5, padding 2) at batch 64, in channels_last as a CPU stack runs them.
``bench perf --stack-seeds`` times whole steps, which is the measure that decides
(docs/performance.md).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.config import RunConfig
from bench.fast import speedups
from bench.fast.input_conv_pool import InputConvMaxPool
from bench.fast.max_pool import ChannelsLastMaxPool2x2

RUNS, PER_RUN, BATCH = 4, 6, 64
LAYERS = {"lenet-12": 0, "lenet5": 2}  # padding of each network's first convolution


@pytest.mark.parametrize("layer", ["onednn", "cnnbench"])
@pytest.mark.parametrize("arch", list(LAYERS))
def test_input_conv_pool_forward_backward(benchmark, layer, arch):
    conv = nn.Conv2d(RUNS, RUNS * PER_RUN, 5, padding=LAYERS[arch], groups=RUNS).to(memory_format=torch.channels_last)
    pool = ChannelsLastMaxPool2x2()
    fused = InputConvMaxPool(conv)
    x = torch.randn(BATCH, RUNS, 28, 28).contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(fused(x))

    def forward_backward():
        out = fused(x) if layer == "cnnbench" else pool(conv(x))
        out.backward(grad)

    with speedups(RunConfig(arch=arch, dataset="digits")).threads():  # a CPU run's thread count
        benchmark.pedantic(forward_backward, warmup_rounds=5, rounds=200, iterations=1)
