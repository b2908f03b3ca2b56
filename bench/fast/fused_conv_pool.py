"""What a CPU stack's fused convolution + 2x2 max-pool layers share.

``input_conv_pool`` and ``conv_pool`` each compute one convolution and the
``ChannelsLastMaxPool2x2`` after it with kernels of their own.  The layer keeps the
convolution's parameters under their names (so state_dicts and unstacking see no change),
runs the plain pair for anything its kernels are not compiled for, and keeps buffers
between steps; ``fuse`` puts it in place of the pairs of a model it fits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .max_pool import ChannelsLastMaxPool2x2


class FusedConvMaxPool(nn.Conv2d):
    """A convolution and the 2x2 max-pool after it, as one layer with the convolution's parameters."""

    Workspace: type = object  # buffers a subclass keeps between steps

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                         device=conv.weight.device)
        self.weight, self.bias = conv.weight, conv.bias  # the same parameters, under the same names
        self.pool = ChannelsLastMaxPool2x2()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
                and self.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
                and x.is_contiguous(memory_format=torch.channels_last) and self.takes(x)):
            return self.fused(x)
        return self.pool(super().forward(x))

    def takes(self, x: torch.Tensor) -> bool:
        """What the kernels need beyond a float32, channels_last CPU batch with gradients on."""
        raise NotImplementedError

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def workspace(self):
        if "_buffers_between_steps" not in self.__dict__:  # not a module attribute: state_dict never sees it
            self.__dict__["_buffers_between_steps"] = self.Workspace()
        return self.__dict__["_buffers_between_steps"]


def fuse(model: nn.Module, fits: Callable[[nn.Module], bool], layer: type[FusedConvMaxPool]) -> int:
    """Put ``layer`` in place of every ``Conv2d, ChannelsLastMaxPool2x2`` pair of a ``nn.Sequential``
    whose convolution ``fits``; the pool's slot becomes an ``nn.Identity``.  Returns how many."""
    fused = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            if fits(seq[i]) and type(seq[i + 1]) is ChannelsLastMaxPool2x2:
                seq[i], seq[i + 1] = layer(seq[i]), nn.Identity()
                fused += 1
    return fused
