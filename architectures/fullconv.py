"""FullConv: a deeper all-convolution stack whose first "FC" layer is a convolution.

A convolution whose kernel covers the whole final feature map computes exactly what a
fully connected layer on the flattened map does (the FCN view of classifiers, Long et
al. 2015); a 1x1 convolution then yields the logits.  No ``nn.Linear`` anywhere.
"""

from __future__ import annotations

from torch import nn

from ._shapes import feature_shape
from .registry import register_model


class FullConv(nn.Module):
    """(conv 3x3 -> ReLU) x 2 -> max-pool, twice; conv over the whole map -> ReLU -> conv 1x1."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, ...] = (32, 64),
        hidden: int = 128,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        c, h, w = feature_shape(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(
            nn.Conv2d(c, hidden, (h, w)),  # kernel = whole map: the first FC layer, as a conv
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes, 1),
            nn.Flatten(),  # (N, classes, 1, 1) -> (N, classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model(
    "fullconv",
    family="fullconv",
    description="four padded 3x3 convs (32, 32, 64, 64), a 7x7 conv as the first FC, 1x1 conv logits",
    tags=("seed",),
)
def fullconv(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """conv 1->32, 32->32, max-pool; conv 32->64, 64->64, max-pool (all 3x3 pad 1);
    conv 64->128 7x7 (the first FC layer), ReLU, conv 128->10 1x1.

    28x28 becomes 28, 14, 7, then 1x1.  Illustrates depth (four convs instead of two)
    and a convolution in place of the first FC layer: same function, no flatten needed.
    It has exactly ``stride-net``'s weights (the 7x7 conv is its FC 3136->128), so the
    two differ in pooling vs strided convolution and dropout.
    """
    return FullConv(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
