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
