"""Dataset.pixel_stats: exact, and without a float64 copy of the images."""

from __future__ import annotations

import math

import torch

from bench.datasets import Dataset, Split


def _dataset(pixels: list[int]) -> Dataset:
    images = torch.tensor(pixels, dtype=torch.uint8).reshape(len(pixels), 1, 1, 1)
    split = Split(images, torch.zeros(len(pixels), dtype=torch.int64))
    return Dataset("t", ("0",), split, split, "test")


def test_pixel_stats_hand_computed():
    # [0, 255]: mean 1/2; sample variance ((1/2)^2 + (1/2)^2) / (2 - 1) = 1/2
    mean, std = _dataset([0, 255]).pixel_stats()
    assert mean == 0.5 and std == math.sqrt(0.5)
    # [0, 51, 102]: in [0,1] that is 0, 0.2, 0.4: mean 0.2, sample variance 0.08 / 2 = 0.04
    mean, std = _dataset([0, 51, 102]).pixel_stats()
    assert mean == 0.2 and std == 0.2


def test_pixel_stats_agree_with_torch_on_random_images():
    images = torch.randint(0, 256, (500, 1, 28, 28), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    dataset = Dataset("t", ("0",), Split(images, torch.zeros(500, dtype=torch.int64)),
                      Split(images[:1], torch.zeros(1, dtype=torch.int64)), "test")
    x = images.to(torch.float64) / 255
    mean, std = dataset.pixel_stats()
    assert math.isclose(mean, float(x.mean()), rel_tol=1e-12)
    assert math.isclose(std, float(x.std()), rel_tol=1e-9)
