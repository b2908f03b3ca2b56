"""The report's sections, in order: one small function each, from one dataset's stored runs.

A section function takes the ``DatasetView`` (everything read and computed once for a
dataset) and returns a ``Section`` - a title, an anchor and what its template
(``templates/sections/<key>.html.j2``) shows - or None when it has nothing to show.
The template numbers the sections; adding one is a function here, its template, and its
place in ``SECTIONS``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import features, figures, stats
from .format import ci_pct, ci_pp, missing, pct, pp, pval, slug
from .load import Stored

HIGHLIGHT = "background-color: #d7ecd9; font-weight: 600"


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


@dataclass
class Section:
    key: str  # its template's name, and with the dataset its anchor
    title: str
    dataset: str
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        return f"{self.key}-{slug(self.dataset)}"

    @property
    def template(self) -> str:
        return f"sections/{self.key}.html.j2"


@dataclass
class DatasetView:
    """What every section of one dataset reads, computed once."""

    stored: Stored
    dataset: str
    classes: list[str]
    runs: pd.DataFrame  # finished runs
    failed: pd.DataFrame
    epochs: pd.DataFrame
    confusion: pd.DataFrame
    baseline: str | None
    figs: Figures
    styles: dict[str, figures.Style]
    sample: dict | None
    board: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def order(self) -> list[str]:
        """Architectures, best mean test accuracy first."""
        return list(self.board["arch"])

    @property
    def archs(self) -> list[str]:
        """Architectures in grid order (the order colours are assigned in)."""
        present = set(self.runs["arch"])
        return [a for a in self.stored.archs if a in present]

    @property
    def leader(self) -> str:
        return self.board["arch"].iloc[0]

    def figure(self, draw: Callable[..., Path], name: str, *args: Any) -> str:
        """Draw a figure into figures/<dataset>-<name>.png and return its data URI."""
        return self.figs.uri(draw(*args, self.figs.path(f"{self.dataset}-{name}")))


def dataset_view(stored: Stored, dataset: str, baseline: str | None, figs: Figures,
                 styles: dict[str, figures.Style]) -> DatasetView:
    runs = stored.ok[stored.ok["dataset"] == dataset]
    view = DatasetView(
        stored=stored, dataset=dataset, classes=stored.classes(dataset), runs=runs,
        failed=stored.failed[stored.failed["dataset"] == dataset].sort_values(["arch", "seed"]),
        epochs=stored.epochs[stored.epochs["dataset"] == dataset],
        confusion=stored.confusion[stored.confusion["dataset"] == dataset],
        baseline=baseline, figs=figs, styles=styles, sample=stored.samples.get(dataset),
    )
    if not runs.empty:
        view.board = stats.leaderboard(runs)
    return view


# -- the sections ------------------------------------------------------------------------
def leaderboard(v: DatasetView) -> Section:
    return Section("leaderboard", "Leaderboard", v.dataset, {
        "table": leaderboard_html(v.board, f"leaderboard-{slug(v.dataset)}"),
        "max_seeds": int(v.board["seeds"].max()),
        "figure": v.figure(figures.accuracy_by_arch, "accuracy", v.runs, v.board, v.styles),
    })


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


def comparisons(v: DatasetView) -> Section:
    tables, notes = [], []
    refs = [("leader", v.leader)] + ([("baseline", v.baseline)] if v.baseline and v.baseline != v.leader else [])
    for role, ref in refs:
        if ref not in v.order:
            notes.append(f"The baseline {ref} has no finished run on {v.dataset}, so nothing is compared with it.")
            continue
        frame = stats.compare_to(v.runs, ref, order=v.order)
        if frame.empty:
            continue
        tables.append({"role": role, "reference": ref, "rows": comparison_rows(frame),
                       "figure": v.figure(figures.forest, f"vs-{role}", frame, v.styles, ref)})
    return Section("comparison", "Pairwise comparison", v.dataset, {
        "tables": tables, "notes": notes, "max_seeds": int(v.board["seeds"].max()),
        "baseline_is_leader": v.baseline == v.leader,
    })


def comparison_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{
        "arch": r.arch, "reference": r.reference, "n": r.n, "diff": pp(r.diff), "ci": ci_pp(r.ci_low, r.ci_high),
        "p": pval(r.p), "p_holm": pval(r.p_holm), "verdict": r.verdict,
        "cls": {"better": "better", "worse": "worse"}.get(r.verdict, "neutral"),
    } for r in frame.itertuples()]


def factor_effects(v: DatasetView) -> Section:
    factorial = stats.factorial_runs(v.runs)
    factors = stats.factor_columns(factorial)
    context: dict[str, Any] = {"factors": [f.removeprefix("factor_") for f in factors]}
    if factors:
        acc = stats.factor_effects(factorial, "test_acc")
        time = stats.factor_effects(factorial, "mean_epoch_seconds")
        context.update(archs=sorted(set(factorial["arch"])), tables=[
            ("test accuracy", effect_rows(acc, "pp"), "pp"), ("epoch time", effect_rows(time, "s"), "s")])
        context["figure"] = v.figure(figures.factor_effects, "factor-effects", acc, time)
        if len(factors) >= 2:
            x, hue = (f.removeprefix("factor_") for f in factors[:2])
            cells = stats.interaction_table(factorial, x, hue)
            context["interaction"] = v.figure(figures.interaction, "interaction", cells, x, hue)
            context["interaction_axes"] = (x, hue)
    return Section("factors", "Factor effects (ablation family)", v.dataset, context)


def effect_rows(frame: pd.DataFrame, unit: str) -> list[dict[str, Any]]:
    def scale(value: float) -> str:
        if unit == "pp":
            return pp(value)
        return "–" if missing(value) else f"{value:+.4f}"

    return [{"factor": r.factor, "level": r.level, "reference": r.reference, "n": r.n, "diff": scale(r.diff),
             "ci": "–" if missing(r.ci_low) else f"[{scale(r.ci_low)}, {scale(r.ci_high)}]",
             "p": pval(r.p), "note": r.note} for r in frame.itertuples()]


def curves(v: DatasetView) -> Section:
    shown = {} if v.epochs.empty else {"figure": v.figure(figures.curves, "curves", v.epochs, v.archs, v.styles)}
    return Section("curves", "Learning curves", v.dataset, shown)


def errors(v: DatasetView) -> Section:
    context: dict[str, Any] = {}
    if not v.confusion.empty:
        context["confusion"] = v.figure(figures.confusion_grid, "confusion", v.confusion, v.order, v.classes)
        per_class = stats.class_accuracy(v.confusion)
        context["per_class"] = v.figure(figures.per_class, "per-class", per_class, v.archs, v.classes, v.styles)
        gaps = stats.largest_class_gaps(per_class)
        context["gaps"] = [{"cls": _class_name(v.classes, int(g.cls)), "higher": g.higher, "lower": g.lower,
                            "acc_higher": pct(g.acc_higher), "acc_lower": pct(g.acc_lower), "gap": pp(g.gap)}
                           for g in gaps.rename(columns={"class": "cls"}).itertuples()]
    return Section("errors", "Where the networks err", v.dataset, context)


def cost(v: DatasetView) -> Section:
    # A seed group's epoch time is the wall time of all its runs' epochs at once: say so when
    # architectures were trained in groups of different sizes, whose times do not compare.
    groups = stats.seed_group_sizes(v.runs)
    sizes = set(groups.values())
    context: dict[str, Any] = {
        "seed_groups": sorted(groups.items()) if len(sizes) > 1 else [],
        "all_grouped": min(sizes) if len(sizes) == 1 and min(sizes) > 1 else 0,
        "pareto": v.figure(figures.pareto, "pareto", v.board, v.styles),
    }
    if not v.epochs.empty:
        context["epoch_time"] = v.figure(figures.epoch_times, "epoch-time", v.epochs, v.archs, v.styles)
    return Section("cost", "Cost", v.dataset, context)


def inside(v: DatasetView) -> Section:
    fm = features.feature_maps(v.runs, v.order, v.sample, v.stored.out)
    context: dict[str, Any] = {"notes": fm.notes, "mistakes": []}
    if fm.maps:
        label = _class_name(v.classes, fm.probe_label) if fm.probe_label is not None else "?"
        title = f"First convolution's outputs for test image #0 (class {label}); lowest seed of each architecture"
        context["features"] = v.figure(figures.feature_maps, "feature-maps", fm.probe, fm.maps, title)
    for arch in v.order:
        worst = features.worst_mistakes(v.runs, arch, v.classes, v.stored.out)
        if worst is not None:
            title = f"{arch}: most confidently wrong test images (all seeds)"
            uri = v.figure(figures.misclassified, f"misclassified-{arch}", worst.images, worst.captions, title)
            context["mistakes"].append({"arch": arch, "uri": uri})
    return Section("inside", "What the networks see and get wrong", v.dataset, context)


def failed(v: DatasetView) -> Section:
    return Section("failed", "Failed or diverged runs", v.dataset, {"runs": [
        {"arch": r["arch"], "seed": r["seed"], "status": r["status"], "run_id": r["run_id"],
         "error": "" if pd.isna(r.get("error")) else str(r.get("error"))}
        for _, r in v.failed.iterrows()
    ]})


def _class_name(classes: list[str], index: int) -> str:
    return classes[index] if 0 <= index < len(classes) else str(index)


# Every section, in the order the report shows them; the last ones also when no run finished.
SECTIONS: tuple[Callable[[DatasetView], Section | None], ...] = (
    leaderboard, comparisons, factor_effects, curves, errors, cost, inside, failed,
)
ALWAYS = (failed,)


def sections_of(v: DatasetView) -> list[Section]:
    chosen = SECTIONS if not v.runs.empty else ALWAYS
    return [s for s in (section(v) for section in chosen) if s is not None]
