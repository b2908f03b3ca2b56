"""Assemble the report: stored files -> statistics -> figures -> one self-contained HTML.

The HTML embeds every figure as a base64 ``data:`` URI and its CSS inline, needs no
JavaScript and fetches nothing, so it opens from disk or as an e-mail attachment.  Apart
from the render date, the same stored files always give the same bytes.  The sections
themselves are ``bench.report.sections``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from ..errors import BenchError
from ..storage import atomic_write_text
from . import figures, stats
from .format import seconds, slug
from .load import Stored, load
from .sections import Figures, Section, dataset_view, sections_of

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
TEMPLATE = "report.html.j2"


@dataclass
class DatasetPart:
    """One dataset's part of the report: its facts, sample images and sections."""

    dataset: str
    info: dict[str, Any]
    samples: str | None
    sections: list[Section]

    @property
    def has_runs(self) -> bool:
        return any(s.key != "failed" for s in self.sections)


def dataset_part(stored: Stored, dataset: str, baseline: str | None, figs: Figures,
                 styles: dict[str, figures.Style]) -> DatasetPart:
    view = dataset_view(stored, dataset, baseline, figs, styles)
    info = stored.invocation.get("datasets", {}).get(dataset, {})
    samples = None
    if view.sample is not None and len(view.sample.get("train_images", [])):
        samples = view.figure(figures.samples_grid, "samples", view.sample["train_images"].numpy(),
                              view.sample["train_labels"].tolist(), view.classes)
    return DatasetPart(dataset, info, samples, sections_of(view))


def header(stored: Stored) -> dict[str, Any]:
    inv = stored.invocation
    base = inv.get("base_config", {})
    env = inv.get("environment", {})
    grid = inv.get("grid", {})
    optimizer = base.get("optimizer", "?")
    opt = f"{optimizer}, lr {base.get('lr', '?')}, batch {base.get('batch_size', '?')}"
    if optimizer == "sgd":
        opt += f", momentum {base.get('momentum')}"
    if base.get("weight_decay"):
        opt += f", weight decay {base['weight_decay']}"
    if base.get("lr_schedule", "none") != "none":
        opt += f", {base['lr_schedule']} schedule"
    finished, expected = int((stored.runs["status"] == "ok").sum()), len(inv.get("run_ids", [])) or len(stored.runs)
    return {
        "datasets": stored.datasets,
        "archs": stored.archs,
        "seeds": grid.get("seeds") or sorted(stored.runs["seed"].unique().tolist()),
        "epochs": base.get("epochs", "?"),
        "optimizer": opt,
        "test_weights": base.get("test_weights", "?"),
        "val_fraction": base.get("val_fraction", "?"),
        "device": f"{base.get('device', '?')} ({env.get('device_name', 'unknown')})",
        "precision": base.get("dtype", "float32") + (", TF32" if base.get("tf32") else ""),
        "torch": env.get("torch_version", "?"),
        "python": env.get("python_version", "?"),
        "started_at": inv.get("started_at", "?"),
        "git_commit": inv.get("git_commit", env.get("git_commit", "?")),
        "wall": seconds(float(inv["wall_seconds"])) if isinstance(inv.get("wall_seconds"), (int, float)) else "–",
        "executor": f"{inv.get('executor', '?')}, {inv.get('workers', '?')} worker(s)",
        "reproduce": inv.get("reproduce", ""),
        "interrupted": bool(inv.get("interrupted")),
        "finished": finished,
        "expected": expected,
        "warnings": inv.get("_warnings", []),
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,  # a typo in the template fails the tests, not silently
        trim_blocks=True, lstrip_blocks=True,
    )
    env.globals["anchor"] = lambda key, dataset: f"#{key}-{slug(dataset)}"
    return env


def render_report(out: Path, baseline: str | None = None) -> Path:
    """Render ``<out>/report.html`` and ``<out>/figures/*.png`` from the stored files."""
    out = Path(out)
    stored = load(out)
    if baseline is not None and baseline not in stored.archs:
        raise BenchError(f"--baseline {baseline!r} is not an architecture of {out}; "
                         f"it has: {', '.join(stored.archs)}")
    folder = out / FIGURES_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create {folder}: {exc.strerror or exc}") from None
    figs = Figures(folder)
    styles = figures.arch_styles(stored.archs)
    parts = [dataset_part(stored, d, baseline, figs, styles) for d in stored.datasets]
    figs.prune()
    html = _environment().get_template(TEMPLATE).render(
        h=header(stored), parts=parts, baseline=baseline,
        rendered_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        alpha=stats.ALPHA, confidence=int(stats.CONFIDENCE * 100),
        no_difference=stats.NO_DIFFERENCE,
    )
    path = out / REPORT_FILE
    atomic_write_text(path, html)
    return path
