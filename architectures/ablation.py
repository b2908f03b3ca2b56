"""The factorial ablation family: one backbone, two factors, six networks.

The backbone is the ``convnet`` shape: conv 1->16 3x3 pad 1, ReLU, downsample;
conv 16->32 3x3, ReLU, downsample; FC 1152->256->128->10.  Two factors vary:

- ``conv``: ``std`` (dilation 1) or ``dil`` (dilation 2, padding raised by 1 so every
  feature map keeps the size the standard convolution gives it);
- ``downsample``: ``max`` (2x2 max-pool), ``avg`` (2x2 avg-pool) or ``stride`` (a
  learned 3x3 convolution with stride 2 and padding 1, channels in = channels out,
  no activation of its own).

All three downsamplers map 28 -> 14 and 12 -> 6, and both conv levels keep the
feature maps at 28 and 12, so every net ends in the same 32x6x6 = 1152 features and
an identical classifier.  The only difference between two of the six nets is the
operator a factor names, so a difference in results is that factor's doing.  The
strided convolution is a learned generalisation of avg-pool (a 3x3 kernel can hold the
2x2 average); it adds 2,320 + 9,248 parameters, which is part of what that level means.

This family is the default set (``tag:default``) that ``make bench`` compares; the
``factors`` metadata becomes the ``factor_conv`` / ``factor_downsample`` columns of
``runs.csv`` so the report can estimate each factor's main effect and interaction.
"""

from __future__ import annotations

from torch import nn

from ._blocks import FeatureNet
from .registry import register_model

CONV_LEVELS = ("std", "dil")
DOWNSAMPLE_LEVELS = ("max", "avg", "stride")
TAGS = ("ablation", "default")


def _relu_downsample(kind: str, channels: int) -> list[nn.Module]:
    """The ReLU after a conv level, then the ``downsample`` operator."""
    if kind == "max":
        return [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    if kind == "avg":
        return [nn.ReLU(inplace=True), nn.AvgPool2d(2)]
    if kind == "stride":
        return [nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, stride=2, padding=1)]
    raise ValueError(f"downsample must be one of {DOWNSAMPLE_LEVELS}, got {kind!r}")


class AblationNet(FeatureNet):
    """conv -> ReLU -> downsample -> conv -> ReLU -> downsample -> FC -> FC -> FC."""

    def __init__(
        self,
        *,
        conv: str,
        downsample: str,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int] = (16, 32),
        hidden: tuple[int, int] = (256, 128),
    ) -> None:
        if conv not in CONV_LEVELS:
            raise ValueError(f"conv must be one of {CONV_LEVELS}, got {conv!r}")
        # A 3x3 kernel with dilation 2 spans 5x5; one more pixel of padding on each side
        # keeps the output the size of the undilated convolution's.
        dilation = 2 if conv == "dil" else 1
        extra = dilation - 1
        c1, c2 = channels
        features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1 + extra, dilation=dilation),
            *_relu_downsample(downsample, c1),
            nn.Conv2d(c1, c2, 3, padding=0 + extra, dilation=dilation),
            *_relu_downsample(downsample, c2),
        )
        super().__init__(features, in_channels=in_channels, num_classes=num_classes,
                         image_size=image_size, hidden=hidden)


def _net(conv: str, downsample: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return AblationNet(conv=conv, downsample=downsample, in_channels=in_channels,
                       num_classes=num_classes, image_size=image_size)


@register_model(
    "ablate-std-max",
    family="ablation",
    description="ablation backbone: standard 3x3 convs, 2x2 max-pool downsampling",
    tags=TAGS,
    factors={"conv": "std", "downsample": "max"},
)
def ablate_std_max(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Standard convolutions, max-pool.  The cell most tutorials use (LeNet's choices)."""
    return _net("std", "max", in_channels, num_classes, image_size)


@register_model(
    "ablate-std-avg",
    family="ablation",
    description="ablation backbone: standard 3x3 convs, 2x2 avg-pool downsampling",
    tags=TAGS,
    factors={"conv": "std", "downsample": "avg"},
)
def ablate_std_avg(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Standard convolutions, avg-pool: the ``convnet`` cell.  Against ``ablate-std-max``
    it isolates average vs max pooling."""
    return _net("std", "avg", in_channels, num_classes, image_size)


@register_model(
    "ablate-std-stride",
    family="ablation",
    description="ablation backbone: standard 3x3 convs, strided 3x3 conv downsampling",
    tags=TAGS,
    factors={"conv": "std", "downsample": "stride"},
)
def ablate_std_stride(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Standard convolutions, a learned stride-2 3x3 convolution in each pooling slot.
    Against the pooled cells it isolates strided convolution vs pooling."""
    return _net("std", "stride", in_channels, num_classes, image_size)


@register_model(
    "ablate-dil-max",
    family="ablation",
    description="ablation backbone: dilated (d=2) 3x3 convs, 2x2 max-pool downsampling",
    tags=TAGS,
    factors={"conv": "dil", "downsample": "max"},
)
def ablate_dil_max(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Dilated convolutions, max-pool.  Against ``ablate-std-max`` it isolates dilation
    (a 5x5 receptive field per 3x3 kernel, same weights, same map sizes)."""
    return _net("dil", "max", in_channels, num_classes, image_size)


@register_model(
    "ablate-dil-avg",
    family="ablation",
    description="ablation backbone: dilated (d=2) 3x3 convs, 2x2 avg-pool downsampling",
    tags=TAGS,
    factors={"conv": "dil", "downsample": "avg"},
)
def ablate_dil_avg(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Dilated convolutions, avg-pool.  Unlike ``dilated`` (unpadded, 512 features) its
    padding keeps the maps at ``convnet``'s sizes, so only dilation differs from ``ablate-std-avg``."""
    return _net("dil", "avg", in_channels, num_classes, image_size)


@register_model(
    "ablate-dil-stride",
    family="ablation",
    description="ablation backbone: dilated (d=2) 3x3 convs, strided 3x3 conv downsampling",
    tags=TAGS,
    factors={"conv": "dil", "downsample": "stride"},
)
def ablate_dil_stride(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Dilated convolutions, strided-conv downsampling: both non-default levels at once,
    the cell that shows whether the two factors interact."""
    return _net("dil", "stride", in_channels, num_classes, image_size)
