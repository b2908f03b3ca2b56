"""VGG-style small networks: stages of two 3x3 convolutions, max-pooling between stages.

timm's ``vgg.py`` pattern: one class reads a layer list (channel counts and ``"M"`` for a
max-pool) and the registered variants differ only in that list and in BatchNorm, so
``vgg-small`` vs ``vgg-small-bn`` isolates what BatchNorm does to the same network.
"""

from __future__ import annotations

from torch import nn

from ._blocks import FeatureNet
from .registry import register_model

# Three stages of two 3x3 convolutions each; "M" is a 2x2 max-pool (28 -> 14 -> 7 -> 3).
CFGS: dict[str, list[int | str]] = {
    "small": [32, 32, "M", 64, 64, "M", 128, 128, "M"],
}


class VGG(FeatureNet):
    """VGG feature stack from a layer list, then FC -> ReLU -> dropout -> FC."""

    def __init__(
        self,
        cfg: list[int | str],
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        batch_norm: bool = False,
        hidden: int = 128,
        dropout: float = 0.5,
    ) -> None:
        layers: list[nn.Module] = []
        c_in = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            # With BatchNorm the conv bias is redundant (BN's shift replaces it), as in torchvision.
            layers.append(nn.Conv2d(c_in, int(v), 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            c_in = int(v)
        super().__init__(nn.Sequential(*layers), in_channels=in_channels,
                         num_classes=num_classes, image_size=image_size,
                         hidden=(hidden,), dropout=dropout)


@register_model(
    "vgg-small",
    family="vgg",
    description="VGG-style: 3 stages of two 3x3 convs (32, 64, 128), max-pool, FC 1152-128",
    tags=("seed", "dropout"),
)
def vgg_small(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Two padded 3x3 convs per stage (32, 64, 128 channels), a max-pool after each stage.

    28x28 becomes 14, 7, 3: 128*3*3 = 1152 features, FC 1152->128, dropout 0.5, FC 128->10.
    Illustrates depth through stacked small kernels: two 3x3 convs see 5x5 with fewer
    weights than one 5x5.
    """
    return VGG(CFGS["small"], in_channels=in_channels, num_classes=num_classes,
               image_size=image_size)


@register_model(
    "vgg-small-bn",
    family="vgg",
    description="vgg-small with BatchNorm after every conv (conv bias dropped)",
    tags=("seed", "dropout", "batchnorm"),
)
def vgg_small_bn(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """``vgg-small`` with BatchNorm between each convolution and its ReLU.

    Everything else is identical, so comparing the two isolates BatchNorm's effect on a
    six-conv network.
    """
    return VGG(CFGS["small"], in_channels=in_channels, num_classes=num_classes,
               image_size=image_size, batch_norm=True)
