"""The BatchNorm CNN of the widely copied PyTorch MNIST / Fashion-MNIST tutorial.

Two conv -> BatchNorm -> ReLU -> max-pool stages and a single linear classifier
(yunjey's ``pytorch-tutorial`` convolutional network).  It is the zoo's smallest
classifier head: almost all capacity sits in the convolutions.
"""

from __future__ import annotations

from torch import nn

from ._blocks import FeatureNet
from .registry import register_model


class BNConvNet(FeatureNet):
    """(conv 5x5 pad 2 -> BatchNorm -> ReLU -> max-pool) x 2 -> one linear layer."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int] = (16, 32),
        kernel: int = 5,
    ) -> None:
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in channels:
            layers += [
                # BatchNorm's shift makes this bias redundant, but the tutorial keeps it and
                # the zoo is faithful to its sources (the hand-checked count includes it).
                nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            ]
            c_in = c_out
        super().__init__(nn.Sequential(*layers), in_channels=in_channels,
                         num_classes=num_classes, image_size=image_size)


@register_model(
    "bn-convnet",
    family="bn-convnet",
    description="two padded 5x5 convs (16, 32) with BatchNorm and max-pool, one FC 1568-10",
    tags=("seed", "batchnorm"),
)
def bn_convnet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """conv 1->16 5x5 pad 2, BN, ReLU, max-pool; conv 16->32 5x5 pad 2, BN, ReLU, max-pool.

    28x28 becomes 28, 14, 14, 7: 32*7*7 = 1568 features straight into FC 1568->10.
    Illustrates BatchNorm with a linear head: normalised features need no hidden MLP.
    """
    return BNConvNet(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
