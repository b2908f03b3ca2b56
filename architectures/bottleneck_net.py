"""BottleneckNet: 1x1 "squeeze" convolutions keep the channel count, and the cost, low.

Each stage widens with a 3x3 convolution and then squeezes back with a 1x1 convolution
whose output has fewer channels than its input (the Network-in-Network / SqueezeNet
trick).  The last squeeze also stands in for the hidden FC layers: the classifier is a
single linear layer over a thin feature map.
"""

from __future__ import annotations

from torch import nn

from ._blocks import FeatureNet
from .registry import register_model


class BottleneckNet(FeatureNet):
    """Per stage: conv 3x3 (expand) -> ReLU -> conv 1x1 (squeeze) -> ReLU -> max-pool."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        stages: tuple[tuple[int, int], ...] = ((32, 16), (64, 16)),
    ) -> None:
        layers: list[nn.Module] = []
        c_in = in_channels
        for wide, squeezed in stages:
            layers += [
                nn.Conv2d(c_in, wide, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(wide, squeezed, 1),
                nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            ]
            c_in = squeezed
        super().__init__(nn.Sequential(*layers), in_channels=in_channels,
                         num_classes=num_classes, image_size=image_size)


@register_model(
    "bottleneck-net",
    family="bottleneck-net",
    description="3x3 convs (32, 64) each squeezed to 16 channels by a 1x1 conv; FC 784-10",
    tags=("seed",),
)
def bottleneck_net(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """conv 1->32 3x3, 1x1 32->16, max-pool; conv 16->64 3x3, 1x1 64->16, max-pool; FC 784->10.

    All 3x3 convs are padded, so 28x28 becomes 28, 14, 14, 7: 16*7*7 = 784 features.
    Illustrates channel bottlenecks: the 1x1 squeezes replace the hidden FC layers and
    cut the next layer's input, for a tiny parameter count.
    """
    return BottleneckNet(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
