"""The skeleton most families share: a feature stack, then an MLP classifier over it.

A family builds only its own ``features``; :class:`FeatureNet` probes how many features
they yield and puts :func:`mlp_head` on top.  The attribute names ``features`` and
``classifier`` and the layer order inside the head are fixed here, so state_dict keys
(``features.0.weight``, ``classifier.1.weight``, ...) stay the same in every family.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ._shapes import flat_features


def relu_maxpool(kernel: int = 2) -> list[nn.Module]:
    """ReLU followed by a ``kernel`` x ``kernel`` max-pool, run as max-pool then ReLU.

    The two orders are the same function with the same gradients, bit for bit: ReLU is
    monotone, so it commutes with max, and where they could disagree (every value of a
    window <= 0, where the two orders may route the gradient to different positions) the
    ReLU's gradient is zero either way; ``tests/test_architectures.py`` checks this for
    every network.  Pooling first runs ReLU and its backward on a quarter of the values:
    on the 2-core CPU at one thread (median of 12 alternating paired rounds of thread CPU
    time), training steps got faster by 1.28x for ``ablate-std-max``, 1.29x
    ``ablate-dil-max``, 1.16x ``bn-convnet``, 1.04x ``lenet`` and ``lenet-12``.
    """
    return [nn.MaxPool2d(kernel), nn.ReLU(inplace=True)]


def mlp_head(
    in_features: int, hidden: Sequence[int], num_classes: int, *, dropout: float = 0.0
) -> nn.Sequential:
    """Flatten -> (Linear -> ReLU [-> Dropout]) per hidden width -> Linear to the logits.

    ``dropout`` > 0 puts a Dropout after every hidden ReLU; an empty ``hidden`` gives a
    single linear layer.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class FeatureNet(nn.Module):
    """``features`` -> ``classifier`` (an :func:`mlp_head` sized by probing ``features``)."""

    def __init__(
        self,
        features: nn.Sequential,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.features = features
        n = flat_features(self.features, in_channels, image_size)
        self.classifier = mlp_head(n, hidden, num_classes, dropout=dropout)

    def forward(self, x):
        return self.classifier(self.features(x))
