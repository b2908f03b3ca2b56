"""The network of PyTorch's official MNIST example (``pytorch/examples/mnist/main.py``).

Two unpadded 3x3 convolutions back to back, one max-pool, and dropout 0.25 / 0.5 around
a 128-unit hidden layer.  The example ends in ``log_softmax``; here it returns logits,
since the loss is the trainer's job (cross-entropy on logits is the same objective).
"""

from __future__ import annotations

from torch import nn

from ._blocks import FeatureNet
from .registry import register_model


class ExamplesNet(FeatureNet):
    """conv -> ReLU -> conv -> ReLU -> max-pool -> dropout -> FC -> ReLU -> dropout -> FC."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,
        dropout: tuple[float, float] = (0.25, 0.5),
    ) -> None:
        c1, c2 = channels
        features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, stride=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, stride=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(dropout[0]),
        )
        super().__init__(features, in_channels=in_channels, num_classes=num_classes,
                         image_size=image_size, hidden=(hidden,), dropout=dropout[1])


@register_model(
    "examples-net",
    family="examples-net",
    description="pytorch/examples MNIST net: 3x3 convs (32, 64), one max-pool, dropout, FC 9216-128",
    tags=("seed", "dropout"),
)
def examples_net(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """conv 1->32 3x3, conv 32->64 3x3, max-pool 2, dropout 0.25, FC 9216->128, dropout 0.5, FC 128->10.

    28x28 becomes 26, 24, 12: 64*12*12 = 9216 features.  Illustrates pooling late and
    once: the huge first FC layer (1.2M weights) is regularised by dropout instead.
    """
    return ExamplesNet(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
