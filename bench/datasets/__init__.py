"""Datasets: registered loaders that return uint8 tensors (see ``tensors.Dataset``)."""

from __future__ import annotations

from ..errors import BenchError, DatasetNotFoundError
from . import digits, mnist  # noqa: F401  (imported for their registrations)
from .locate import DATA_ENV, DataSearch, cache_dir
from .registry import DatasetSpec, dataset_names, get_dataset_spec, register_dataset
from .tensors import Dataset, Split, validation_split

AUTO = "auto"
AUTO_PREFERENCE = "mnist"
AUTO_FALLBACK = "digits"


def load_dataset(name: str, search: DataSearch) -> Dataset:
    return get_dataset_spec(name).load(search)


def resolve_auto(search: DataSearch) -> tuple[Dataset, str | None]:
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
    "AUTO", "DATA_ENV", "BenchError", "DataSearch", "Dataset", "DatasetSpec", "Split",
    "cache_dir", "dataset_names", "get_dataset_spec", "load_dataset", "register_dataset",
    "resolve_auto", "validation_split",
]
