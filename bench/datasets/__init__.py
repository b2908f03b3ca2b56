"""Datasets by name: registered loaders that return uint8 tensors (``tensors.Dataset``).

Importing this package is cheap (no torch): the command line lists dataset names before
it knows whether it will load any.  The tensor types load on first use.
"""

from __future__ import annotations

from ..errors import DatasetNotFoundError
# Imported for their registrations, in the order help texts list the datasets.
from . import mnist, cifar, digits  # noqa: F401, I001
from .folder import FOLDER_PREFIX
from .locate import DATA_ENV, DataSearch, cache_dir
from .registry import DatasetSpec, dataset_names, get_dataset_spec, register_dataset

AUTO = "auto"
AUTO_PREFERENCE = "mnist"
AUTO_FALLBACK = "digits"
_LAZY = {"Dataset": "tensors", "Split": "tensors", "validation_split": "tensors",
         "PreparedData": "prepared", "prepare_data": "prepared"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_dataset(name: str, search: DataSearch | None = None):
    """A registered dataset by name, ``folder:PATH``, or a folder dataset ``search`` names."""
    search = search or DataSearch(download=False)
    if name in search.folders or name.startswith(FOLDER_PREFIX):
        from .folder import FolderSource, load_folder

        if name in search.folders:
            return load_folder(search.folders[name], expect_name=name)
        return load_folder(FolderSource.from_text(name.removeprefix(FOLDER_PREFIX)))
    return get_dataset_spec(name).load(search)


def resolve_auto(search: DataSearch):
    """Load MNIST if it can be had, else the embedded digits.

    Returns the dataset and, when it fell back, the reason (to be said loudly and
    recorded in the results).
    """
    try:
        return load_dataset(AUTO_PREFERENCE, search), None
    except DatasetNotFoundError as exc:
        # Only absence falls back: a corrupt MNIST is an error the user must see.
        return load_dataset(AUTO_FALLBACK, search), str(exc)


__all__ = [
    "AUTO", "DATA_ENV", "FOLDER_PREFIX", "DataSearch", "Dataset", "DatasetSpec", "PreparedData", "Split",
    "cache_dir", "dataset_names", "get_dataset_spec", "load_dataset", "prepare_data", "register_dataset",
    "resolve_auto", "validation_split",
]
