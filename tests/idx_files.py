"""Writing small IDX files for tests (the inverse of bench.datasets.idx.read_idx)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from bench.datasets.locate import IDX_FILES


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> Path:
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_fake_mnist(
    folder: Path, n_train: int = 40, n_test: int = 20, *, compress: bool = True, seed: int = 0,
) -> dict[str, Path]:
    """Four IDX files of random 28x28 images with labels 0..9 cycling, in ``folder``."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28)),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28)),
        "test_labels": np.arange(n_test) % 10,
    }
    return {key: write_idx(folder / IDX_FILES[key], arrays[key], compress=compress) for key in arrays}
