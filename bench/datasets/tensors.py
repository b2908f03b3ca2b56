"""The in-memory form of a dataset: uint8 image tensors and int64 labels, nothing else.

Keeping each split as one tensor (N, C, H, W) lets training slice batches by index on the
target device and normalize them there, instead of running per-sample PIL transforms.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..errors import BenchError


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, (N, C, H, W): C is 1 (grayscale) or 3 (RGB)
    labels: torch.Tensor  # int64, (N,)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N,C,H,W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be int64 with one entry per image")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor | np.ndarray) -> Split:
        index = torch.as_tensor(index, dtype=torch.int64)
        return Split(self.images[index], self.labels[index])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split
    source: str  # where it was read from, for the results and the report header

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sha256(self) -> str:
        """Checksum of what training sees, whatever files it came from: names a dataset in the report
        without the machine's paths."""
        return content_sha256(self.classes, self.train, self.test)

    def pixel_stats(self) -> tuple[float, float] | tuple[tuple[float, ...], tuple[float, ...]]:
        """Mean and (sample) std of training pixels in [0, 1] (MNIST: 0.1307, 0.3081).

        Grayscale: two numbers.  Colour: one per channel (two tuples), as colour images
        are normalized channel by channel.
        """
        images = self.train.images
        if images.shape[1] == 1:
            return _stats(images)
        per_channel = [_stats(images[:, c]) for c in range(images.shape[1])]
        return tuple(m for m, _ in per_channel), tuple(s for _, s in per_channel)


def content_sha256(classes, train: Split, test: Split) -> str:
    """SHA-256 of the class names and both splits' images and labels (shapes included)."""
    h = hashlib.sha256("\n".join(classes).encode())
    for key, tensor in (("train_images", train.images), ("train_labels", train.labels),
                        ("test_images", test.images), ("test_labels", test.labels)):
        tensor = tensor.detach().cpu().contiguous()
        h.update(f"|{key}{tuple(tensor.shape)}|".encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


def _stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and sample std of uint8 pixels, scaled to [0, 1].

    From a 256-bin histogram with exact integer sums: a float64 copy of MNIST would
    take 376 MB (twice that while dividing) in every worker process.
    """
    counts = torch.bincount(images.flatten(), minlength=256).tolist()
    n = sum(counts)
    s1 = sum(v * c for v, c in enumerate(counts))
    s2 = sum(v * v * c for v, c in enumerate(counts))
    variance = (n * s2 - s1 * s1) / (n * (n - 1) * 255**2)  # exact ints, one rounding
    return s1 / (255 * n), math.sqrt(variance)


def from_numpy(
    name: str, classes: tuple[str, ...], source: str,
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
) -> Dataset:
    """Build a Dataset from (N, H, W) or (N, C, H, W) uint8 arrays and label arrays, checking they agree."""
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if len(x) != len(y):
            raise BenchError(
                f"{name} {split} split has {len(x)} images but {len(y)} labels ({source}); "
                "the image and label files do not belong together"
            )
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise BenchError(f"{name} {split} labels outside 0..{len(classes) - 1} ({source})")
    return Dataset(
        name=name,
        classes=classes,
        train=_split(train_x, train_y),
        test=_split(test_x, test_y),
        source=source,
    )


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    # A copy: the IDX reader hands out read-only views of the file buffer.
    images = torch.from_numpy(np.array(x, dtype=np.uint8, copy=True))
    if images.dim() == 3:
        images = images.unsqueeze(1)  # grayscale: one channel
    return Split(images, torch.from_numpy(np.asarray(y, dtype=np.int64)))


def validation_split(train: Split, fraction: float, seed: int = 0) -> tuple[Split, Split | None]:
    """Hold out a fixed, seeded, stratified ``fraction`` of ``train`` for validation.

    The seed is fixed (not the run's seed) so every run of a grid validates on the same
    images: validation curves then compare architectures, not validation sets.
    """
    if fraction == 0:
        return train, None
    index = np.arange(len(train))
    keep, held = train_test_split(
        index, test_size=fraction, random_state=seed, stratify=train.labels.numpy()
    )
    return train.subset(np.sort(keep)), train.subset(np.sort(held))
