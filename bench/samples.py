"""Images of each dataset, stored beside the tables for the report.

The report reads stored files only.  ``samples-<dataset>.pt`` holds a sample grid for its
header, one fixed test image for the feature maps, and the test labels (for per-class
results); ``errors-<dataset>.pt`` holds every test image some run of the grid got wrong,
so the report can show the images two networks disagree on; ``evaluations-<dataset>.pt``
holds a few test images as each evaluation changes them (shifted, corrupted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .datasets.tensors import Dataset
from .storage import atomic_torch_save

PER_CLASS = 2
PROBE_TEST_INDEX = 0  # fixed, so every report shows the same image


def samples_path(out: Path, dataset: str) -> Path:
    return Path(out) / f"samples-{dataset}.pt"


def errors_path(out: Path, dataset: str) -> Path:
    return Path(out) / f"errors-{dataset}.pt"


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
        "test_labels": dataset.test.labels.to(torch.int16),
        "classes": list(dataset.classes),
        "mean": mean,
        "std": std,
    })
    return path


def save_errors(out: Path, dataset: Dataset, wrong: list[np.ndarray]) -> Path:
    """Store the test images that any of ``wrong`` (per run: a bool per test image) marks."""
    union = np.zeros(len(dataset.test), dtype=bool)
    for w in wrong:
        if len(w) == len(union):
            union |= w
    index = torch.from_numpy(np.flatnonzero(union))
    path = errors_path(out, dataset.name)
    atomic_torch_save(path, {"index": index, "images": dataset.test.images[index].clone()})
    return path


def load_samples(out: Path, dataset: str) -> dict | None:
    path = samples_path(out, dataset)
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def load_errors(out: Path, dataset: str) -> dict | None:
    path = errors_path(out, dataset)
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


EXAMPLES_SHOWN = 6  # test images per evaluation the report shows transformed


def evaluation_examples_path(out: Path, dataset: str) -> Path:
    return Path(out) / f"evaluations-{dataset}.pt"


def save_evaluation_examples(out: Path, dataset: Dataset, test, evaluations: dict) -> Path:
    """Store the first few test images of the evaluations' subset, clean and as each evaluation
    changes them (``Evaluation.examples``): the report shows what was tested, from stored files.
    Merged with what an earlier call stored for other evaluations."""
    index = test.subset()[:EXAMPLES_SHOWN]
    images = dataset.test.images.cpu()[index]
    path = evaluation_examples_path(out, dataset.name)
    before = load_evaluation_examples(out, dataset.name) or {}
    shown = dict(before.get("by", {})) if before.get("index") is not None and \
        torch.equal(before["index"], index) else {}
    shown.update({name: dict(e.examples(images, test)) for name, e in evaluations.items()})
    atomic_torch_save(path, {"index": index, "labels": dataset.test.labels.cpu()[index].clone(),
                             "clean": images.clone(), "by": shown})
    return path


def load_evaluation_examples(out: Path, dataset: str) -> dict | None:
    path = evaluation_examples_path(out, dataset)
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None
