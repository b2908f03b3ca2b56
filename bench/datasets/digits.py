"""scikit-learn's bundled 8x8 digits, upscaled to 28x28: a dataset that needs nothing.

1,797 images, so a whole grid trains in seconds: for tests, CI and machines with no MNIST.
"""

from __future__ import annotations

from .locate import DataSearch
from .mnist import DIGIT_CLASSES
from .registry import DatasetSpec, register_dataset

IMAGE_SIZE = 28
TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed: the test set is part of the dataset, not of a run


def load_digits_dataset(_search: DataSearch | None = None):
    # Imported here: registering the dataset must not cost scikit-learn's import.
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from .tensors import from_numpy

    bunch = load_digits()
    # Pixel values are 0..16; scale to 0..255 and resize like MNIST's 28x28 frames.
    small = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)
    big = F.interpolate(small, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    images = big.round().clamp(0, 255).to(torch.uint8).squeeze(1).numpy()
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return from_numpy(
        "digits", DIGIT_CLASSES, "sklearn.datasets.load_digits (8x8 upscaled to 28x28)",
        images[train_idx], labels[train_idx], images[test_idx], labels[test_idx],
    )


register_dataset(DatasetSpec(
    name="digits",
    description="scikit-learn's 8x8 digits upscaled to 28x28 (1,437 train / 360 test); embedded",
    load=load_digits_dataset,
))
