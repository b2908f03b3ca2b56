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
    mean: float  # of training pixels in [0, 1]
    std: float

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,C,H,W) -> float32, normalized exactly like ToTensor() + Normalize()."""
        return images.to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std)


def prepare_data(dataset: Dataset, val_fraction: float, device: str) -> PreparedData:
    mean, std = dataset.pixel_stats()
    train, val = validation_split(dataset.train, val_fraction)
    return PreparedData(
        name=dataset.name,
        classes=dataset.classes,
        train=train.to(device),
        val=val.to(device) if val is not None else None,
        test=dataset.test.to(device),
        mean=mean,
        std=std,
    )
