"""DigitNet: the 32/64-channel two-stage CNN of the Keras-style MNIST tutorials.

Each stage is a single unpadded 3x3 convolution and a max-pool, so the net is wide but
shallow, with a small 64-unit hidden layer in front of the logits.
"""

from __future__ import annotations

from torch import nn

from ._blocks import FeatureNet
from .registry import register_model


class DigitNet(FeatureNet):
    """(conv 3x3 -> ReLU -> max-pool) x 2 -> FC -> ReLU -> FC."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 64,
    ) -> None:
        c1, c2 = channels
        features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        super().__init__(features, in_channels=in_channels, num_classes=num_classes,
                         image_size=image_size, hidden=(hidden,))


@register_model(
    "digitnet",
    family="digitnet",
    description="two 3x3 convs (32, 64) with max-pool, FC 1600-64: wide convs, narrow head",
    tags=("seed",),
)
def digitnet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """conv 1->32 3x3, ReLU, max-pool; conv 32->64 3x3, ReLU, max-pool; FC 1600->64->10.

    28x28 becomes 26, 13, 11, 5: 64*5*5 = 1600 features.  Against ``lenet`` it illustrates
    width: 5x more channels per stage with a narrow 64-unit hidden layer.
    """
    return DigitNet(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
