"""Assemble the report: stored files -> statistics -> figures -> one self-contained HTML.

The HTML embeds every figure as a base64 ``data:`` URI and its CSS inline, needs no
JavaScript and fetches nothing, so it opens from disk or as an e-mail attachment.  Apart
from the render date, the same stored files always give the same bytes.  It opens with the
answer (``sections.answer``), then a table of contents, the setup, and the numbered
sections of ``bench.report.sections``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from ..errors import BenchError
from ..stats import ALPHA, DEFAULT_MARGIN, METHODS
from ..storage import atomic_write_text
from . import figures, paths
from .format import pct, seconds, slug
from .command import reproduce
from .load import Stored, load
from .sections import FIGURES_DIR, Figures, Section, answer, dataset_view, sections_of

REPORT_FILE = "report.html"
TEMPLATE = "report.html.j2"


@dataclass
class DatasetPart:
    """One dataset's part of the report: its answer, facts, sample images and sections."""

    dataset: str
    info: dict[str, Any]
    answer: dict[str, Any]
    samples: dict[str, Any] | None
    sections: list[Section]

    @property
    def has_runs(self) -> bool:
        return any(s.key != "failed" for s in self.sections)


def dataset_part(stored: Stored, dataset: str, figs: Figures, styles: dict[str, figures.Style],
                 **analysis: Any) -> DatasetPart:
    view = dataset_view(stored, dataset, figs, styles, **analysis)
    info = dict(stored.invocation.get("datasets", {}).get(dataset, {}))
    scrub = paths.scrubber(stored.out, stored.invocation)
    info["source"] = paths.shown_source(info, scrub)  # the dataset by name and checksum, not by folder
    if info.get("fallback_reason"):
        info["fallback_reason"] = scrub(str(info["fallback_reason"]))
    samples = None
    if view.sample is not None and len(view.sample.get("train_images", [])):
        samples = view.figure(figures.samples_grid, "samples", view.sample["train_images"].numpy(),
                              view.sample["train_labels"].tolist(), view.classes)
    return DatasetPart(dataset, info, answer(view), samples, sections_of(view))


def header(stored: Stored, margin: float, target: float | None, baseline: str | None) -> dict[str, Any]:
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
    rounds = stored.analysis.get("until_decided")
    scrub = paths.scrubber(stored.out, inv)
    command = reproduce(inv.get("reproduce", ""), baseline, margin, target, scrub)
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
        "reproduce": command,
        "placeholders": paths.placeholders_in(command),
        "interrupted": bool(inv.get("interrupted")),
        "finished": finished,
        "expected": expected,
        "warnings": [scrub(str(w)) for w in inv.get("_warnings", [])],
        "margin": f"{margin * 100:g}",
        "target": pct(target) + "%" if target is not None else "the lowest final validation accuracy among the "
                                                               "architectures",
        "rounds": (f"seeds added in rounds of {rounds['per_round']} until every comparison was decided, at most "
                   f"{rounds['max_seeds']} (--until-decided): looks after {', '.join(map(str, rounds['seeds']))} "
                   "seeds") if rounds else "",
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


def render_report(out: Path, baseline: str | None = None, margin: float | None = None,
                  target: float | None = None) -> Path:
    """Render ``<out>/report.html`` and ``<out>/figures/*.png`` from the stored files.

    ``baseline``, ``margin`` (a fraction) and ``target`` override what the grid was run with
    (config.json's ``analysis``).
    """
    out = Path(out)
    stored = load(out)
    analysis = stored.analysis
    baseline = baseline if baseline is not None else analysis.get("baseline")
    margin = margin if margin is not None else analysis.get("margin", DEFAULT_MARGIN)
    target = target if target is not None else analysis.get("target")
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
    parts = [dataset_part(stored, d, figs, styles, baseline=baseline, margin=margin, target=target)
             for d in stored.datasets]
    figs.prune()
    html = _environment().get_template(TEMPLATE).render(
        h=header(stored, margin, target, baseline), parts=parts, baseline=baseline,
        rendered_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        alpha=ALPHA, methods=METHODS,
        files=[name for name in ("runs.csv", "epochs.csv", "confusion.csv", "config.json") if (out / name).is_file()],
    )
    path = out / REPORT_FILE
    atomic_write_text(path, html)
    return path
