"""A few images of each dataset, stored beside the tables for the report.

The report reads stored files only; these give it a sample grid for its header and one
fixed test image to show what each network's first layer sees.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .datasets import Dataset
from .storage import atomic_torch_save

PER_CLASS = 2
PROBE_TEST_INDEX = 0  # fixed, so every report shows the same image


def samples_path(out: Path, dataset: str) -> Path:
    return Path(out) / f"samples-{dataset}.pt"


def save_samples(out: Path, dataset: Dataset) -> Path:
    labels = dataset.train.labels
    index = torch.cat([
        (labels == c).nonzero().flatten()[:PER_CLASS] for c in range(dataset.num_classes)
    ])
    mean, std = dataset.pixel_stats()
    path = samples_path(out, dataset.name)
    atomic_torch_save(path, {
        "train_images": dataset.train.images[index].clone(),
        "train_labels": labels[index].clone(),
        "probe_image": dataset.test.images[PROBE_TEST_INDEX].clone(),
        "probe_label": int(dataset.test.labels[PROBE_TEST_INDEX]),
        "classes": list(dataset.classes),
        "mean": mean,
        "std": std,
    })
    return path


def load_samples(out: Path, dataset: str) -> dict | None:
    path = samples_path(out, dataset)
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None
