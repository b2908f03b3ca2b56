"""MNIST and Fashion-MNIST from their canonical IDX files (found, or downloaded)."""

from __future__ import annotations

import socket
from pathlib import Path

from ..errors import DatasetNotFoundError
from .locate import DATA_ENV, IDX_FILES, DataSearch, cache_dir, find_idx_folder, idx_file
from .registry import DatasetSpec, register_dataset

DIGIT_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Kuzushiji-MNIST's classes: the romanized hiragana each one stands for (torchvision's names).
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
DOWNLOAD_TIMEOUT_S = 20


def load_idx_folder(name: str, classes: tuple[str, ...], folder: Path):
    from .idx import read_idx
    from .tensors import from_numpy  # numpy and torch: only once a dataset is loaded

    paths = {key: idx_file(folder, stem) for key, stem in IDX_FILES.items()}
    arrays = {key: read_idx(p, ndim=3 if key.endswith("images") else 1) for key, p in paths.items()}
    return from_numpy(
        name, classes, str(folder),
        arrays["train_images"], arrays["train_labels"],
        arrays["test_images"], arrays["test_labels"],
    )


def _idx_loader(name: str, classes: tuple[str, ...], tv_name: str, extra_roots: tuple[str, ...] = ()):
    # Accept both the flat layout (<root>/mnist/) and torchvision's (<root>/MNIST/raw/).
    folders = (name, f"{tv_name}/raw")

    def load(search: DataSearch):
        extras = [Path(p) for p in extra_roots]
        folder = find_idx_folder(search, folders, extras)
        if folder is None and search.download:
            folder = _download(tv_name, folders)
        if folder is None:
            looked = "; ".join(str(root) for _label, root in search.roots(extras))
            raise DatasetNotFoundError(
                f"{name} not found (looked in {looked}) and it could not be downloaded. "
                f"Put the four IDX files ({', '.join(IDX_FILES.values())}, optionally .gz) in "
                f"<DIR>/{name}/ and pass --data-dir DIR or set {DATA_ENV}=DIR"
            )
        return load_idx_folder(name, classes, folder)

    return load


def _download(tv_name: str, folders: tuple[str, ...]) -> Path | None:
    """Let torchvision fetch the files into the cache; None when the network says no."""
    import torchvision.datasets as tvd

    root = cache_dir()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # fail fast on a closed network
    try:
        getattr(tvd, tv_name)(root=str(root), train=True, download=True)
        getattr(tvd, tv_name)(root=str(root), train=False, download=True)
    except Exception:  # noqa: BLE001 - any failure means "not available", said by the caller
        return None
    finally:
        socket.setdefaulttimeout(previous)
    return find_idx_folder(DataSearch(root, download=False, env={}), folders)


register_dataset(DatasetSpec(
    name="mnist",
    description="MNIST handwritten digits, 60k train / 10k test, 28x28",
    load=_idx_loader("mnist", DIGIT_CLASSES, "MNIST"),
))

register_dataset(DatasetSpec(
    name="fashion-mnist",
    description="Fashion-MNIST clothing images, 60k train / 10k test, 28x28",
    # Debian's dataset-fashion-mnist package installs the four files here.
    load=_idx_loader("fashion-mnist", FASHION_CLASSES, "FashionMNIST",
                     extra_roots=("/usr/share/datasets/fashion-mnist",)),
))

register_dataset(DatasetSpec(
    name="kmnist",
    description="Kuzushiji-MNIST cursive Japanese characters, 60k train / 10k test, 28x28",
    load=_idx_loader("kmnist", KMNIST_CLASSES, "KMNIST"),
))
