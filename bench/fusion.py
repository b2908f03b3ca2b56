"""Bit-exact fusions the training path applies to a model before training it.

A fusion here must leave every bit of the results unchanged: it only saves memory
passes.  ``tests/test_fusion.py`` checks outputs and gradients with ``torch.equal``, and
``tests/test_fast_path.py`` checks whole runs against a plain eager loop over the
unfused model.  The layout follows ``torch.ao.quantization.fuse_modules``: the fused
module takes the first slot and ``nn.Identity`` the others, so layer indices and
state_dict keys stay those of the architecture as registered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _ReLUAvgPool2x2(torch.autograd.Function):
    """ReLU then a 2x2, stride-2 average pool, with one backward pass instead of three.

    Autograd's backward zero-fills the pool's input gradient, scatters ``g / 4`` into it,
    then masks it by the ReLU (``threshold_backward``): three passes over the largest
    activation of the network.  Here the mask reads ``g / 4`` through a broadcast view,
    one pass.  Each input pixel belongs to exactly one window, so its gradient is the
    same ``g / 4`` either way: bit for bit, the same result.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # In place, as nn.ReLU(inplace=True) (the conv's backward needs only its input); a
        # tensor changed in place must be an output too, so ``x`` is returned, unused.
        r = x.relu_()
        ctx.mark_dirty(r)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(r)
        return r, F.avg_pool2d(r, 2)

    @staticmethod
    def backward(ctx, _grad_r, grad: torch.Tensor) -> torch.Tensor:
        if grad is None:  # the pooled output was not used
            return None
        (r,) = ctx.saved_tensors
        b, c, height, width = r.shape
        h, w = grad.shape[-2:]
        if (height, width) != (2 * h, 2 * w) or not r.is_contiguous(memory_format=torch.channels_last):
            # Odd sizes (a row or column no window covers) or NCHW: autograd's own passes.
            g = torch.ops.aten.avg_pool2d_backward(grad, r, [2, 2], [2, 2], [0, 0], False, True, None)
            return torch.ops.aten.threshold_backward(g, r, 0)
        # channels_last memory is (B, H, W, C): view it as (B, h, 2, w, 2, C) windows.
        windows = r.permute(0, 2, 3, 1).view(b, h, 2, w, 2, c)
        share = (grad / 4).permute(0, 2, 3, 1)[:, :, None, :, None, :].expand_as(windows)
        g = torch.ops.aten.threshold_backward(share, windows, 0)
        return g.view(b, height, width, c).permute(0, 3, 1, 2)


class ReLUAvgPool2d(nn.Module):
    """``nn.ReLU`` followed by ``nn.AvgPool2d(2)``, fused (see ``_ReLUAvgPool2x2``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReLUAvgPool2x2.apply(x)[1]


def _is_plain_2x2_avgpool(m: nn.Module) -> bool:
    def pair(v):
        return v if isinstance(v, tuple) else (v, v)
    return (
        type(m) is nn.AvgPool2d and pair(m.kernel_size) == (2, 2) and pair(m.stride) == (2, 2)
        and pair(m.padding) == (0, 0) and not m.ceil_mode and m.divisor_override is None
    )


def fuse_for_training(model: nn.Module) -> int:
    """Fuse every ``ReLU -> AvgPool2d(2)`` pair inside ``model``'s Sequentials, in place.

    Returns how many pairs were fused.
    """
    fused = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        layers = list(seq)
        for i in range(len(layers) - 1):
            # Only an in-place ReLU: the fused op overwrites its input as that one does.
            relu = layers[i]
            if type(relu) is nn.ReLU and relu.inplace and _is_plain_2x2_avgpool(layers[i + 1]):
                seq[i], seq[i + 1] = ReLUAvgPool2d(), nn.Identity()
                fused += 1
    return fused
