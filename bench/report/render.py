"""Assemble the report: stored files -> statistics -> figures -> one self-contained HTML.

The HTML embeds every figure as a base64 ``data:`` URI and its CSS inline, needs no
JavaScript and fetches nothing, so it opens from disk or as an e-mail attachment.  Apart
from the render date, the same stored files always give the same bytes.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ..errors import BenchError
from ..storage import atomic_write_text
from . import features, figures, stats
from .load import Stored, load

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
TEMPLATE = "report.html.j2"
HIGHLIGHT = "background-color: #d7ecd9; font-weight: 600"


# -- number formatting (the tests format their own expectations with these) -------------
def pct(x: float, digits: int = 2) -> str:
    return "–" if x is None or math.isnan(x) else f"{x * 100:.{digits}f}"


def pp(x: float, digits: int = 2) -> str:
    return "–" if x is None or math.isnan(x) else f"{x * 100:+.{digits}f}"


def pval(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def ci_pct(lo: float, hi: float) -> str:
    return "–" if math.isnan(lo) else f"[{pct(lo)}, {pct(hi)}]"


def ci_pp(lo: float, hi: float) -> str:
    return "–" if math.isnan(lo) else f"[{pp(lo)}, {pp(hi)}]"


def seconds(x: float) -> str:
    if x is None or math.isnan(x):
        return "–"
    if x < 120:
        return f"{x:.1f} s"
    minutes, sec = divmod(int(round(x)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "_", text.lower())


# -- sections --------------------------------------------------------------------------
def leaderboard_html(board: pd.DataFrame, table_id: str) -> str:
    """The leaderboard via pandas Styler: sorted by accuracy, the leader and each column's best marked."""
    shown = pd.DataFrame({
        "rank": board["rank"],
        "architecture": board["arch"],
        "seeds": board["seeds"],
        "test acc. mean (%)": board["mean"] * 100,
        "std (pp)": board["std"] * 100,
        "95% t-CI (%)": [ci_pct(lo, hi) for lo, hi in zip(board["ci_low"], board["ci_high"])],
        "best-val acc. (%)": board["best_val_acc"] * 100,
        "test loss": board["test_loss"],
        "params": board["params"],
        "train MFLOP / image": board["flops_per_image"] / 1e6,
        "epoch time (s)": board["mean_epoch_seconds"],
        "train images / s": board["train_images_per_s"],
    })
    styler = (
        shown.style.set_uuid(table_id)
        .hide(axis="index")
        .format({"test acc. mean (%)": "{:.2f}", "std (pp)": "{:.2f}", "best-val acc. (%)": "{:.2f}",
                 "test loss": "{:.4f}", "params": "{:,.0f}", "train MFLOP / image": "{:.2f}",
                 "epoch time (s)": "{:.3f}", "train images / s": "{:,.0f}"}, na_rep="–")
        .highlight_max(subset=["test acc. mean (%)", "best-val acc. (%)", "train images / s"], props=HIGHLIGHT)
        .highlight_min(subset=["test loss", "epoch time (s)"], props=HIGHLIGHT)
        .apply(lambda row: ["font-weight: 700" if row["rank"] == 1 else "" for _ in row], axis=1)
        .set_table_attributes('class="data leaderboard"')
    )
    return styler.to_html(cell_ids=False, doctype_html=False)


def comparison_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{
        "arch": r.arch, "reference": r.reference, "n": r.n, "diff": pp(r.diff), "ci": ci_pp(r.ci_low, r.ci_high),
        "p": pval(r.p), "p_holm": pval(r.p_holm), "verdict": r.verdict,
        "cls": {"better": "better", "worse": "worse"}.get(r.verdict, "neutral"),
    } for r in frame.itertuples()]


