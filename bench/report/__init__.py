"""The comparative report: ``render_report(out)`` writes ``out/report.html`` and ``out/figures/``."""

from __future__ import annotations

from pathlib import Path


def render_report(out: Path, baseline: str | None = None, margin: float | None = None,
                  target: float | None = None) -> Path:
    # Imported lazily: matplotlib and seaborn cost a second, and only the report needs them.
    from .render import render_report as _render

    return _render(out, baseline=baseline, margin=margin, target=target)


__all__ = ["render_report"]
