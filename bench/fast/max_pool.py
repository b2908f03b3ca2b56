"""A 2x2 / stride-2 max-pool for channels_last CPU tensors, bit for bit aten's, at less traffic.

Why: aten's max-pool is memory-bound on these small maps.  Its forward writes an int64 index
per output value (twice the pooled input's bytes) and its backward first zero-fills the
whole input gradient, then scatters into it.  Here the forward keeps a one-byte code per
output value (which of the four window positions won), and the backward writes every
input-gradient value once.

Bit for bit: the same winner as aten's channels_last kernel (a value wins if it is greater
than the running max, or NaN; scanned row by row, so the first of equal maxima and the last
NaN win; a window of -inf keeps its first position), and the gradient is computed as aten's
scatter does, ``0.0 + g`` (so a -0.0 gradient becomes +0.0 there too).
``tests/test_max_pool.py`` compares outputs, gradients and strides with aten's on values full
of ties, NaN, infinities and signed zeros, and ``tests/test_fast_path.py`` trains with it
against a plain eager loop.

Only float32, 4-D, channels_last maps with more than one channel, on the CPU, take this
path; anything else (bf16 autocast, NCHW, CUDA) runs ``nn.MaxPool2d``'s own forward.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import nn
from torch.autograd.function import once_differentiable

from .pool_swap import swap_plain_2x2

# Explicit signatures compile when this module is imported (or load from numba's cache in
# __pycache__), so no training step, and no epoch's timing, ever pays for compilation.
_MAPS = "float32[:, :, :, ::1]"  # NHWC views of channels_last tensors
_CODES = "uint8[:, :, :, ::1]"


@njit(f"void({_MAPS}, {_MAPS}, {_CODES})", nogil=True, cache=True)
def _forward_nhwc(x, out, code):  # pragma: no cover - compiled; tests check it against aten
    n_images, _, _, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for n in range(n_images):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(channels):
                    best = -np.inf
                    won = 0
                    for a in range(2):
                        for b in range(2):
                            v = x[n, 2 * i + a, 2 * j + b, c]
                            if v > best or v != v:  # aten's rule: greater, or NaN
                                best = v
                                won = 2 * a + b
                    out[n, i, j, c] = best
                    code[n, i, j, c] = won


@njit(f"void({_MAPS}, {_CODES}, {_MAPS})", nogil=True, cache=True)
def _backward_nhwc(grad_out, code, grad_in):  # pragma: no cover - compiled; see above
    n_images, height, width, channels = grad_in.shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    zero = np.float32(0.0)
    for n in range(n_images):
        for i in range(out_h):
            for a in range(2):
                h = 2 * i + a
                for j in range(out_w):
                    for b in range(2):
                        position = 2 * a + b
                        for c in range(channels):
                            # zero + g, as aten's scatter into zeros: -0.0 comes out +0.0
                            g = zero + grad_out[n, i, j, c]
                            grad_in[n, h, 2 * j + b, c] = g if code[n, i, j, c] == position else zero
                for w in range(2 * out_w, width):  # an odd last column no window covers
                    for c in range(channels):
                        grad_in[n, h, w, c] = zero
        for h in range(2 * out_h, height):  # an odd last row no window covers
            for w in range(width):
                for c in range(channels):
                    grad_in[n, h, w, c] = zero


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(0, 2, 3, 1).numpy()


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        out = torch.empty((n, c, h // 2, w // 2), memory_format=torch.channels_last)
        code = torch.empty((n, h // 2, w // 2, c), dtype=torch.uint8)
        _forward_nhwc(_nhwc(x), _nhwc(out), code.numpy())
        ctx.save_for_backward(code)
        ctx.input_shape = x.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (code,) = ctx.saved_tensors
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
        grad_in = torch.empty(ctx.input_shape, memory_format=torch.channels_last)
        _backward_nhwc(_nhwc(grad_out), code.numpy(), _nhwc(grad_in))
        return grad_in


class ChannelsLastMaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)``, computed by the kernels above where they apply."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One channel: NCHW and NHWC are the same memory, and aten may hand the gradient
        # back with NCHW strides; rare enough to leave to aten.
        if (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
                and x.shape[1] > 1 and x.shape[2] >= 2 and x.shape[3] >= 2
                and x.is_contiguous(memory_format=torch.channels_last)):
            return _MaxPool2x2.apply(x)
        return super().forward(x)


def use_channels_last_max_pool(model: nn.Module) -> int:
    """Swap every plain ``nn.MaxPool2d(2)`` in ``model`` for the kernels above; returns how many."""
    return swap_plain_2x2(model, nn.MaxPool2d, ChannelsLastMaxPool2x2)
