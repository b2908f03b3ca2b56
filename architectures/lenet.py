"""LeNet-style networks: two convolution + max-pool stages, then a three-layer MLP.

One shared class, tiny registered variants (timm's ``vgg.py`` pattern).  The variants
differ only in first-kernel size, padding and widths, which is what the PyTorch MNIST
tutorials that use them differ in.
"""

from __future__ import annotations

from torch import nn

from ._blocks import FeatureNet
from .registry import register_model


class LeNet(FeatureNet):
    """conv(k1) -> ReLU -> max-pool -> conv(k2) -> ReLU -> max-pool -> FC -> FC -> FC."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int],
        kernels: tuple[int, int],
        padding: tuple[int, int] = (0, 0),
        hidden: tuple[int, int] = (120, 84),
    ) -> None:
        c1, c2 = channels
        features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernels[0], padding=padding[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernels[1], padding=padding[1]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        super().__init__(features, in_channels=in_channels, num_classes=num_classes,
                         image_size=image_size, hidden=hidden)


@register_model(
    "lenet",
    family="lenet",
    description="LeNet with a 3x3 first conv: 6 and 16 channels, max-pool, FC 256-120-84",
    tags=("seed", "baseline"),
)
def lenet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """The tutorial LeNet: conv 1->6 3x3, conv 6->16 5x5, each with ReLU and 2x2 max-pool.

    On 28x28 input the maps shrink 26, 13, 9, 4, giving 16*4*4 = 256 features.  It is the
    reference point most comparisons in cnnbench are read against.
    """
    return LeNet(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        channels=(6, 16),
        kernels=(3, 5),
    )


@register_model(
    "lenet5",
    family="lenet",
    description="classic LeNet-5: 5x5 convs (first padded to keep 28x28), max-pool, FC 400-120-84",
    tags=("seed",),
)
def lenet5(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """LeCun's LeNet-5 as PyTorch tutorials write it: conv 1->6 5x5 pad 2, conv 6->16 5x5.

    Padding 2 turns a 28x28 MNIST digit into the 32x32 input LeNet-5 was designed for, so
    the maps go 28, 14, 10, 5: 16*5*5 = 400 features.  Against ``lenet`` it illustrates
    first-kernel size and padding: a bigger, padded first filter keeps the border.
    """
    return LeNet(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        channels=(6, 16),
        kernels=(5, 5),
        padding=(2, 0),
    )


@register_model(
    "lenet-12",
    family="lenet",
    description="LeNet with unpadded 5x5 convs, 6 and 12 channels, FC 192-120-60",
    tags=("seed",),
)
def lenet_12(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """A slimmer tutorial LeNet: conv 1->6 5x5, conv 6->12 5x5, no padding, FC 120-60.

    28x28 becomes 24, 12, 8, 4: 12*4*4 = 192 features.  Against ``lenet5`` it illustrates
    width: fewer second-stage channels and a narrower MLP for about half the parameters.
    """
    return LeNet(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        channels=(6, 12),
        kernels=(5, 5),
        hidden=(120, 60),
    )
