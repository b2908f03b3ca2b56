"""A 2x2 / stride-2 average pool for CUDA whose backward is one broadcast copy, bit for bit aten's.

Why: seeds stepped side by side on a GPU (``seed_group``) contend for its SMs, and aten's
avg-pool backward, a thread per *input* value looping over the windows that may cover it,
filled them longest.  Here the pooled gradient (a quarter the size) is divided by 4, and one
copy broadcasts it over each window.

Bit for bit: with the window equal to the stride and no padding, exactly one window covers
each input value, and aten computes its gradient as ``0 + g / 4`` in float32.  The same
here: ``g / 4`` then ``+ 0.0`` (which turns a -0.0 into +0.0, as aten's sum from zero does).
``tests/test_avg_pool.py`` compares gradients on values full of signed zeros, infinities and
NaN; ``tests/test_cuda.py`` trains with and without it and compares every bit.

Only float32, 4-D, NCHW-contiguous maps of even height and width, on CUDA, with a gradient
to compute, take the path; anything else (the CPU, odd sizes such as dilated's 9x9,
evaluation) runs ``nn.AvgPool2d``'s own forward and backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .pool_swap import swap_plain_2x2


class AvgPool2x2(torch.autograd.Function):
    """aten's 2x2 average pool forward; its backward as one broadcast copy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2)  # aten's forward: the output is unchanged

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        n, c, h, w = grad_out.shape
        share = grad_out.div(4).add_(0.0)  # aten's 0 + g / 4, on the quarter-size gradient
        return share[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


class BroadcastAvgPool2x2(nn.AvgPool2d):
    """``nn.AvgPool2d(2)``, with the backward above where it applies."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.is_cuda and x.dtype == torch.float32 and x.dim() == 4 and x.requires_grad
                and torch.is_grad_enabled() and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0
                and x.is_contiguous()):
            return AvgPool2x2.apply(x)
        return super().forward(x)


def use_broadcast_avg_pool(model: nn.Module) -> int:
    """Swap every plain ``nn.AvgPool2d(2)`` in ``model`` for the one above; returns how many."""
    return swap_plain_2x2(model, nn.AvgPool2d, BroadcastAvgPool2x2)
