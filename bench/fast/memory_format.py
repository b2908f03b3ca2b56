"""The activation layout of a run, and gradients kept in it.

On CPU, oneDNN's NHWC (channels_last) kernels train these nets faster than NCHW.  The
layout changes which kernels run, hence the last bits of the result, so ``auto`` resolves
by a fixed rule on the config and the model, never by a timing probe (a probe could choose
differently for two runs of one config); the layout used is recorded with every run.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import RunConfig


def choose_memory_format(cfg: RunConfig, model: nn.Module) -> torch.memory_format:
    """channels_last for a CPU model with a convolution (unless the config says otherwise)."""
    if cfg.memory_format == "channels_last":
        return torch.channels_last
    if cfg.memory_format == "contiguous":
        return torch.contiguous_format
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    if torch.device(cfg.device).type == "cpu" and has_conv:
        return torch.channels_last
    return torch.contiguous_format  # on CUDA, channels_last was not faster for these nets


def keep_gradients_channels_last(model: nn.Module) -> None:
    """Hand every ``nn.Flatten``'s gradient back to the feature stack in channels_last.

    Flatten's backward views the classifier's gradient as NCHW, so the layers before it
    (ReLU, pooling, BatchNorm) would run their backward on mixed layouts, a slow strided
    path.  One copy into channels_last changes no value, so no bit of the result.
    """
    for module in model.modules():
        if isinstance(module, nn.Flatten):
            module.register_forward_pre_hook(_gradient_to_channels_last)


def _gradient_to_channels_last(_module: nn.Module, args: tuple) -> None:
    x = args[0]
    if x.requires_grad and x.dim() == 4:
        x.register_hook(_channels_last)


def _channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)
