"""A stack's second 5x5 convolution and the 2x2 max-pool after it, with a backward of their own.

Why: in a CPU stack of LeNet-style runs the second convolution is a grouped convolution with
six input and 12-16 output channels per run.  oneDNN pads each group's channels to blocks of
16, so most of its input-gradient arithmetic is on padding, and it first needs the max-pool's
full-size gradient, in which three values of four are zeros.  Here the backward starts from
the pooled gradient: each value belongs to one output position, its window's winner, so it
adds itself times that position's 5x5 input patch to its filter's weight gradient, and
itself times the filter to the input gradient's patch there.  A patch row (five pixels of a
run's channels) is contiguous once each run's maps are laid out on their own, so every
update is a few 16-wide multiply-adds.  Each sum runs in registers and touches memory once:
an image's patches summed per filter, a window's filters summed per winner position.

Only a stack takes this path (``Speedups.prepare_stack``): it sums in another order than
oneDNN, which a stack's runs already do, and it is deterministic, so ``verify`` still
retrains a stack bit for bit.  ``tests/test_conv_pool.py`` compares its gradients with
oneDNN's, and ``tests/test_stacked.py`` steps every registered network's stack against its
runs alone.  Anything else (no grad mode, autocast, NCHW input) runs the convolution and
``ChannelsLastMaxPool2x2`` as before.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, errors
from numba.extending import intrinsic
from numba.np.arrayobj import make_array
from torch import nn
from torch.autograd.function import once_differentiable

from .fused_conv_pool import FusedConvMaxPool, fuse
from .max_pool import _forward_nhwc, _nhwc

KERNEL = 5
LANES = 16
VECTORS = 2  # 16-wide vectors a filter row takes: 5 pixels of 4-6 channels
SLACK = VECTORS * LANES  # a patch row's last vector may read and write back past the maps

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VEC = ir.VectorType(_F32, LANES)


# LLVM vectorizes a numba loop only where it can tell its arrays apart, which a short row
# update between two arrays never lets it; so this intrinsic writes the vector code itself.
# It lives in this file because numba's cache is keyed on the file of the kernel that uses it.
@intrinsic
def _add_weighted_patches(typingctx, dst, dst_at, dst_line, src, starts, src_line, scales, count, tail,
                          rows, vectors):
    """``dst[dst_at + y * dst_line + l] += sum over t < count of scales[t] * src[starts[t] +
    y * src_line + l]`` for y < rows, l < 16 * vectors, but only lanes below ``tail`` of the last
    vector.  The sums stay in registers; every lane of ``dst`` touched is read and written back."""
    if not isinstance(rows, types.IntegerLiteral) or not isinstance(vectors, types.IntegerLiteral):
        raise errors.RequireLiteralValue("rows and vectors are compile-time constants")
    n_rows, n_vectors = rows.literal_value, vectors.literal_value
    sig = types.void(dst, types.int64, types.int64, src, starts, types.int64, scales, types.int64, types.int64,
                     rows, vectors)

    def codegen(context, builder, signature, args):
        d, d_at, d_line, s, st, s_line, sc, count, tail = args[:9]
        d_data = builder.bitcast(make_array(signature.args[0])(context, builder, d).data, _F32.as_pointer())
        s_data = builder.bitcast(make_array(signature.args[3])(context, builder, s).data, _F32.as_pointer())
        st_data = make_array(signature.args[4])(context, builder, st).data
        sc_data = make_array(signature.args[6])(context, builder, sc).data
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v16f32")

        def vector(data, at):
            return builder.bitcast(builder.gep(data, [at]), _VEC.as_pointer())

        def load(pointer):
            value = builder.load(pointer)
            value.align = 4  # rows start anywhere
            return value

        def splat(value, vector_type):
            one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(_I32, 0))
            return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))

        # one slot per vector of the patch: LLVM keeps them in registers
        sums = [[cgutils.alloca_once_value(builder, ir.Constant(_VEC, None)) for _ in range(n_vectors)]
                for _ in range(n_rows)]
        with cgutils.for_range(builder, count) as loop:
            start = builder.load(builder.gep(st_data, [loop.index]))
            scale = splat(builder.load(builder.gep(sc_data, [loop.index])), _VEC)
            for y in range(n_rows):
                row = builder.add(start, builder.mul(s_line, ir.Constant(_I64, y)))
                for v in range(n_vectors):
                    value = load(vector(s_data, builder.add(row, ir.Constant(_I64, v * LANES))))
                    builder.store(builder.call(fma, [scale, value, builder.load(sums[y][v])]), sums[y][v])
        lanes = ir.Constant(ir.VectorType(_I64, LANES), list(range(LANES)))
        kept = builder.icmp_unsigned("<", lanes, splat(tail, ir.VectorType(_I64, LANES)))
        for y in range(n_rows):
            row = builder.add(d_at, builder.mul(d_line, ir.Constant(_I64, y)))
            for v in range(n_vectors):
                pointer = vector(d_data, builder.add(row, ir.Constant(_I64, v * LANES)))
                old = load(pointer)
                new = builder.fadd(old, builder.load(sums[y][v]))
                if v == n_vectors - 1:
                    new = builder.select(kept, new, old)  # lanes past the row: the bits they had
                builder.store(new, pointer).align = 4
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _move16(typingctx, dst, dst_at, src, src_at):
    """``dst[dst_at:dst_at + 16] = src[src_at:src_at + 16]``, as one vector load and store."""
    sig = types.void(dst, types.int64, src, types.int64)

    def codegen(context, builder, signature, args):
        d, d_at, s, s_at = args
        pointers = []
        for array_type, array, at in ((signature.args[0], d, d_at), (signature.args[2], s, s_at)):
            data = builder.bitcast(make_array(array_type)(context, builder, array).data, _F32.as_pointer())
            pointers.append(builder.bitcast(builder.gep(data, [at]), _VEC.as_pointer()))
        value = builder.load(pointers[1])
        value.align = 4
        builder.store(value, pointers[0]).align = 4
        return context.get_dummy_value()

    return sig, codegen


_MAPS = "float32[:, :, :, ::1]"


@njit(f"void({_MAPS}, int64, float32[::1])", nogil=True, cache=True)
def _to_blocks(x, per_in, block):  # pragma: no cover - compiled; tests check the layer
    """NHWC maps -> (groups, images, height, width, per_in): each group's maps on their own.

    Each pixel's ``per_in`` floats move as one 16-wide vector, in the order they land, so the
    lanes a vector writes past them are written again by the next ones (or fall in the slack)."""
    n_images, height, width, channels = x.shape
    groups = channels // per_in
    source = x.reshape(-1)
    end = source.shape[0] - LANES  # a vector read from further on would leave ``x``
    at = 0
    for r in range(groups):
        for n in range(n_images):
            for pixel in range(n * height * width, (n + 1) * height * width):
                s = pixel * channels + r * per_in
                if s <= end:
                    _move16(block, at, source, s)
                else:
                    block[at:at + per_in] = source[s:s + per_in]
                at += per_in


@njit(f"void(float32[::1], int64, {_MAPS})", nogil=True, cache=True)
def _from_blocks(block, per_in, x):  # pragma: no cover - compiled; tests check the layer
    """The inverse of ``_to_blocks``, vectors written in the order they land in ``x``."""
    n_images, height, width, channels = x.shape
    groups = channels // per_in
    target = x.reshape(-1)
    end = target.shape[0] - LANES
    per_group = n_images * height * width * per_in
    at = 0
    for pixel in range(n_images * height * width):
        for r in range(groups):
            s = r * per_group + pixel * per_in
            if at <= end:
                _move16(target, at, block, s)
            else:
                target[at:at + per_in] = block[s:s + per_in]
            at += per_in


@njit(f"void(float32[::1], {_MAPS}, uint8[:, :, :, ::1], float32[:, :, ::1], int64, int64, int64, int64, "
      "float32[:, :, ::1], float64[::1], float32[::1])", fastmath=True, nogil=True, cache=True)
def _backward(block, grad, code, weight, groups, per_in, line, size, weight_grad, bias_grad,
              grad_block):  # pragma: no cover - compiled; tests check it against oneDNN
    """Weight, bias and (into ``grad_block``, laid out as ``block``) input gradients of a grouped
    5x5 convolution + 2x2 max-pool, from the pooled gradient and the pool's codes.  ``weight``
    and ``weight_grad`` are (out channels, 5, 32): a filter row's 5 x ``per_in`` floats, then
    zeros; ``line`` and ``size`` are the floats of an image row and image in ``block``."""
    n_images, rows, cols, channels = grad.shape
    per_out = channels // groups
    row = weight.shape[2]
    span = KERNEL * row
    weights, weight_grads = weight.reshape(-1), weight_grad.reshape(-1)
    windows = rows * cols
    # each window's gradients by winner position, and an image's by filter
    code_filters = np.empty((windows, 4, per_out), np.int64)
    code_grads = np.empty((windows, 4, per_out), np.float32)
    code_count = np.empty((windows, 4), np.int64)
    filter_at, filter_grads = np.empty((per_out, windows), np.int64), np.empty((per_out, windows), np.float32)
    shift = np.array([0, per_in, line, line + per_in])  # a window's four positions
    for r in range(groups):
        for n in range(n_images):
            base = (r * n_images + n) * size
            code_count[:] = 0
            for p in range(windows):
                py, px = p // cols, p % cols
                corner = base + 2 * py * line + 2 * px * per_in
                for o in range(per_out):
                    ch = r * per_out + o
                    v, c = grad[n, py, px, ch], code[n, py, px, ch]
                    bias_grad[ch] += v
                    k = code_count[p, c]
                    code_filters[p, c, k], code_grads[p, c, k], code_count[p, c] = ch * span, v, k + 1
                    filter_at[o, p], filter_grads[o, p] = corner + shift[c], v
            # the filters whose maximum sat at the same position of a window, summed; windows
            # taken down the columns, so updates overlap only where their vectors coincide
            for c in range(4):
                for px in range(cols):
                    for py in range(rows):
                        p = py * cols + px
                        if code_count[p, c]:
                            at = base + 2 * py * line + 2 * px * per_in + shift[c]
                            _add_weighted_patches(grad_block, at, line, weights, code_filters[p, c], row,
                                                  code_grads[p, c], code_count[p, c],
                                                  KERNEL * per_in - (VECTORS - 1) * LANES, KERNEL, VECTORS)
            for o in range(per_out):  # the filter's patches in this image, summed
                _add_weighted_patches(weight_grads, (r * per_out + o) * span, row, block, filter_at[o], line,
                                      filter_grads[o], windows, LANES, KERNEL, VECTORS)


class _Workspace:
    """Buffers kept between steps."""

    def __init__(self) -> None:
        self.buffers: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, maps: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """The laid-out input (``maps`` floats and a slack) and the filters' rows."""
        if (maps, channels) not in self.buffers:
            self.buffers[maps, channels] = (np.zeros(maps + SLACK, np.float32),
                                            np.zeros((channels, KERNEL, VECTORS * LANES), np.float32))
        return self.buffers[maps, channels]


