"""Two-stage convolution nets with average pooling: standard vs dilated convolution.

``convnet`` and ``dilated`` share one class and differ only in the dilation of their
convolutions, so comparing them isolates what dilation does to a small MNIST network.
"""

from __future__ import annotations

from torch import nn

from ._blocks import FeatureNet
from .registry import register_model


class ConvNet(FeatureNet):
    """conv -> ReLU -> avg-pool -> conv -> ReLU -> avg-pool -> FC -> FC -> FC."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        dilation: int = 1,
        channels: tuple[int, int] = (16, 32),
        hidden: tuple[int, int] = (256, 128),
    ) -> None:
        c1, c2 = channels
        features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1, dilation=dilation),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
            nn.Conv2d(c1, c2, 3, dilation=dilation),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
        )
        super().__init__(features, in_channels=in_channels, num_classes=num_classes,
                         image_size=image_size, hidden=hidden)


@register_model(
    "convnet",
    family="convnet",
    description="two 3x3 convs (16, 32 channels) with avg-pool, FC 1152-256-128",
    tags=("seed", "baseline"),
)
def convnet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Standard convolutions: conv 1->16 3x3 pad 1, conv 16->32 3x3, each + ReLU + avg-pool 2.

    28x28 becomes 28, 14, 12, 6: 32*6*6 = 1152 features.  The undilated twin of ``dilated``.
    """
    return ConvNet(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


@register_model(
    "dilated",
    family="convnet",
    description="convnet with dilation 2 in both convs: wider receptive field, FC 512-256-128",
    tags=("seed",),
)
def dilated(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """``convnet`` with dilation 2 in both convolutions (same kernels and padding).

    A dilated 3x3 kernel sees 5x5, so 28x28 becomes 26, 13, 9, 4: 32*4*4 = 512 features.
    Illustrates the standard-vs-dilated choice at equal parameter count per convolution.
    """
    return ConvNet(
        in_channels=in_channels, num_classes=num_classes, image_size=image_size, dilation=2
    )
