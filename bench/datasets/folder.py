"""``folder:PATH``: a user's own images in ImageFolder layout (one subfolder per class).

Either ``PATH/train/<class>/`` and ``PATH/test/<class>/``, or one tree ``PATH/<class>/`` of
which a fixed, stratified share of each class is held out for testing.  Images are decoded
once with Pillow, resized to one square size, kept as uint8 tensors like the built-in sets,
and cached beside the data in ``PATH/.cnnbench-cache/`` (in the user cache when PATH is
read-only), keyed by the files' names, sizes and modification times.

A folder dataset is named by its content (``<folder>-<digest>``): new or changed images give
a new name and so new run ids, never a stale result reused.

Importing this module is cheap; Pillow, numpy and torch load when a folder is read.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import BenchError

FOLDER_PREFIX = "folder:"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed: the test set is part of the dataset, not of a run
CACHE_DIR = ".cnnbench-cache"
CACHE_VERSION = 1
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class FolderSource:
    """Where a folder dataset is read from and how: picklable, for workers to read it again."""

    path: str  # absolute
    image_size: int | None = None  # None: the images' own size

    @classmethod
    def from_text(cls, text: str, image_size: int | None = None) -> FolderSource:
        if not text.strip():
            raise BenchError(f"{FOLDER_PREFIX} needs a path: --dataset {FOLDER_PREFIX}PATH")
        return cls(str(Path(text.strip()).expanduser().resolve()), image_size)

    def spec(self) -> str:
        """How --dataset names it."""
        return FOLDER_PREFIX + self.path

    def describe(self) -> dict[str, object]:
        return {"path": self.path, "image_size": self.image_size}


@dataclass(frozen=True)
class ImageFile:
    path: Path
    label: int
    test: bool


def load_folder(source: FolderSource, expect_name: str | None = None):
    """The dataset in ``source``; ``expect_name``: the name the driver saw (a worker's check)."""
    root = Path(source.path)
    classes, files, layout = scan(root)
    key = cache_key(files, root, source.image_size, layout)
    cached = _read_cache(root, key, source.image_size)
    if cached is None:
        cached = _decode(root, classes, files, layout, source.image_size)
        _write_cache(root, key, source.image_size, cached)
    dataset = _dataset(root, cached)
    if expect_name is not None and dataset.name != expect_name:
        raise BenchError(f"the images in {root} changed since the grid started (now {dataset.name}, "
                         f"was {expect_name}); rerun to train on the current images")
    return dataset


# -- finding the images -----------------------------------------------------------------
def scan(root: Path) -> tuple[list[str], list[ImageFile], str]:
    """Class names, image files (sorted) and the layout (``train/test`` or ``split``)."""
    if not root.is_dir():
        raise BenchError(f"{FOLDER_PREFIX}{root}: not a directory")
    train, test = root / "train", root / "test"
    if train.is_dir() != test.is_dir():
        have, lack = (train, test) if train.is_dir() else (test, train)
        raise BenchError(f"{root} has {have.name}/ but no {lack.name}/: use both, or put the class "
                         "folders directly in it (a share of each class is then held out for testing)")
    if train.is_dir():
        classes = _class_dirs(train)
        test_classes = _class_dirs(test)
        extra = sorted(set(test_classes) - set(classes))
        if extra:
            raise BenchError(f"{test / extra[0]}: class {extra[0]!r} has no folder in {train}")
        _check_classes(train, classes)
        files = [f for c, name in enumerate(classes) for f in _images(train / name, c, False)]
        files += [f for c, name in enumerate(classes) if name in test_classes for f in _images(test / name, c, True)]
        if not any(f.test for f in files):
            raise BenchError(f"{test}: no images")
        return classes, files, "train/test"
    classes = _class_dirs(root)
    _check_classes(root, classes)
    return classes, [f for c, name in enumerate(classes) for f in _images(root / name, c, False)], "split"


def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _check_classes(folder: Path, classes: list[str]) -> None:
    if not classes:
        raise BenchError(f"{folder}: no class subfolders (expected {folder}/<class>/<image>, "
                         f"or {folder}/train/<class>/ and {folder}/test/<class>/)")
    if len(classes) == 1:
        raise BenchError(f"{folder}: only one class ({classes[0]}); a classifier needs at least two "
                         "class subfolders")


def _images(folder: Path, label: int, test: bool) -> list[ImageFile]:
    found = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not found:
        raise BenchError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return [ImageFile(p, label, test) for p in found]


def cache_key(files: list[ImageFile], root: Path, image_size: int | None, layout: str) -> str:
    """Digest of the files' names, sizes and modification times, and of how they are read."""
    h = hashlib.sha256(f"{CACHE_VERSION}|{layout}|{image_size}|{TEST_FRACTION}|{SPLIT_SEED}".encode())
    for f in files:
        st = f.path.stat()
        h.update(f"\n{f.path.relative_to(root)}|{f.label}|{f.test}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


# -- decoding ---------------------------------------------------------------------------
def _decode(root: Path, classes: list[str], files: list[ImageFile], layout: str, image_size: int | None) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    pictures: list[np.ndarray] = []
    sizes: Counter = Counter()
    first_of_size: dict[tuple[int, int], Path] = {}
    for f in files:
        try:
            with Image.open(f.path) as img:
                img.load()
                picture = img.convert("L" if img.mode in GRAY_MODES else "RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BenchError(f"{f.path}: cannot decode this image ({exc})") from None
        sizes[picture.size] += 1
        first_of_size.setdefault(picture.size, f.path)
        if image_size is not None and picture.size != (image_size, image_size):
            picture = picture.resize((image_size, image_size), Image.Resampling.BILINEAR)
        pictures.append(np.asarray(picture, dtype=np.uint8))

    (width, height), common = sizes.most_common(1)[0]
    if image_size is None:
        if len(sizes) > 1:
            odd = next(size for size in sizes if size != (width, height))
            raise BenchError(
                f"{first_of_size[odd]}: {odd[0]}x{odd[1]} pixels, while {common} of {len(files)} images are "
                f"{width}x{height}; pass --image-size N to resize every image to NxN")
        if width != height:
            raise BenchError(f"{first_of_size[(width, height)]}: the images are {width}x{height}, not square; "
                             "pass --image-size N to resize every image to NxN")
    colour = any(p.ndim == 3 and not (np.array_equal(p[..., 0], p[..., 1]) and np.array_equal(p[..., 0], p[..., 2]))
                 for p in pictures)
    if colour:
        images = np.stack([np.repeat(p[..., None], 3, 2) if p.ndim == 2 else p for p in pictures]).transpose(0, 3, 1, 2)
    else:
        images = np.stack([p if p.ndim == 2 else p[..., 0] for p in pictures])[:, None]
    labels = np.array([f.label for f in files], dtype=np.int64)
    test = np.array([f.test for f in files])
    if layout == "split":
        test = _held_out(root, labels, classes)

    size = image_size or width
    how = "train/ and test/ subfolders" if layout == "train/test" else \
        f"{TEST_FRACTION:.0%} of each class held out for testing"
    note = f"image folder, {how}, {'RGB' if colour else 'grayscale'} {size}x{size}"
    if image_size is not None and set(sizes) != {(size, size)}:
        common_size = f"{width}x{height}"
        note += f" (resized from {common_size}" + (f" and {len(sizes) - 1} other sizes)" if len(sizes) > 1 else ")")
    as_tensor = torch.from_numpy
    return {
        "version": CACHE_VERSION,
        "classes": list(classes),
        "train_images": as_tensor(np.ascontiguousarray(images[~test])),
        "train_labels": as_tensor(labels[~test]),
        "test_images": as_tensor(np.ascontiguousarray(images[test])),
        "test_labels": as_tensor(labels[test]),
        "note": note,
    }


def _held_out(root: Path, labels, classes: list[str]):
    """A fixed, stratified ``TEST_FRACTION`` of each class, as a boolean mask."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < 2:
        few = classes[int(counts.argmin())]
        raise BenchError(f"{root / few}: {int(counts.min())} image(s); holding out test images needs at "
                         "least 2 per class (or use train/ and test/ subfolders)")
    index = np.arange(len(labels))
    try:
        _, test_idx = train_test_split(index, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
    except ValueError as exc:
        raise BenchError(f"{root}: too few images to hold out {TEST_FRACTION:.0%} of each class for testing "
                         f"({exc}); add images or use train/ and test/ subfolders") from None
    mask = np.zeros(len(labels), dtype=bool)
    mask[test_idx] = True
    return mask


def content_digest(cached: dict) -> str:
    """Digest of what training sees: class names, images and labels of both splits (the same
    checksum config.json records of every dataset)."""
    from .tensors import Split, content_sha256

    return content_sha256(cached["classes"], Split(cached["train_images"], cached["train_labels"]),
                          Split(cached["test_images"], cached["test_labels"]))


def _dataset(root: Path, cached: dict):
    from .tensors import Dataset, Split

    slug = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-") or "folder"
    return Dataset(
        name=f"{slug}-{content_digest(cached)[:8]}",
        classes=tuple(cached["classes"]),
        train=Split(cached["train_images"], cached["train_labels"]),
        test=Split(cached["test_images"], cached["test_labels"]),
        source=f"{root}: {cached['note']}",
    )


# -- the cache --------------------------------------------------------------------------
def _cache_files(root: Path, key: str, image_size: int | None) -> list[Path]:
    from .locate import cache_dir

    tag = f"{image_size}px" if image_size else "native"
    name = f"{tag}-{key}.pt"
    beside = root / CACHE_DIR / name
    elsewhere = cache_dir() / "folders" / hashlib.sha256(str(root).encode()).hexdigest()[:16] / name
    return [beside, elsewhere]


def _read_cache(root: Path, key: str, image_size: int | None) -> dict | None:
    import torch

    for path in _cache_files(root, key, image_size):
        if path.is_file():
            try:
                cached = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - a damaged cache is decoded again, not an error
                continue
            if isinstance(cached, dict) and cached.get("version") == CACHE_VERSION:
                return cached
    return None


def _write_cache(root: Path, key: str, image_size: int | None, cached: dict) -> None:
    """Save the decoded images beside the data, else in the user cache; replace older
    versions of the same folder at the same size.  Failing to cache only costs time."""
    from ..storage import atomic_torch_save

    for path in _cache_files(root, key, image_size):
        try:
            atomic_torch_save(path, cached)
        except BenchError:
            continue
        tag = path.name.split("-")[0]
        for old in path.parent.glob(f"{tag}-*.pt"):
            if old != path:
                old.unlink(missing_ok=True)
        return
