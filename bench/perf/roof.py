"""The machine's FLOP roof: what a large fp32 matrix multiply reaches, measured now.

Measured in the same process and run as the training timings, so both see the same
threads, clocks and neighbours (on a shared machine the roof moves with the load).
"""

from __future__ import annotations

import time

import torch

from ..devices import synchronize

MATMUL_SIZE = 2048  # 2 * 2048^3 = 17 GFLOP: long enough to time, short on a small CPU
REPEATS = 5


def matmul_flops_per_s(device: str = "cpu", size: int = MATMUL_SIZE, repeats: int = REPEATS) -> float:
    """Best-of-``repeats`` FLOP/s of one ``size`` x ``size`` fp32 matmul on ``device``."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)  # warm-up: thread pool, BLAS dispatch, GPU clocks
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best
