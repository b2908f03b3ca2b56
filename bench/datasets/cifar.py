"""CIFAR-10 from torchvision's python-pickle batches (``cifar-10-batches-py/``), 3x32x32 RGB.

Found like MNIST (``--data-dir``, ``$CNNBENCH_DATA``, the user cache), in ``<root>/cifar10/``,
``<root>/cifar-10-batches-py/`` or ``<root>/cifar10/cifar-10-batches-py/``; downloaded with
torchvision only when missing and downloads are allowed.  The batches are pickles: they are
read with an unpickler that builds numpy arrays and nothing else, so a file that is not
what it claims cannot run code.
"""

from __future__ import annotations

import pickle
import socket
from pathlib import Path

from ..errors import BenchError, DatasetNotFoundError
from .locate import DATA_ENV, DataSearch, cache_dir
from .registry import DatasetSpec, register_dataset

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BATCHES = "cifar-10-batches-py"
FOLDERS = ("cifar10", BATCHES, f"cifar10/{BATCHES}")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
DOWNLOAD_TIMEOUT_S = 60
# What a CIFAR batch pickle may build: numpy arrays (numpy 1 and 2 spell the module
# differently) and the bytes of Python 2 strings.  Anything else is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to build {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict:
    """One pickled batch as a dict (keys as text)."""
    try:
        with open(path, "rb") as fh:
            data = _ArraysOnly(fh, encoding="latin1").load()
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise BenchError(f"{path} is not a CIFAR python batch ({exc})") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path} is not a CIFAR python batch (it holds a {type(data).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}


def _images_and_labels(path: Path):
    import numpy as np

    batch = read_batch(path)
    if "data" not in batch or "labels" not in batch:
        raise BenchError(f"{path} has no 'data' and 'labels' (keys: {', '.join(map(str, batch))})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise BenchError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    return data.reshape(-1, 3, 32, 32), labels


def find_cifar_folder(search: DataSearch) -> Path | None:
    for _label, root in search.roots():
        for folder in (*(root / f for f in FOLDERS), root):
            if all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
                return folder
    return None


def load_cifar_folder(folder: Path):
    import numpy as np

    from .tensors import from_numpy

    parts = [_images_and_labels(folder / name) for name in TRAIN_FILES]
    test_x, test_y = _images_and_labels(folder / TEST_FILE)
    classes = CIFAR10_CLASSES
    if (folder / META_FILE).is_file():
        names = read_batch(folder / META_FILE).get("label_names")
        if names:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return from_numpy("cifar10", classes, str(folder),
                      np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]),
                      test_x, test_y)


def load_cifar10(search: DataSearch):
    folder = find_cifar_folder(search)
    if folder is None and search.download:
        folder = _download()
    if folder is None:
        looked = "; ".join(str(root) for _label, root in search.roots())
        raise DatasetNotFoundError(
            f"cifar10 not found (looked in {looked}) and it could not be downloaded. Put torchvision's "
            f"{BATCHES}/ folder ({', '.join(TRAIN_FILES[:1])}..5, {TEST_FILE}, {META_FILE}) in <DIR>/cifar10/ "
            f"and pass --data-dir DIR or set {DATA_ENV}=DIR")
    return load_cifar_folder(folder)


def _download() -> Path | None:
    """torchvision's CIFAR10 download into the user cache; None when the network says no."""
    import torchvision.datasets as tvd

    root = cache_dir()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        tvd.CIFAR10(root=str(root), train=True, download=True)
    except Exception:  # noqa: BLE001 - any failure means "not available", said by the caller
        return None
    finally:
        socket.setdefaulttimeout(previous)
    return find_cifar_folder(DataSearch(root, download=False, env={}))


register_dataset(DatasetSpec(
    name="cifar10",
    description="CIFAR-10 colour photos in 10 classes, 50k train / 10k test, 3x32x32",
    load=load_cifar10,
))