def effect_rows(frame: pd.DataFrame, unit: str) -> list[dict[str, Any]]:
    rows = []
    for r in frame.itertuples():
        scale = (lambda v: pp(v)) if unit == "pp" else (lambda v: "–" if math.isnan(v) else f"{v:+.4f}")
        rows.append({"factor": r.factor, "level": r.level, "reference": r.reference, "n": r.n,
                     "diff": scale(r.diff), "ci": "–" if math.isnan(r.ci_low) else f"[{scale(r.ci_low)}, {scale(r.ci_high)}]",
                     "p": pval(r.p), "note": r.note})
    return rows


@dataclass
class Section:
    dataset: str
    classes: list[str]
    figures: dict[str, str] = field(default_factory=dict)  # key -> data URI
    mistakes: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)


class Figures:
    """Writes PNGs into figures/ and remembers them to embed (and to prune stale ones)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[Path] = []

    def path(self, name: str) -> Path:
        return self.folder / f"{slug(name)}.png"

    def uri(self, path: Path) -> str:
        self.written.append(path)
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")

    def prune(self) -> None:
        keep = {p.resolve() for p in self.written}
        for png in self.folder.glob("*.png"):
            if png.resolve() not in keep:
                png.unlink()


def dataset_section(stored: Stored, dataset: str, baseline: str | None, figs: Figures,
                    styles: dict[str, figures.Style]) -> Section:
    classes = stored.classes(dataset)
    section = Section(dataset=dataset, classes=classes)
    ctx = section.context
    runs = stored.ok[stored.ok["dataset"] == dataset]
    failed = stored.failed[stored.failed["dataset"] == dataset].sort_values(["arch", "seed"])
    ctx["failed"] = [
        {"arch": r["arch"], "seed": r["seed"], "status": r["status"], "run_id": r["run_id"],
         "error": "" if pd.isna(r.get("error")) else str(r.get("error"))}
        for _, r in failed.iterrows()
    ]
    info = stored.invocation.get("datasets", {}).get(dataset, {})
    ctx["fallback_reason"] = info.get("fallback_reason")
    ctx["source"] = info.get("source", "")
    ctx["sizes"] = (info.get("train_size"), info.get("test_size"))
    sample = stored.samples.get(dataset)
    if sample is not None and len(sample.get("train_images", [])):
        path = figures.samples_grid(sample["train_images"].numpy(), sample["train_labels"].tolist(), classes,
                                    figs.path(f"{dataset}-samples"))
        section.figures["samples"] = figs.uri(path)
    ctx["has_runs"] = not runs.empty
    if runs.empty:
        return section

    archs = [a for a in stored.archs if a in set(runs["arch"])]
    epochs = stored.epochs[stored.epochs["dataset"] == dataset]
    confusion = stored.confusion[stored.confusion["dataset"] == dataset]

    board = stats.leaderboard(runs)
    leader = board["arch"].iloc[0]
    ctx["board"] = board
    ctx["leaderboard_html"] = leaderboard_html(board, f"leaderboard-{slug(dataset)}")
    ctx["leader"] = leader
    ctx["max_seeds"] = int(board["seeds"].max())
    section.figures["accuracy"] = figs.uri(figures.accuracy_by_arch(runs, board, styles, figs.path(f"{dataset}-accuracy")))

    order = list(board["arch"])
    comparisons = []
    refs = [("leader", leader)] + ([("baseline", baseline)] if baseline and baseline != leader else [])
    ctx["comparison_notes"] = []
    for role, ref in refs:
        if ref not in order:
            ctx["comparison_notes"].append(f"The baseline {ref} has no finished run on {dataset}, so nothing is compared with it.")
            continue
        frame = stats.compare_to(runs, ref, order=order)
        if frame.empty:
            continue
        name = f"{dataset}-vs-{role}"
        comparisons.append({"role": role, "reference": ref, "rows": comparison_rows(frame),
                            "figure": figs.uri(figures.forest(frame, styles, ref, figs.path(name)))})
    ctx["comparisons"] = comparisons
    ctx["baseline_is_leader"] = baseline == leader

    # Factor effects (the ablation family): on test accuracy and on epoch time.
    factorial = stats.factorial_runs(runs)
    factors = stats.factor_columns(factorial)
    ctx["factors"] = [f.removeprefix("factor_") for f in factors]
    if factors:
        acc = stats.factor_effects(factorial, "test_acc")
        time = stats.factor_effects(factorial, "mean_epoch_seconds")
        ctx["factor_archs"] = sorted(set(factorial["arch"]))
        ctx["effects_acc"] = effect_rows(acc, "pp")
        ctx["effects_time"] = effect_rows(time, "s")
        section.figures["factors"] = figs.uri(figures.factor_effects(acc, time, figs.path(f"{dataset}-factor-effects")))
        if len(factors) >= 2:
            x, hue = (f.removeprefix("factor_") for f in factors[:2])
            cells = stats.interaction_table(factorial, x, hue)
            section.figures["interaction"] = figs.uri(figures.interaction(cells, x, hue, figs.path(f"{dataset}-interaction")))
            ctx["interaction_axes"] = (x, hue)

    # A seed group's epoch time is the wall time of all its runs' epochs at once: say so when
    # architectures were trained in groups of different sizes, whose times do not compare.
    groups = stats.seed_group_sizes(runs)
    ctx["seed_groups"] = sorted(groups.items()) if len(set(groups.values())) > 1 else []
    ctx["all_grouped"] = min(groups.values()) if len(set(groups.values())) == 1 and min(groups.values()) > 1 else 0

    if not epochs.empty:
        section.figures["curves"] = figs.uri(figures.curves(epochs, archs, styles, figs.path(f"{dataset}-curves")))
        section.figures["epoch_time"] = figs.uri(figures.epoch_times(epochs, archs, styles, figs.path(f"{dataset}-epoch-time")))
    section.figures["pareto"] = figs.uri(figures.pareto(board, styles, figs.path(f"{dataset}-pareto")))

    if not confusion.empty:
        section.figures["confusion"] = figs.uri(
            figures.confusion_grid(confusion, order, classes, figs.path(f"{dataset}-confusion")))
        per_class = stats.class_accuracy(confusion)
        section.figures["per_class"] = figs.uri(figures.per_class(per_class, archs, classes, styles,
                                                                  figs.path(f"{dataset}-per-class")))
        gaps = stats.largest_class_gaps(per_class)
        ctx["gaps"] = [{"cls": classes[int(g.cls)] if int(g.cls) < len(classes) else str(g.cls),
                        "higher": g.higher, "lower": g.lower, "acc_higher": pct(g.acc_higher),
                        "acc_lower": pct(g.acc_lower), "gap": pp(g.gap)}
                       for g in gaps.rename(columns={"class": "cls"}).itertuples()]

    fm = features.feature_maps(runs, order, sample, stored.out)
    ctx["feature_notes"] = fm.notes
    if fm.maps:
        label = classes[fm.probe_label] if fm.probe_label is not None and 0 <= fm.probe_label < len(classes) else "?"
        title = f"First convolution's outputs for test image #0 (class {label}); lowest seed of each architecture"
        section.figures["features"] = figs.uri(figures.feature_maps(fm.probe, fm.maps, title,
                                                                    figs.path(f"{dataset}-feature-maps")))
    for arch in order:
        worst = features.worst_mistakes(runs, arch, classes, stored.out)
        if worst is None:
            continue
        path = figures.misclassified(worst.images, worst.captions,
                                     f"{arch}: most confidently wrong test images (all seeds)",
                                     figs.path(f"{dataset}-misclassified-{arch}"))
        section.mistakes.append({"arch": arch, "uri": figs.uri(path)})
    return section


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
    sections = [dataset_section(stored, d, baseline, figs, styles) for d in stored.datasets]
    figs.prune()
    html = _environment().get_template(TEMPLATE).render(
        h=header(stored), sections=sections, baseline=baseline,
        rendered_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        alpha=stats.ALPHA, confidence=int(stats.CONFIDENCE * 100),
        no_difference=stats.NO_DIFFERENCE,
    )
    path = out / REPORT_FILE
    atomic_write_text(path, html)
    return path


