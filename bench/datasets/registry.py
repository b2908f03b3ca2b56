"""Datasets by name.  Adding one is a single ``register_dataset`` entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BenchError
from .locate import DataSearch


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    load: Callable[[DataSearch], object]  # -> tensors.Dataset


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _DATASETS:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _DATASETS[spec.name] = spec
    return spec


def dataset_names() -> list[str]:
    return list(_DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    try:
        return _DATASETS[name]
    except KeyError:
        raise BenchError(
            f"unknown dataset {name!r}; choose from auto, {', '.join(dataset_names())} or folder:PATH"
        ) from None
