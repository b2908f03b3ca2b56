"""Where dataset files are looked for, in order, and how a missing one is reported."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DATA_ENV = "CNNBENCH_DATA"
NO_DOWNLOAD_ENV = "CNNBENCH_NO_DOWNLOAD"

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def cache_dir() -> Path:
    """The user cache root (``$XDG_CACHE_HOME/cnnbench`` or ``~/.cache/cnnbench``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnbench"


@dataclass(frozen=True)
class DataSearch:
    """The roots to search, in order, and whether a download may be tried."""

    data_dir: Path | None = None
    download: bool = True
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # Folder datasets by name (bench.datasets.folder.FolderSource): how a worker reads again
    # the folder:PATH dataset the driver named.
    folders: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_cli(cls, data_dir: str | None, download: bool = True, folders: dict | None = None) -> DataSearch:
        allow = download and not os.environ.get(NO_DOWNLOAD_ENV)
        return cls(Path(data_dir).expanduser() if data_dir else None, allow, folders=dict(folders or {}))

    def roots(self, extra: Sequence[Path] = ()) -> list[tuple[str, Path]]:
        """(label, root) pairs in lookup order: option, environment, cache, then extras."""
        found: list[tuple[str, Path]] = []
        if self.data_dir is not None:
            found.append(("--data-dir", self.data_dir))
        if self.env.get(DATA_ENV):
            found.append((f"${DATA_ENV}", Path(self.env[DATA_ENV]).expanduser()))
        found.append(("cache", cache_dir()))
        found.extend(("system", Path(p)) for p in extra)
        return found


def idx_file(folder: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in ``folder``, preferring the uncompressed copy."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def candidate_folders(root: Path, folders: Sequence[str]) -> Iterator[Path]:
    """The folders under ``root`` that may hold the files, and ``root`` itself last.

    ``root`` itself counts so that pointing at the dataset folder directly works too
    (e.g. Debian's ``/usr/share/datasets/fashion-mnist``).
    """
    for name in folders:
        yield root / name
    yield root


def find_idx_folder(search: DataSearch, folders: Sequence[str], extra_roots: Sequence[Path] = ()) -> Path | None:
    """The first folder, in lookup order, that holds all four IDX files."""
    for _label, root in search.roots(extra_roots):
        for folder in candidate_folders(root, folders):
            if all(idx_file(folder, stem) for stem in IDX_FILES.values()):
                return folder
    return None
