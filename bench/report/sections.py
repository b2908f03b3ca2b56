"""The report's parts, in order: the answer first, then one small function per section.

A section function takes the ``DatasetView`` (everything read and computed once for a
dataset) and returns a ``Section`` - a title, an anchor and what its template
(``templates/sections/<key>.html.j2``) shows - or None when it has nothing to show.
The template numbers the sections and lists them in the table of contents; adding one is a
function here, its template, and its place in ``SECTIONS``.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..stats import BETTER, EQUIVALENT, METHODS, UNDECIDED, WORSE, Comparison, describe, still_improving
from ..stats.metrics import ACCURACY, EPOCH_SECONDS, metric
from ..stats.sentences import interval_label
from ..stats.target import default_target, per_epoch_reversals, target_summary, time_to_target
from ..stats import evidence as stats
from . import axes, features, figures, paths, recommend
from . import robustness as robust
from .command import reproduce
from .format import missing, pct, pp, pval, seconds, slug
from .load import Stored
from ..tuning.protocol import protocol_sentence
from .tuning_section import tuning, tuning_seconds

HIGHLIGHT = "background-color: #d7ecd9; font-weight: 600"
FIGURES_DIR = "figures"
GALLERY = 16  # disagreement images shown per pair


class Figures:
    """Writes PNGs into figures/ and remembers them to embed (and to prune stale ones)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[Path] = []

    def path(self, name: str) -> Path:
        return self.folder / f"{slug(name)}.png"

    def embed(self, path: Path) -> dict[str, Any]:
        """The figure as the template shows it: a data URI, its CSS width, and its PNG's link."""
        self.written.append(path)
        data = path.read_bytes()
        width = struct.unpack(">I", data[16:20])[0]  # the PNG header's IHDR width
        return {"src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
                "width": width // figures.SCALE, "href": f"{FIGURES_DIR}/{path.name}"}

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
    """What every part of one dataset's report reads, computed once."""

    stored: Stored
    dataset: str
    classes: list[str]
    runs: pd.DataFrame  # finished runs
    failed: pd.DataFrame
    epochs: pd.DataFrame
    confusion: pd.DataFrame
    figs: Figures
    styles: dict[str, figures.Style]
    sample: dict | None
    evidence: stats.Evidence
    baseline: str | None
    target: float | None
    board: pd.DataFrame = field(default_factory=pd.DataFrame)
    versus_top: list[Comparison] = field(default_factory=list)
    reference: str = ""
    asked: dict[str, list[Comparison]] = field(default_factory=dict)

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
    def top(self) -> str:
        return self.board["arch"].iloc[0]

    @property
    def pair(self) -> tuple[str, str] | None:
        """The one comparison the detailed figures show: the top architecture against the
        reference (or, when the top is the reference, the runner-up against it)."""
        others = [a for a in self.order if a != self.reference]
        return (others[0], self.reference) if others else None

    @property
    def labels(self) -> np.ndarray | None:
        if self.sample is None or "test_labels" not in self.sample:
            return None
        return self.sample["test_labels"].numpy().astype(np.int64)

    def figure(self, draw: Callable[..., Path], name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Draw a figure into figures/<dataset>-<name>.png; what the template embeds."""
        return self.figs.embed(draw(*args, self.figs.path(f"{self.dataset}-{name}"), **kwargs))

    def times(self) -> pd.DataFrame:
        return time_to_target(self.epochs, self.target) if self.target is not None else pd.DataFrame()


def dataset_view(stored: Stored, dataset: str, figs: Figures, styles: dict[str, figures.Style], *,
                 baseline: str | None, margin: float, target: float | None) -> DatasetView:
    runs = stored.ok[stored.ok["dataset"] == dataset]
    epochs = stored.epochs[stored.epochs["dataset"] == dataset]
    view = DatasetView(
        stored=stored, dataset=dataset, classes=stored.classes(dataset), runs=runs,
        failed=stored.failed[stored.failed["dataset"] == dataset].sort_values(["arch", "seed"]),
        epochs=epochs, confusion=stored.confusion[stored.confusion["dataset"] == dataset],
        figs=figs, styles=styles, sample=stored.samples.get(dataset),
        evidence=stats.Evidence(runs, stored.correct, margin=margin, look=stored.look,
                                 per_image=stored.per_image), baseline=baseline,
        target=target if target is not None or epochs.empty else _finite(default_target(epochs)),
    )
    if not runs.empty:
        view.board, view.versus_top = stats.leaderboard(view.evidence)
        view.reference = baseline if baseline in set(runs["arch"]) else stats.default_reference(runs, view.archs)
        view.asked = stats.questions(view.evidence, view.reference, view.order, baseline is not None)
    return view


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


# -- the answer ----------------------------------------------------------------------------
def answer(v: DatasetView) -> dict[str, Any]:
    """The verdict box: what the runs say in plain words, and why they may not say much."""
    warnings = []
    info = v.stored.invocation.get("datasets", {}).get(v.dataset, {})
    if info.get("fallback_reason"):
        warnings.append(f"These runs used the small embedded “{v.dataset}” dataset because MNIST was not "
                        f"available: they say nothing about MNIST.")
    if v.runs.empty:
        return {"warnings": warnings + [f"No run finished on {v.dataset}: there is nothing to compare."],
                "lines": [], "recommendation": None, "networks": []}
    seeds = int(v.board["seeds"].min())
    if seeds < 3:
        warnings.append(f"Only {seeds} seed{'s' if seeds != 1 else ''} per architecture: no interval is "
                        "trustworthy; run with --seeds 3 or more (or --until-decided).")
    stuck = _not_learning(v)
    if stuck:
        warnings.append(f"Not learning: {', '.join(stuck)} stayed at chance accuracy (runs.csv's learning is "
                        "False): check the learning rate; these runs say nothing about the architecture.")
    if _still_improving(v):
        warnings.append("Most seeds' validation accuracy was still rising beyond noise over their last epochs: "
                        "the networks were still improving, and more epochs may change the answer.")
    lines = [_ranking_line(v)]
    for question, comparisons in v.asked.items():
        prefix = f"{question.removeprefix('factor ')}: " if question.startswith("factor ") else ""
        lines += [{"text": prefix + describe(c), "verdict": c.verdict} for c in comparisons]
    # Beyond clean accuracy: each factor (or architecture) on every evaluation's axis (report/axes.py).
    lines += axes.answer_lines(v.evidence, v.reference, v.order, any(q.startswith("factor ") for q in v.asked))
    cost = _cost_line(v)
    if cost:
        lines.append({"text": cost, "verdict": "cost"})
    open_ = sum(c.verdict == UNDECIDED for cs in v.asked.values() for c in cs)
    return {"warnings": warnings, "lines": lines, "undecided": open_, "margin": v.evidence.margin,
            "recommendation": _recommendation(v), "networks": networks_table(v), "levels": level_glossary(v),
            # issue 32: which protocol produced these verdicts (bench.tuning.protocol)
            "protocol": protocol_sentence(v.stored.invocation)}


def level_glossary(v: DatasetView) -> list[str]:
    """Per factor of the grid, its levels spelled out: "conv (convolution): std = standard 3x3 ..."."""
    factors = {q.removeprefix("factor ") for q in v.asked if q.startswith("factor ")}
    return [f"{f} ({g['name']}): " + ", ".join(f"{level} = {words}" for level, words in g["levels"].items())
            for f, g in glossary(v).items() if f in factors]


def _recommendation(v: DatasetView) -> recommend.Recommendation | None:
    """The answer's last line: which network to use, and what would settle what is open."""
    to_target = {}
    if v.target is not None and not v.epochs.empty:
        to_target = target_summary(v.epochs, v.target).set_index("arch")["median_seconds"].to_dict()
    against = {a: v.evidence.compare(a, order=v.order) for a in v.order}
    inv = v.stored.invocation
    command = reproduce(inv.get("reproduce", ""), v.baseline, v.evidence.margin,
                        inv.get("analysis", {}).get("target"), paths.scrubber(v.stored.out, inv))
    levels = {a: spelled_levels(v, a) for a in v.order}
    return recommend.recommend(v.board, against, to_target, v.target, v.evidence.margin, command,
                               _still_improving(v), levels, robust=lambda names: axes.prefer_robust(v.evidence, names))


def glossary(v: DatasetView) -> dict[str, dict[str, Any]]:
    """Each factor's plain words and its levels' (config.json's ``factor_glossary``)."""
    return v.stored.invocation.get("factor_glossary") or {}


def spelled_levels(v: DatasetView, arch: str) -> str:
    """E.g. "standard 3x3 convolutions, 2x2 max-pooling" for ablate-std-max; "" without factors."""
    info = (v.stored.invocation.get("arch_info") or {}).get(arch, {})
    words = glossary(v)
    return ", ".join(str(words.get(f, {}).get("levels", {}).get(level, f"{f} {level}"))
                     for f, level in sorted((info.get("factors") or {}).items()))


def networks_table(v: DatasetView) -> list[dict[str, Any]]:
    """The compared networks: description, factor levels in words, parameters and training FLOPs."""
    info = v.stored.invocation.get("arch_info") or {}
    board = v.board.set_index("arch") if not v.board.empty else pd.DataFrame()
    rows = []
    for arch in v.archs:
        params = board.at[arch, "params"] if arch in board.index else math.nan
        flops = board.at[arch, "flops_per_image"] if arch in board.index else math.nan
        rows.append({"arch": arch, "description": str(info.get(arch, {}).get("description", "")),
                     "levels": spelled_levels(v, arch),
                     "params": "–" if missing(params) else f"{params:,.0f}",
                     "mflops": "–" if missing(flops) else f"{flops / 1e6:.2f}"})
    return rows


def _not_learning(v: DatasetView) -> list[str]:
    """The finished runs stuck at chance (bench.learning), as "arch seed N"."""
    if "learning" not in v.runs.columns:
        return []
    stuck = v.runs[v.runs["learning"].astype(str) == "False"]
    return [f"{r['arch']} seed {int(r['seed'])}" for _, r in stuck.iterrows()]


def _still_improving(v: DatasetView) -> bool:
    """Most runs' validation curves still rose beyond noise over their last epochs (bench.stats.curves)."""
    if v.epochs.empty or "val_acc" not in v.epochs.columns:
        return False
    info = v.stored.invocation.get("datasets", {}).get(v.dataset, {})
    fraction = v.runs["val_fraction"].iloc[0] if "val_fraction" in v.runs.columns else math.nan
    n_val = math.ceil(info.get("train_size", 0) * fraction) if not missing(fraction) else 0
    curves = [g.sort_values("epoch")["val_acc"].to_numpy() for _, g in v.epochs.groupby("run_id", sort=False)]
    return still_improving(curves, n_val)


def _ranking_line(v: DatasetView) -> dict[str, str]:
    tied = list(v.board.loc[v.board["rank"] == 1, "arch"])
    mean = pct(v.board["mean"].iloc[0])
    if len(tied) == 1:
        text = (f"{tied[0]} is the most accurate ({mean}% mean test accuracy), decided against every other "
                f"architecture.")
    else:
        text = (f"Tied 1st, not decided apart at these seeds: {', '.join(tied)} "
                f"({tied[0]} has the highest mean, {mean}%).")
    return {"text": text, "verdict": "rank"}


def _cost_line(v: DatasetView) -> str | None:
    """E.g. "dilated has 51% of convnet's parameters and 31% faster epochs, and reaches 98.50% in 12.1 s
    against 15.3 s" - the main pair's costs, and who gets to the target first."""
    if v.pair is None:
        return None
    arch, ref = v.pair
    row = v.board.set_index("arch")
    parts = []
    if not missing(row.at[arch, "params"]) and row.at[ref, "params"]:
        ratio = row.at[arch, "params"] / row.at[ref, "params"]
        parts.append(f"the same number of parameters as {ref}" if round(ratio, 2) == 1.0 else
                     f"{abs(ratio - 1):.0%} {'more' if ratio > 1 else 'fewer'} parameters than {ref}")
    a, b = row.at[arch, "mean_epoch_seconds"], row.at[ref, "mean_epoch_seconds"]
    if not (missing(a) or missing(b)) and b > 0:
        faster = (b - a) / b
        parts.append(f"{abs(faster):.0%} {'faster' if faster >= 0 else 'slower'} epochs")
    text = f"{arch} has " + " and ".join(parts) if parts else ""
    text = text.replace(" has the same number of parameters as", " is the same size as")
    if v.target is not None and not v.epochs.empty:
        summary = target_summary(v.epochs, v.target).set_index("arch")
        sa, sb = summary.at[arch, "median_seconds"], summary.at[ref, "median_seconds"]
        reach = f"reaches {pct(v.target)}% validation accuracy in {_secs(sa)} against {ref}'s {_secs(sb)}"
        text = f"{text}, and {reach}" if text else f"{arch} {reach}"
        reversed_ = per_epoch_reversals(summary.reset_index())
        # Only the pair this line is about: another pair's reversal reads as contradicting it.
        pair = {arch, ref}
        reversed_ = reversed_[[{a, b} == pair for a, b in zip(reversed_["faster_per_epoch"],
                                                             reversed_["faster_to_target"])]]
        if not reversed_.empty:
            r = reversed_.iloc[0]
            text += (f"; {r.faster_per_epoch} has the faster epochs but {r.faster_to_target} reaches the "
                     f"target sooner")
    return text or None


def _secs(x: float) -> str:
    return "never (median)" if math.isinf(x) else seconds(x)


# -- the sections ------------------------------------------------------------------------
def leaderboard(v: DatasetView) -> Section:
    return Section("leaderboard", "Leaderboard", v.dataset, {
        "table": leaderboard_html(v.board, v.times(), f"leaderboard-{slug(v.dataset)}"),
        "max_seeds": int(v.board["seeds"].max()),
        "interval_from": v.board["interval_from"].iloc[0],
        "untrusted": not v.board["trustworthy"].all(),
        "figure": v.figure(figures.accuracy_by_arch, "accuracy", v.runs, v.board, v.styles),
        "method": METHODS["accuracy_interval"],
    })


def leaderboard_html(board: pd.DataFrame, times: pd.DataFrame, table_id: str) -> str:
    """The leaderboard via pandas Styler: sorted by accuracy, ranks that claim only what was decided."""
    to_target = (times.groupby("arch")["seconds_to_target"].median() if not times.empty
                 else pd.Series(dtype=float))
    shown = pd.DataFrame({
        "architecture": board["arch"],  # first: the column a phone keeps pinned while the rest scrolls
        "rank": board["rank_label"],
        "seeds": board["seeds"],
        "test acc. mean (%)": board["mean"] * 100,
        "95% interval (%)": [f"[{pct(lo)}, {pct(hi)}]" if not missing(lo) else "–"
                             for lo, hi in zip(board["ci_low"], board["ci_high"])],
        "std (pp)": board["std"] * 100,
        "best-val acc. (%)": board["best_val_acc"] * 100,
        "test loss": board["test_loss"],
        "params": board["params"],
        "train MFLOP / image": board["flops_per_image"] / 1e6,
        "epoch time (s)": board["mean_epoch_seconds"],
        "to target (s)": [to_target.get(a, math.nan) for a in board["arch"]],
    })
    styler = (
        shown.style.set_uuid(table_id)
        .hide(axis="index")
        .format({"test acc. mean (%)": "{:.2f}", "std (pp)": "{:.2f}", "best-val acc. (%)": "{:.2f}",
                 "test loss": "{:.4f}", "params": "{:,.0f}", "train MFLOP / image": "{:.2f}",
                 "epoch time (s)": "{:.3f}", "to target (s)": lambda x: "never" if math.isinf(x) else f"{x:.1f}"},
                na_rep="–")
        .highlight_max(subset=["test acc. mean (%)", "best-val acc. (%)"], props=HIGHLIGHT)
        .highlight_min(subset=["test loss", "epoch time (s)", "to target (s)"], props=HIGHLIGHT)
        .apply(lambda row: ["font-weight: 700" if row["rank"] == "1st" else "" for _ in row], axis=1)
        .set_table_attributes('class="data leaderboard"')
    )
    return styler.to_html(cell_ids=False, doctype_html=False)


def comparisons(v: DatasetView) -> Section:
    tables = []
    for question, found in v.asked.items():
        if not question.startswith("factor "):
            tables.append(_comparison_table(v, f"Against the reference: {v.reference}", v.reference, found))
    if v.top != v.reference or not tables:
        tables.append(_comparison_table(v, f"Against the highest mean: {v.top}", v.top, v.versus_top))
    return Section("comparison", "Pairwise comparisons", v.dataset, {
        "tables": [t for t in tables if t["rows"]], "margin": v.evidence.margin,
        "interval_from": v.board["interval_from"].iloc[0],
        "methods": [METHODS[k] for k in ("standard_error", "difference_test", "equivalence_test",
                                         "multiplicity", "minimum_detectable_effect", "seeds_needed")],
        "sequential": METHODS["sequential"] if v.evidence.look is not None else "",
        "step_modes": stats.mixed_step_modes(v.runs),
    })


def _comparison_table(v: DatasetView, title: str, reference: str, found: list[Comparison]) -> dict[str, Any]:
    frame = stats.comparison_frame(found)
    figure = v.figure(figures.forest, f"vs-{reference}", frame, v.styles, reference, margin=v.evidence.margin) \
        if len(frame) else None
    return {"title": title, "reference": reference, "rows": comparison_rows(found), "figure": figure}


def comparison_rows(found: list[Comparison]) -> list[dict[str, Any]]:
    rows = []
    for c in found:
        m = metric(c.metric)
        rows.append({
            "arch": c.arch, "verdict": c.verdict, "verdict_text": verdict_text(c), "n": c.n_seeds,
            "diff": m.delta(c.diff), "ci": _ci(c), "eq": _eq_ci(c), "unit": m.delta_unit,
            "ci_label": interval_label(c), "eq_label": interval_label(c, equivalence=True),
            "won": f"{c.wins} of {c.n_seeds}" if c.n_seeds else "–",
            "p": pval(c.p_holm), "p_eq": pval(c.p_equivalence_holm), "mde": _unsigned(c.mde, c.metric),
            "sentence": describe(c),
        })
    return rows


def verdict_text(c: Comparison) -> str:
    if c.verdict == EQUIVALENT:
        m = metric(c.metric)
        return f"equivalent within ±{c.margin * m.scale:g} {m.delta_unit}".rstrip()
    if c.verdict == UNDECIDED:
        if c.seeds_needed is not None:
            return f"undecided: about {c.seeds_needed - c.n_seeds} more seeds would decide it"
        return f"undecided: {c.undecided_reason}" if c.undecided_reason else "undecided"
    return c.verdict


def _ci(c: Comparison) -> str:
    """The difference interval that decided the verdict, in the metric's units."""
    return metric(c.metric).interval(c.ci_low, c.ci_high, unit=False)


def _eq_ci(c: Comparison) -> str:
    return metric(c.metric).interval(c.eq_low, c.eq_high, unit=False)


def _unsigned(x: float, column: str = ACCURACY.column) -> str:
    m = metric(column)
    return "–" if missing(x) else f"{x * m.scale:.{m.digits}f}"


def factor_effects(v: DatasetView) -> Section | None:
    effects = {q.removeprefix("factor "): found for q, found in v.asked.items() if q.startswith("factor ")}
    if not effects:
        return None  # a grid without an ablation family has no factors to estimate
    context: dict[str, Any] = {"factors": list(effects), "margin": v.evidence.margin, "interaction": None}
    if effects:
        factorial = stats.factorial_runs(v.runs)
        time = stats.factor_effects(v.evidence, EPOCH_SECONDS.column)
        context["archs"] = sorted(set(factorial["arch"]))
        context["tables"] = [{"factor": f, "reference": found[0].reference if found else "",
                              "rows": comparison_rows(found)} for f, found in effects.items()]
        context["time_rows"] = [{"factor": f, "level": c.arch, "reference": c.reference, "n": c.n_seeds,
                                 "diff": EPOCH_SECONDS.delta(c.diff), "ci": _ci(c), "p": pval(c.p_holm),
                                 "verdict": c.verdict, "verdict_text": verdict_text(c)}
                                for f, found in time.items() for c in found]
        context["figure"] = v.figure(figures.factor_effects, "factor-effects",
                                     [(ACCURACY, _effect_frame(effects)), (EPOCH_SECONDS, _effect_frame(time))])
        names = list(effects)
        if len(names) >= 2:
            x, hue = names[:2]
            cells = stats.interaction_table(factorial, x, hue)
            context["interaction"] = v.figure(figures.interaction, "interaction", cells, x, hue)
            context["interaction_axes"] = (x, hue)
    return Section("factors", "Factor effects (ablation family)", v.dataset, context)


def _effect_frame(effects: dict[str, list[Comparison]]) -> pd.DataFrame:
    return pd.DataFrame([{"factor": f, "level": c.arch, "reference": c.reference, "diff": c.diff,
                          "ci_low": c.ci_low, "ci_high": c.ci_high} for f, found in effects.items() for c in found],
                        columns=["factor", "level", "reference", "diff", "ci_low", "ci_high"])


def target(v: DatasetView) -> Section | None:
    if v.target is None or v.epochs.empty:
        return None
    times = v.times()
    summary = target_summary(v.epochs, v.target)
    chosen = v.stored.invocation.get("analysis", {}).get("target")
    return Section("target", "Time to target", v.dataset, {
        "target": pct(v.target), "chosen": chosen is not None,
        "figure": v.figure(figures.time_to_target, "time-to-target", times, v.archs, v.target, v.styles),
        "rows": [{"arch": r.arch, "reached": f"{r.reached} of {r.seeds}", "epochs": _count(r.median_epochs),
                  "seconds": _secs(r.median_seconds), "per_epoch": seconds(r.seconds_per_epoch)}
                 for r in summary.itertuples()],
        "reversals": [f"{r.faster_per_epoch} has faster epochs ({seconds(r.seconds_per_epoch)} against "
                      f"{seconds(r.other_seconds_per_epoch)}) but {r.faster_to_target} reaches the target sooner "
                      f"({_secs(r.other_seconds_to_target)} against {_secs(r.seconds_to_target)})"
                      for r in per_epoch_reversals(summary).itertuples()],
        "method": METHODS["time_to_target"],
    })


def _count(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:g}"


def curves(v: DatasetView) -> Section:
    shown: dict[str, Any] = {"figure": None}
    if not v.epochs.empty:
        shown["figure"] = v.figure(figures.curves, "curves", v.epochs, v.archs, v.styles)
    shown["still_improving"] = _still_improving(v)
    return Section("curves", "Learning curves", v.dataset, shown)


def errors(v: DatasetView) -> Section:
    context: dict[str, Any] = {"pair": v.pair, "confusion": None, "confusion_difference": None,
                               "class_rows": [], "gallery": None, "per_class": None, "gaps": [],
                               "class_figure": None}
    if not v.confusion.empty:
        scale = figures.error_scale(v.confusion, v.order, len(v.classes))  # one colour scale for every network
        context["confusion"] = [{"arch": arch, "figure": v.figure(figures.confusion_matrix, f"confusion-{arch}",
                                                                   v.confusion, arch, v.classes, scale)}
                                for arch in v.order]
        per_class = stats.class_accuracy(v.confusion)
        context["per_class"] = v.figure(figures.per_class, "per-class", per_class, v.archs, v.classes, v.styles)
        gaps = stats.largest_class_gaps(per_class)
        context["gaps"] = [{"cls": _class_name(v.classes, int(g.cls)), "higher": g.higher, "lower": g.lower,
                            "acc_higher": pct(g.acc_higher), "acc_lower": pct(g.acc_lower), "gap": pp(g.gap)}
                           for g in gaps.rename(columns={"class": "cls"}).itertuples()]
        if v.pair is not None:
            arch, ref = v.pair
            diff = stats.confusion_difference(v.confusion, arch, ref)
            context["confusion_difference"] = v.figure(figures.confusion_difference, f"confusion-{arch}-vs-{ref}",
                                                       diff, v.classes, arch, ref)
    if v.pair is not None and v.labels is not None and v.evidence.images == len(v.labels):
        arch, ref = v.pair
        found = stats.class_differences(v.evidence, arch, ref, v.labels, v.classes)
        frame = stats.comparison_frame(found)
        if len(frame):
            context["class_rows"] = comparison_rows(found)
            context["class_figure"] = v.figure(figures.class_differences, f"classes-{arch}-vs-{ref}", frame,
                                               arch, ref, v.evidence.margin)
        context["gallery"] = _disagreements(v, arch, ref)
    return Section("errors", "Where the networks err", v.dataset, context)


def _disagreements(v: DatasetView, arch: str, ref: str) -> dict[str, Any] | None:
    """Test images the pair classified differently, most seeds disagreeing first."""
    from ..samples import load_errors

    stored = load_errors(v.stored.out, v.dataset)
    if stored is None or v.labels is None:
        return None
    a, b = (v.evidence.scores(name) for name in (arch, ref))
    if not isinstance(a, pd.DataFrame):
        return None
    seeds = a.index.intersection(b.index)
    a_right, b_right = a.loc[seeds].to_numpy().mean(0), b.loc[seeds].to_numpy().mean(0)
    gap = a_right - b_right
    order = [i for i in np.argsort(-np.abs(gap), kind="stable") if gap[i] != 0]
    position = {int(i): k for k, i in enumerate(stored["index"].tolist())}
    chosen = [i for i in order if i in position][:GALLERY]
    if not chosen:
        return None
    images = stored["images"][[position[i] for i in chosen]].numpy()
    captions = [f"#{i} {_class_name(v.classes, int(v.labels[i]))}\n{arch} {a_right[i]:.0%}\n{ref} {b_right[i]:.0%}"
                for i in chosen]
    title = f"Test images {arch} and {ref} classify differently (share of seeds right)"
    return {"figure": v.figure(figures.disagreements, f"disagree-{arch}-vs-{ref}", images, captions, title),
            "count": int((gap != 0).sum()), "shown": len(chosen)}


def robustness(v: DatasetView) -> Section | None:
    """Beyond clean accuracy: shift, corruptions, calibration, per-class F1 (report/robustness.py)."""
    context = robust.context(v)
    return Section("robustness", "Robustness", v.dataset, context) if context is not None else None


def cost(v: DatasetView) -> Section:
    # A seed group's epoch time is the wall time of all its runs' epochs at once: say so when
    # architectures were trained in groups of different sizes, whose times do not compare.
    groups = stats.seed_group_sizes(v.runs)
    sizes = set(groups.values())
    context: dict[str, Any] = {
        "seed_groups": sorted(groups.items()) if len(sizes) > 1 else [],
        "all_grouped": min(sizes) if len(sizes) == 1 and min(sizes) > 1 else 0,
        "tradeoffs": v.figure(figures.tradeoffs, "tradeoffs", v.board, v.styles),
        "epoch_time": None,
        # A tuned grid's trials are part of what the comparison cost (bench.report.tuning_section).
        "tuning": [(arch, seconds(s)) for arch, s in tuning_seconds(v.stored.out, v.dataset).items()],
    }
    if not v.epochs.empty:
        context["epoch_time"] = v.figure(figures.epoch_times, "epoch-time", v.epochs, v.archs, v.styles)
    return Section("cost", "Cost", v.dataset, context)


def inside(v: DatasetView) -> Section:
    fm = features.feature_maps(v.runs, v.order, v.sample, v.stored.out)
    scrub = paths.scrubber(v.stored.out, v.stored.invocation)
    context: dict[str, Any] = {"notes": [scrub(n) for n in fm.notes], "mistakes": [], "features": None}
    if fm.maps:
        label = _class_name(v.classes, fm.probe_label) if fm.probe_label is not None else "?"
        title = f"First convolution's outputs for test image #0 (class {label}); lowest seed of each architecture"
        context["features"] = v.figure(figures.feature_maps, "feature-maps", fm.probe, fm.maps, title)
    for arch in v.order:
        worst = features.worst_mistakes(v.runs, arch, v.classes, v.stored.out)
        if worst is not None:
            title = f"{arch}: most confidently wrong test images (all seeds)"
            figure = v.figure(figures.misclassified, f"misclassified-{arch}", worst.images, worst.captions, title)
            context["mistakes"].append({"arch": arch, "figure": figure})
    return Section("inside", "What the networks see and get wrong", v.dataset, context)


def failed(v: DatasetView) -> Section:
    scrub = paths.scrubber(v.stored.out, v.stored.invocation)  # an error message may name files
    return Section("failed", "Failed or diverged runs", v.dataset, {"runs": [
        {"arch": r["arch"], "seed": r["seed"], "status": r["status"], "run_id": r["run_id"],
         "error": "" if pd.isna(r.get("error")) else scrub(str(r.get("error")))}
        for _, r in v.failed.iterrows()
    ]})


def _class_name(classes: list[str], index: int) -> str:
    return classes[index] if 0 <= index < len(classes) else str(index)


# Every section, in the order the report shows them; the last ones also when no run finished.
SECTIONS: tuple[Callable[[DatasetView], Section | None], ...] = (
    leaderboard, comparisons, factor_effects, robustness, target, curves, errors, tuning, cost, inside, failed,
)
ALWAYS = (failed,)


def sections_of(v: DatasetView) -> list[Section]:
    chosen = SECTIONS if not v.runs.empty else ALWAYS
    return [s for s in (section(v) for section in chosen) if s is not None]


__all__ = ["BETTER", "WORSE", "Figures", "Section", "answer", "dataset_view", "sections_of"]
