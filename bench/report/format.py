"""How the report writes numbers (the tests format their expectations with these too)."""

from __future__ import annotations

import math
import re


def missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: float, digits: int = 2) -> str:
    return "–" if missing(x) else f"{x * 100:.{digits}f}"


def pp(x: float, digits: int = 2) -> str:
    return "–" if missing(x) else f"{x * 100:+.{digits}f}"


def pval(p: float) -> str:
    if missing(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def seconds(x: float) -> str:
    if missing(x):
        return "–"
    if x < 1:
        return f"{x * 1000:.0f} ms" if x < 0.1 else f"{x:.2f} s"
    if x < 120:
        return f"{x:.1f} s"
    minutes, sec = divmod(int(round(x)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "_", text.lower())