class _ConvMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, workspace: _Workspace):
        y = F.conv2d(x, weight, bias, groups=groups).contiguous(memory_format=torch.channels_last)
        n, c, h, w = y.shape
        out = torch.empty((n, c, h // 2, w // 2), memory_format=torch.channels_last)
        code = torch.empty((n, h // 2, w // 2, c), dtype=torch.uint8)
        _forward_nhwc(_nhwc(y), _nhwc(out), code.numpy())
        ctx.save_for_backward(x, weight, code)
        ctx.groups, ctx.workspace, ctx.has_bias = groups, workspace, bias is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, weight, code = ctx.saved_tensors
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
        channels, per_in = weight.shape[:2]
        block, rows = ctx.workspace.get(x.numel(), channels)
        _to_blocks(_nhwc(x), per_in, block)
        rows[:, :, :KERNEL * per_in] = weight.detach().permute(0, 2, 3, 1).reshape(channels, KERNEL, -1).numpy()
        grad_block = np.zeros_like(block)
        weight_grad = np.zeros(rows.shape, np.float32)
        bias_grad = np.zeros(channels, np.float64)
        line = x.shape[3] * per_in
        _backward(block, _nhwc(grad_out), code.numpy(), rows, ctx.groups, per_in, line, x.shape[2] * line,
                  weight_grad, bias_grad, grad_block)
        grad_x = torch.empty(x.shape, memory_format=torch.channels_last)
        _from_blocks(grad_block, per_in, _nhwc(grad_x))
        weight_grad = torch.from_numpy(weight_grad[:, :, :KERNEL * per_in].copy())
        weight_grad = weight_grad.view(channels, KERNEL, KERNEL, per_in).permute(0, 3, 1, 2).contiguous()
        bias_grad = torch.from_numpy(bias_grad.astype(np.float32)) if ctx.has_bias else None
        return grad_x, weight_grad, bias_grad, None, None


class ConvMaxPool(FusedConvMaxPool):
    """A stack's second convolution (5x5, stride 1) and the 2x2 max-pool after it, as one layer
    with the convolution's parameters."""

    Workspace = _Workspace

    def takes(self, x: torch.Tensor) -> bool:
        return (x.requires_grad or self.weight.requires_grad) and x.shape[2] > KERNEL and x.shape[3] > KERNEL

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        return _ConvMaxPool.apply(x, self.weight, self.bias, self.groups, self.workspace)


def fits(conv: nn.Module) -> bool:
    """``conv`` is a convolution this layer computes: 5x5, stride 1, no dilation, no padding (a
    LeNet's second), and 4-6 input channels per group (a filter row fills two vectors)."""
    per_in = conv.in_channels // conv.groups if isinstance(conv, nn.Conv2d) else 0
    return (type(conv) is nn.Conv2d and conv.kernel_size == (KERNEL, KERNEL) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.padding in ((0, 0), "valid")
            and -(-KERNEL * per_in // LANES) == VECTORS)


def use_conv_max_pool(model: nn.Module) -> int:
    """Fuse every ``Conv2d, ChannelsLastMaxPool2x2`` pair of a ``nn.Sequential`` that fits; returns how many."""
    return fuse(model, fits, ConvMaxPool)
