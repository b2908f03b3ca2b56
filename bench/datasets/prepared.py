"""A dataset made ready for one run: split for validation, on the run's device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .tensors import Dataset, Split, validation_split


@dataclass(frozen=True)
class PreparedData:
    """A dataset's splits on the run's device, with the normalization of its training pixels."""

    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split | None
    test: Split
    mean: float | tuple[float, ...]  # of training pixels in [0, 1]; one per channel for colour
    std: float | tuple[float, ...]
    # Colour only: mean and std as (1, C, 1, 1) tensors on the device, made once, so that a
    # normalization inside a captured CUDA graph copies nothing from the host.
    channel_mean: torch.Tensor | None = None
    channel_std: torch.Tensor | None = None

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,C,H,W) -> float32, normalized exactly like ToTensor() + Normalize()."""
        x = images.to(torch.float32).div_(255.0)
        if self.channel_mean is None:
            return x.sub_(self.mean).div_(self.std)
        return x.sub_(self.channel_mean).div_(self.channel_std)


def prepare_data(dataset: Dataset, val_fraction: float, device: str) -> PreparedData:
    mean, std = dataset.pixel_stats()
    train, val = validation_split(dataset.train, val_fraction)
    colour = isinstance(mean, tuple)
    return PreparedData(
        name=dataset.name,
        classes=dataset.classes,
        train=train.to(device),
        val=val.to(device) if val is not None else None,
        test=dataset.test.to(device),
        mean=mean,
        std=std,
        channel_mean=channel_tensor(mean, device) if colour else None,
        channel_std=channel_tensor(std, device) if colour else None,
    )


def channel_tensor(values: tuple[float, ...], device: str | torch.device = "cpu") -> torch.Tensor:
    """Per-channel statistics shaped to broadcast over (B, C, H, W), in float32 like the images."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)
