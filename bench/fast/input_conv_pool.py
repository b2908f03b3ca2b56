"""A stack's first 5x5 convolution and its 2x2 max-pool, computed by kernels of their own.

Why: in a CPU stack of LeNet-style runs the first layer is a grouped convolution with one
input channel and six output channels per run.  oneDNN pads each group's channels to
blocks of 16, so its weight gradient spends most of its arithmetic on padding, and it first
needs the max-pool's full-size input gradient, three quarters zeros; its forward writes the
full-size map the pool then reads.  Here the input is split into its four 2x2 phases, so
each of a channel's 25 taps, for each of the four positions of a pooling window, is a long
row over the pooled positions, which LLVM turns into 16-wide multiply-adds.  The forward
sums the four positions' convolutions side by side and keeps their maximum and a one-byte
code of which won (aten's rule), channel by channel; the weight and bias gradients come
straight from the pooled gradient and those codes.  The layer's input needs no gradient (it
is the data), so none is computed.

Only a stack takes this path (``Speedups.prepare_stack``): it sums in another order than
oneDNN, which a stack's runs already do, and it is deterministic, so ``verify`` still
retrains a stack bit for bit.  ``tests/test_input_conv_pool.py`` compares its output and
gradients with oneDNN's, and ``tests/test_stacked.py`` steps every registered network's stack
against its runs alone.  Anything else (an input that needs a gradient, autocast, another
kernel size, no grad mode) runs the convolution and ``ChannelsLastMaxPool2x2`` as before.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
import torch
from numba import njit
from torch import nn
from torch.autograd.function import once_differentiable

from .fused_conv_pool import FusedConvMaxPool, fuse
from .max_pool import _nhwc

KERNEL = 5
CHANNELS_AT_ONCE = 3  # a run's channels are taken three at a time: they share the input's loads
CHUNK = 1024  # pooled positions per pass: a chunk's gradients and input phases stay in L1

_MAPS = "float32[:, :, :, ::1]"


@njit(f"void({_MAPS}, float32[:, ::1], float64[::1], int64, int64)", nogil=True, cache=True)
def _by_channel(grad_out, grad, bias_grad, cols, per_image):  # pragma: no cover - compiled
    """NHWC pooled gradient -> (C, images * per_image), rows ``cols`` apart; sums the bias gradient."""
    n_images, height, width, channels = grad_out.shape
    for n in range(n_images):
        for i in range(height):
            at = n * per_image + i * cols
            for j in range(width):
                for c in range(channels):
                    v = grad_out[n, i, j, c]
                    grad[c, at + j] = v
                    bias_grad[c] += v


def _phases(x: torch.Tensor, pad: int, phases: np.ndarray, cols: int, per_image: int) -> None:
    """NHWC input (one channel per run) -> (runs, 2, 2, ...): phase (p, q) holds x[2u + p - pad, 2v + q - pad]."""
    n, runs, height, width = x.shape
    nhwc = x.permute(0, 2, 3, 1)
    for p in range(2):
        for q in range(2):
            h0, w0 = (p - pad) % 2, (q - pad) % 2  # the first row and column of x in this phase
            u0, v0 = (h0 + pad - p) // 2, (w0 + pad - q) // 2  # where they land
            into = torch.from_numpy(phases[:, p, q, :n * per_image]).view(runs, n, per_image // cols, cols)
            source = nhwc[:, h0::2, w0::2, :].permute(3, 0, 1, 2)
            into[:, :, u0:u0 + source.shape[2], v0:v0 + source.shape[3]].copy_(source)


# LLVM's cost model picks 8-wide vectors on AVX-512 cores; these rows run faster 16 wide
# (docs/performance.md).  The option is LLVM's, so it is set only while these kernels compile.
llvm.set_option("", "-force-vector-width=16")
try:
    @njit("void(float32[:, :, :, ::1], float32[:, :, :, ::1], float32[::1], float32[:, ::1], uint8[:, ::1], "
          "float32[:, ::1], int64, int64)", fastmath={"contract"}, nogil=True, cache=True)  # NaN still wins
    def _forward(phases, weight, bias, out, code, sums, cols, length):  # pragma: no cover - compiled; tests check it
        """out[c, t] = the largest of the four window positions' convolutions + bias at pooled
        position t, code[c, t] which (2a + b; aten's rule: the first maximum, or the last NaN)."""
        channels = weight.shape[0]
        per_run = channels // phases.shape[0]
        for c in range(0, channels, 3):
            r = c // per_run
            for t0 in range(0, length, CHUNK):
                n = min(CHUNK, length - t0)
                for a in range(2):
                    for b in range(2):
                        s0, s1, s2 = sums[2 * a + b], sums[4 + 2 * a + b], sums[8 + 2 * a + b]
                        s0[:n], s1[:n], s2[:n] = bias[c], bias[c + 1], bias[c + 2]
                        for ky in range(5):
                            u0, u1, u2, u3, u4 = weight[c, 0, ky]
                            v0, v1, v2, v3, v4 = weight[c + 1, 0, ky]
                            e0, e1, e2, e3, e4 = weight[c + 2, 0, ky]
                            base = t0 + ((a + ky) // 2) * cols
                            even, odd = phases[r, (a + ky) % 2, b % 2], phases[r, (a + ky) % 2, (b + 1) % 2]
                            z0, z1, z2 = even[base + b // 2:], odd[base + (b + 1) // 2:], even[base + (b + 2) // 2:]
                            z3, z4 = odd[base + (b + 3) // 2:], even[base + (b + 4) // 2:]
                            for t in range(n):
                                x0, x1, x2, x3, x4 = z0[t], z1[t], z2[t], z3[t], z4[t]
                                s0[t] += u0 * x0 + u1 * x1 + u2 * x2 + u3 * x3 + u4 * x4
                                s1[t] += v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3 + v4 * x4
                                s2[t] += e0 * x0 + e1 * x1 + e2 * x2 + e3 * x3 + e4 * x4
                for k in range(3):
                    q0, q1, q2, q3 = sums[k * 4], sums[k * 4 + 1], sums[k * 4 + 2], sums[k * 4 + 3]
                    best_of, won_of = out[c + k, t0:], code[c + k, t0:]
                    for t in range(n):
                        best, won = q0[t], 0
                        for position, v in ((1, q1[t]), (2, q2[t]), (3, q3[t])):
                            take = (v > best) | (v != v)
                            best = v if take else best
                            won = position if take else won
                        best_of[t], won_of[t] = best, won

    @njit("void(float32[:, ::1], uint8[:, ::1], float32[:, :, :, ::1], float32[:, :, :, ::1], int64, int64)",
          fastmath=True, nogil=True, cache=True)
    def _weight_grad(grad, grad_code, phases, out, cols, length):  # pragma: no cover - compiled; tests check it
        """out[c, 0, ky, kx] = sum over pooled positions of the gradient, where the window's
        winner (a, b) is, times the input at (2i + a + ky, 2j + b + kx)."""
        channels = grad.shape[0]
        per_run = channels // phases.shape[0]
        zero = np.float32(0.0)
        for c in range(0, channels, 3):
            r = c // per_run
            for t0 in range(0, length, CHUNK):
                n = min(CHUNK, length - t0)
                g0, g1, g2 = grad[c, t0:], grad[c + 1, t0:], grad[c + 2, t0:]
                k0, k1, k2 = grad_code[c, t0:], grad_code[c + 1, t0:], grad_code[c + 2, t0:]
                for a in range(2):
                    for b in range(2):
                        won = np.uint8(2 * a + b)
                        for ky in range(5):
                            base = t0 + ((a + ky) // 2) * cols
                            even, odd = phases[r, (a + ky) % 2, b % 2], phases[r, (a + ky) % 2, (b + 1) % 2]
                            z0, z1, z2 = even[base + b // 2:], odd[base + (b + 1) // 2:], even[base + (b + 2) // 2:]
                            z3, z4 = odd[base + (b + 3) // 2:], even[base + (b + 4) // 2:]
                            a0 = a1 = a2 = a3 = a4 = zero
                            b0 = b1 = b2 = b3 = b4 = zero
                            e0 = e1 = e2 = e3 = e4 = zero
                            for t in range(n):
                                u = g0[t] if k0[t] == won else zero
                                v = g1[t] if k1[t] == won else zero
                                w = g2[t] if k2[t] == won else zero
                                x0, x1, x2, x3, x4 = z0[t], z1[t], z2[t], z3[t], z4[t]
                                a0 += u * x0; a1 += u * x1; a2 += u * x2; a3 += u * x3; a4 += u * x4  # noqa: E702
                                b0 += v * x0; b1 += v * x1; b2 += v * x2; b3 += v * x3; b4 += v * x4  # noqa: E702
                                e0 += w * x0; e1 += w * x1; e2 += w * x2; e3 += w * x3; e4 += w * x4  # noqa: E702
                            for k, total in enumerate((a0, a1, a2, a3, a4)):
                                out[c, 0, ky, k] += total
                            for k, total in enumerate((b0, b1, b2, b3, b4)):
                                out[c + 1, 0, ky, k] += total
                            for k, total in enumerate((e0, e1, e2, e3, e4)):
                                out[c + 2, 0, ky, k] += total
finally:
    llvm.set_option("", "-force-vector-width=0")  # LLVM's default: its cost model decides


def _row(length: int, itemsize: int) -> int:
    """A row of at least ``length`` items spanning an odd number of 64-byte cache lines: rows a
    power of two apart would all fall in the same cache sets (docs/performance.md)."""
    per_line = 64 // itemsize
    lines = -(-length // per_line)
    return (lines | 1) * per_line


class _Workspace:
    """Buffers kept between steps: their padding is written once, as zeros, and stays so."""

    def __init__(self) -> None:
        self.buffers: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, channels: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """The gradient laid out by channel, and the forward's sums of one chunk."""
        if (channels, length) not in self.buffers:
            self.buffers[channels, length] = (np.zeros((channels, _row(length, 4)), np.float32),
                                              np.zeros((12, CHUNK), np.float32))
        return self.buffers[channels, length]


class _InputConvMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding: int, workspace: _Workspace):
        n, runs, height, width = x.shape
        channels = weight.shape[0]
        rows, cols = (height + 2 * padding) // 2, (width + 2 * padding) // 2
        per_image, length = rows * cols, n * rows * cols
        # phase rows for every pooled position, and two rows and columns past the last for its taps
        phases = np.zeros((runs, 2, 2, _row(length + 2 * cols + 3, 4)), np.float32)
        _phases(x, padding, phases, cols, per_image)
        pooled = np.empty((channels, _row(length, 4)), np.float32)
        code = np.empty((channels, _row(length, 1)), np.uint8)
        ctx.has_bias = bias is not None
        bias = bias.detach().numpy() if bias is not None else np.zeros(channels, np.float32)
        sums = workspace.get(channels, length)[1]
        _forward(phases, weight.detach().contiguous().numpy(), bias, pooled, code, sums, cols, length)
        out = torch.empty((n, channels, rows - 2, cols - 2), memory_format=torch.channels_last)
        by_channel = torch.from_numpy(pooled)[:, :length].view(channels, n, rows, cols)
        out.copy_(by_channel[:, :, :rows - 2, :cols - 2].permute(1, 0, 2, 3))
        ctx.phases, ctx.code, ctx.cols, ctx.per_image, ctx.workspace = phases, code, cols, per_image, workspace
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
        n, channels, _, _ = grad_out.shape
        cols, per_image = ctx.cols, ctx.per_image
        grad = ctx.workspace.get(channels, n * per_image)[0]
        bias_grad = np.zeros(channels, np.float64)
        _by_channel(_nhwc(grad_out), grad, bias_grad, cols, per_image)
        weight_grad = np.zeros((channels, 1, KERNEL, KERNEL), np.float32)
        _weight_grad(grad, ctx.code, ctx.phases, weight_grad, cols, n * per_image)
        bias_grad = torch.from_numpy(bias_grad.astype(np.float32)) if ctx.has_bias else None
        return None, torch.from_numpy(weight_grad), bias_grad, None, None


class InputConvMaxPool(FusedConvMaxPool):
    """A stack's first convolution (one input channel per run, 5x5, stride 1) and the 2x2
    max-pool after it, as one layer with the convolution's parameters."""

    Workspace = _Workspace

    def takes(self, x: torch.Tensor) -> bool:
        height, width = x.shape[2] + 2 * self.padding[0], x.shape[3] + 2 * self.padding[0]
        return (not x.requires_grad and self.weight.requires_grad and height % 2 == 0 and width % 2 == 0
                and height > KERNEL and width > KERNEL)

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        return _InputConvMaxPool.apply(x, self.weight, self.bias, self.padding[0], self.workspace)


def fits(conv: nn.Module) -> bool:
    """``conv`` is a stack's first-layer convolution this layer computes."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (KERNEL, KERNEL) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
            and conv.padding[0] == conv.padding[1] and conv.in_channels == conv.groups
            and (conv.out_channels // conv.groups) % CHANNELS_AT_ONCE == 0)


def use_input_conv_max_pool(model: nn.Module) -> int:
    """Fuse every ``Conv2d, ChannelsLastMaxPool2x2`` pair of a ``nn.Sequential`` that fits; returns how many."""
    return fuse(model, fits, InputConvMaxPool)
