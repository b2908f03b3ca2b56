"""How a record stores an evaluation's results: JSON, with per-image values packed.

``record.json``'s ``evaluations`` maps each evaluation to ``{"values", "seconds", "per_image",
"details"}`` (or ``{"error", "seconds"}`` when it failed).  Per-image values are multiples of
1/``of`` in [0, 1], stored as base64 uint8 counts: 2,000 images take 2.7 KB.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def pack_counts(values: np.ndarray, of: int) -> dict[str, Any]:
    counts = np.rint(np.asarray(values, dtype=np.float64) * of)
    if counts.min(initial=0) < 0 or counts.max(initial=0) > of or of > 255:
        raise ValueError(f"per-image values must lie in [0, 1] in steps of 1/{of} (at most 255)")
    return {"images": int(len(counts)), "of": int(of),
            "counts": base64.b64encode(counts.astype(np.uint8).tobytes()).decode("ascii")}


def unpack_counts(packed: dict[str, Any]) -> np.ndarray:
    """The inverse of ``pack_counts``, as float64; a wrong length is a damaged record."""
    raw = np.frombuffer(base64.b64decode(packed["counts"], validate=True), dtype=np.uint8)
    if len(raw) != int(packed["images"]):
        raise ValueError(f"per-image values hold {len(raw)} bytes for {packed['images']} images")
    return raw.astype(np.float64) / int(packed["of"])


def encode(measured, seconds: float) -> dict[str, Any]:
    return {
        "values": {k: float(v) for k, v in measured.values.items()},
        "seconds": float(seconds),
        "per_image": {k: pack_counts(v, measured.denominators.get(k, 1)) for k, v in measured.per_image.items()},
        "details": measured.details,
    }


def values_of(evaluations: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Every stored number of a record's evaluations, with each one's wall time."""
    values: dict[str, float] = {}
    for name, result in evaluations.items():
        values.update(result.get("values", {}))
        if "seconds" in result:
            values[f"evaluation_seconds_{name}"] = result["seconds"]
    return values


def per_image_of(evaluations: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """column -> per-image values, of every evaluation of a record that stored some."""
    return {column: unpack_counts(packed) for result in evaluations.values()
            for column, packed in result.get("per_image", {}).items()}


def check_stored(evaluations: Any) -> None:
    """Raise ValueError when a record's ``evaluations`` is not what ``encode`` writes."""
    if not isinstance(evaluations, dict):
        raise ValueError("evaluations is not a mapping")
    for name, result in evaluations.items():
        if not isinstance(result, dict) or not ({"values", "error"} & set(result)):
            raise ValueError(f"evaluation {name!r} holds neither values nor an error")
        for packed in result.get("per_image", {}).values():
            unpack_counts(packed)
