"""The tutorial recipe, reproduced faithfully: the reference ``bench perf`` compares against.

torchvision's ``MNIST`` / ``FashionMNIST`` dataset reads the same IDX files cnnbench reads,
every sample goes through ``ToTensor()`` + ``Normalize()``, a ``DataLoader(batch_size=64,
shuffle=True)`` collates batches, and an eager model takes ``opt.zero_grad();
loss.backward(); opt.step()`` steps - what the PyTorch MNIST tutorials do.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from architectures import build_model

from ..datasets import Dataset
from ..datasets.locate import IDX_FILES, idx_file
from ..devices import synchronize
from ..seeding import seed_everything

# torchvision's class for each cnnbench dataset; digits is MNIST-shaped, so MNIST reads it.
TORCHVISION_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "digits": "MNIST"}


def torchvision_root(dataset: Dataset, root: Path) -> tuple[Path, str]:
    """Lay out ``dataset``'s IDX files as torchvision expects them, under ``root``.

    torchvision reads ``<root>/<Class>/raw/<name>`` uncompressed.  The dataset's own files
    are linked when uncompressed and decompressed when gzipped; a dataset with no files
    (the embedded digits) is written as IDX from its tensors.  ``root`` is a scratch
    folder: dataset files never go into the repository.
    """
    tv_name = TORCHVISION_CLASS.get(dataset.name, "MNIST")
    raw = root / tv_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    source = Path(dataset.source)
    found = {key: idx_file(source, stem) for key, stem in IDX_FILES.items()} if source.is_dir() else {}
    for key, stem in IDX_FILES.items():
        target = raw / stem
        path = found.get(key)
        if path is None:
            split = dataset.train if key.startswith("train") else dataset.test
            array = split.images[:, 0].numpy() if key.endswith("images") else split.labels.numpy()
            write_idx(target, array)
        elif path.suffix == ".gz":
            with gzip.open(path, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            os.symlink(path.resolve(), target)
    return root, tv_name


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (magic 0x0000080N, big-endian dims, raw bytes)."""
    data = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, data.ndim]) + np.asarray(data.shape, dtype=">i4").tobytes()
    path.write_bytes(header + data.tobytes())


def recipe_loader(root: Path, tv_name: str, mean: float, std: float, batch_size: int, *, train: bool = True):
    """The tutorial's DataLoader: shuffled training batches, or the test split in order."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    split = getattr(datasets, tv_name)(str(root), train=train, download=False, transform=transform)
    return DataLoader(split, batch_size=batch_size, shuffle=train)


class RecipeSession:
    """The recipe's model, optimizer and loader, timed in blocks of steps (or epochs)."""

    def __init__(self, arch: str, loader, *, device: str, lr: float = 1e-3, seed: int = 0) -> None:
        seed_everything(seed)
        self.device = device
        self.loader = loader
        self.model = build_model(arch, in_channels=1, num_classes=10, image_size=28).to(device)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.stream = _endless(loader)

    def _train(self, batches: Iterator) -> int:
        model, optimizer, device = self.model, self.optimizer, self.device
        images = 0
        for data, target in batches:
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = F.cross_entropy(output, target)
            loss.backward()
            optimizer.step()
            images += len(target)
        return images

    def warm_up(self, steps: int) -> None:
        self._train(_take(self.stream, steps))

    def block(self, steps: int | None) -> tuple[int, float]:
        """Images and seconds of ``steps`` steps, or of one whole epoch (a new iterator) if None.

        Epoch boundaries inside the block (a new DataLoader iterator) are timed: the
        recipe pays them.
        """
        synchronize(self.device)
        t0 = time.perf_counter()
        images = self._train(iter(self.loader) if steps is None else _take(self.stream, steps))
        synchronize(self.device)
        return images, time.perf_counter() - t0


def _endless(loader) -> Iterator:
    while True:
        yield from loader


def _take(stream: Iterator, n: int) -> Iterator:
    for _ in range(n):
        yield next(stream)
