"""Reading the IDX files MNIST-like datasets ship as (raw or gzip-compressed).

Format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code (0x08 = unsigned
byte), the number of dimensions, then one big-endian int32 per dimension, then the data.
Every check names the file, because "index out of range" three calls later helps nobody.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import BenchError

_UBYTE = 0x08


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Return the array stored in ``path``; it must hold unsigned bytes in ``ndim`` dims."""
    path = Path(path)
    try:
        raw = _read_bytes(path)
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BenchError(f"{path} is not a complete gzip file ({exc}); download it again") from None

    if len(raw) < 4:
        raise BenchError(f"{path} is empty or too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype_code, dims = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or dtype_code != _UBYTE:
        raise BenchError(
            f"{path} has a wrong magic number 0x{raw[:4].hex()} (expected 0x0000080{ndim}); "
            "is it an IDX file?"
        )
    if dims != ndim:
        kind = "images" if ndim == 3 else "labels"
        raise BenchError(
            f"{path} holds a {dims}-dimensional array where {kind} ({ndim} dims) were expected; "
            "are the image and label files swapped?"
        )
    header = 4 + 4 * dims
    if len(raw) < header:
        raise BenchError(f"{path} is truncated inside its header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=dims, offset=4))
    expected = int(np.prod(shape))
    actual = len(raw) - header
    if actual != expected:
        raise BenchError(
            f"{path} is truncated or padded: its header promises {expected} bytes of data "
            f"for shape {shape}, the file holds {actual}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        # Trust the content, not the name: torchvision leaves both compressed and
        # extracted copies around, and people gunzip files without renaming them.
        if head == b"\x1f\x8b":
            return gzip.decompress(fh.read())
        return fh.read()
