"""Shape helpers shared by the architecture families."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def feature_shape(features: nn.Module, in_channels: int, image_size: int) -> tuple[int, ...]:
    """Shape (C, H, W) that ``features`` produces for one image, found by a probe.

    Computing it beats hand-written constants that go stale when a kernel or padding
    changes.  The probe runs in eval mode so BatchNorm statistics are left untouched.
    """
    was_training = features.training
    features.eval()
    try:
        out = features(torch.zeros(1, in_channels, image_size, image_size))
    finally:
        features.train(was_training)
    return tuple(out.shape[1:])


def flat_features(features: nn.Module, in_channels: int, image_size: int) -> int:
    """Number of features ``features`` produces for one image (what ``nn.Flatten`` yields)."""
    return int(torch.Size(feature_shape(features, in_channels, image_size)).numel())
