"""StrideNet: small 3x3 kernels, stride-2 convolutions instead of pooling, dropout.

The "all-convolutional" idea (Springenberg et al., 2015) at MNIST scale: the network
learns its own downsampling, so it has no pooling layer at all.
"""

from __future__ import annotations

from torch import nn

from ._blocks import FeatureNet
from .registry import register_model


class StrideNet(FeatureNet):
    """Per stage: conv 3x3 (stride 1) -> ReLU -> conv 3x3 stride 2 -> ReLU; then dropout MLP."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, ...] = (32, 64),
        hidden: int = 128,
        dropout: tuple[float, float] = (0.25, 0.5),
    ) -> None:
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
                # Padding 1 with stride 2 halves the map exactly as a 2x2 pool would.
                nn.Conv2d(c_out, c_out, 3, stride=2, padding=1),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        layers.append(nn.Dropout(dropout[0]))
        super().__init__(nn.Sequential(*layers), in_channels=in_channels,
                         num_classes=num_classes, image_size=image_size,
                         hidden=(hidden,), dropout=dropout[1])


@register_model(
    "stride-net",
    family="stride-net",
    description="3x3 convs (32, 64) downsampled by stride-2 convs, no pooling; dropout, FC 3136-128",
    tags=("seed", "dropout"),
)
def stride_net(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """conv 1->32 3x3, conv 32->32 3x3 stride 2; conv 32->64 3x3, conv 64->64 3x3 stride 2.

    All padded by 1, so 28x28 becomes 28, 14, 14, 7: 64*7*7 = 3136 features, then
    dropout 0.25, FC 3136->128, dropout 0.5, FC 128->10.  Illustrates learned (strided
    convolution) downsampling in place of fixed pooling.
    """
    return StrideNet(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
