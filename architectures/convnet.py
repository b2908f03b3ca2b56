"""Two-stage convolution nets with average pooling: standard vs dilated convolution.

``convnet`` and ``dilated`` share one class and differ only in the dilation of their
convolutions, so comparing them isolates what dilation does to a small MNIST network.
"""

from __future__ import annotations

from torch import nn

from ._shapes import flat_features
from .registry import register_model


class ConvNet(nn.Module):
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
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1, dilation=dilation),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
            nn.Conv2d(c1, c2, 3, dilation=dilation),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
        )
        n = flat_features(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n, hidden[0]),
            nn.ReLU(inplace=True),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(inplace=True),
            nn.Linear(hidden[1], num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


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


class BNConvNet(nn.Module):
    """(conv 5x5 pad 2 -> BatchNorm -> ReLU -> max-pool) x 2 -> one linear layer."""

    def __init__(
        self, *, in_channels: int, num_classes: int, image_size: int, channels: tuple[int, int] = (16, 32)
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        n = flat_features(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(n, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model(
    "bn-convnet",
    family="convnet",
    description="two 5x5 convs (16, 32 channels) with BatchNorm and max-pool, FC 1568-10",
    tags=("seed",),
)
def bn_convnet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Batch-normalised convnet: conv 1->16 5x5 pad 2, BN, ReLU, max-pool; conv 16->32 likewise.

    28x28 becomes 28, 14, 14, 7: 32*7*7 = 1568 features into a single linear layer.
    Illustrates BatchNorm (and its train/eval difference) in a small MNIST network.
    """
    return BNConvNet(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
