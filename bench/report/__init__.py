"""The comparative report: ``render_report(out)`` writes ``out/report.html`` and ``out/figures/``."""

from __future__ import annotations

import traceback
from pathlib import Path

from ..errors import BenchError, ReportFailed, one_line

# Where a failed rendering leaves its full traceback, inside --out.
REPORT_ERROR = "report-error.txt"


def render_report(out: Path, baseline: str | None = None, margin: float | None = None,
                  target: float | None = None) -> Path:
    # Imported lazily: matplotlib and seaborn cost a second, and only the report needs them.
    from .render import render_report as _render

    return _render(out, baseline=baseline, margin=margin, target=target)


def render_or_keep_traceback(out: Path, baseline: str | None = None, margin: float | None = None,
                             target: float | None = None) -> Path:
    """``render_report``, but a failure of the report's own code never costs the stored results:
    its traceback goes to ``out/report-error.txt`` and a one-line ``ReportFailed`` says how to retry.

    The tables and records are written before the report reads them, so nothing is lost.
    A user's mistake (a ``BenchError``: unknown --baseline, unreadable tables) stays as it is.
    """
    out = Path(out)
    trace = out / REPORT_ERROR
    try:
        path = render_report(out, baseline=baseline, margin=margin, target=target)
    except (BenchError, KeyboardInterrupt):
        raise
    except Exception as exc:
        from ..storage import atomic_write_text

        saved = ""
        try:
            atomic_write_text(trace, traceback.format_exc())
            saved = f"; the traceback is in {trace}"
        except OSError:
            pass
        raise ReportFailed(f"the report could not be rendered ({one_line(exc)}); every result is kept in "
                           f"{out}{saved}; retry with: python -m bench report {out}") from None
    trace.unlink(missing_ok=True)
    return path


__all__ = ["REPORT_ERROR", "render_or_keep_traceback", "render_report"]
