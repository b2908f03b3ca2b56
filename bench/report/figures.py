"""Every figure of the report, drawn with matplotlib's Agg backend (and seaborn) to PNG.

One fixed style per architecture everywhere, in grid order: an Okabe-Ito colour (safe for
colour-blind readers), its own marker and line style, so two networks differ in more than hue.
PNG bytes are reproducible: no "Software" metadata, fixed DPI and fonts, no timestamps.
Figures are drawn at twice the resolution they are shown at (``SCALE``), sharp on HiDPI screens.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: a report never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..storage import atomic_write_bytes  # noqa: E402
from ..stats.metrics import ACCURACY, Metric  # noqa: E402
from ..stats import evidence as stats  # noqa: E402

SCALE = 2  # pixels per CSS pixel: the report shows each PNG at half its width
DPI = 110 * SCALE
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "svg.hashsalt": "cnnbench",  # stable ids should anyone switch to SVG
    "path.simplify": True,
}
# Okabe & Ito's colour-blind-safe set, ordered so that neighbours in a grid differ most; its
# yellow is darkened to be readable on white.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#B8A800")
MARKERS = ("o", "s", "D", "^", "v", "P", "X")  # 7 against 8 colours: the pairs repeat only after 56
LINESTYLES = ("-", "--", "-.", ":")
HEATMAP = "rocket_r"  # perceptually uniform, readable without colour vision
FEATURE_CMAP = "viridis"


@dataclass(frozen=True)
class Style:
    color: tuple[float, float, float]
    linestyle: str
    marker: str


def arch_styles(archs: Sequence[str]) -> dict[str, Style]:
    """Each architecture's colour, line style and marker, by its place in the grid."""
    return {
        arch: Style(matplotlib.colors.to_rgb(OKABE_ITO[i % len(OKABE_ITO)]), LINESTYLES[i % len(LINESTYLES)],
                    MARKERS[i % len(MARKERS)])
        for i, arch in enumerate(archs)
    }


def save(fig: plt.Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, bbox_inches="tight",
                pad_inches=0.15)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def style_context():
    return plt.rc_context(STYLE)


def _pct(ax, axis: str = "x") -> None:
    fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(fmt)


def _legend_beside(ax, **options) -> None:
    """The legend right of the axes, where it can hide no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=8, **options)


def _show(ax, image: np.ndarray, **gray_options) -> None:
    """Draw a stored image: (H, W) or (1, H, W) as ink on paper, (3, H, W) in its colours."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 3:
        ax.imshow(np.ascontiguousarray(image.transpose(1, 2, 0)).astype(np.uint8))
    else:
        ax.imshow(np.asarray(image, dtype=float).reshape(image.shape[-2], image.shape[-1]), cmap="gray_r",
                  **gray_options)


# -- header ----------------------------------------------------------------------------
def samples_grid(images: np.ndarray, labels: Sequence[int], classes: Sequence[str], path: Path) -> Path:
    n = len(images)
    cols = min(n, 10)
    rows = math.ceil(n / cols)
    with style_context():
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.0, rows * 1.2), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, image, label in zip(axes.flat, images, labels):
            _show(ax, image, vmin=0, vmax=255)
            ax.set_title(classes[int(label)], fontsize=8, fontweight="normal")
        return save(fig, path)


# -- leaderboard and comparisons --------------------------------------------------------
def accuracy_by_arch(runs: pd.DataFrame, board: pd.DataFrame, styles: dict[str, Style], path: Path) -> Path:
    """Each seed as a dot, the mean as a bar tick, the 95% interval as a whisker; best on top."""
    order = list(board["arch"])
    with style_context():
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(order) + 1.4))
        for y, arch in enumerate(order):
            st = styles[arch]
            row = board.iloc[y]
            seeds = runs.loc[runs["arch"] == arch, "test_acc"] * 100
            jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else np.zeros(1)
            ax.scatter(seeds, y + jitter, color=st.color, alpha=0.45, s=18, marker=st.marker, zorder=2)
            if not math.isnan(row["ci_low"]):
                ax.errorbar(row["mean"] * 100, y, xerr=[[(row["mean"] - row["ci_low"]) * 100],
                                                       [(row["ci_high"] - row["mean"]) * 100]],
                            color=st.color, capsize=4, lw=2, zorder=3)
            ax.scatter([row["mean"] * 100], [y], color=st.color, s=70, marker="|", linewidths=3, zorder=4)
        ax.set_yticks(range(len(order)), order)
        ax.invert_yaxis()
        ax.set_xlabel("test accuracy (%)")
        ax.set_title("Test accuracy per architecture: dots = seeds, bar = mean, whisker = 95% interval",
                     loc="left", fontsize=10)
        low, high = ax.get_xlim()
        ax.set_xlim(max(low, 0), min(high, 100))  # accuracies live in [0, 100] %
        _pct(ax)
        return save(fig, path)


def forest(comparison: pd.DataFrame, styles: dict[str, Style], reference: str, path: Path,
           margin: float = 0.0) -> Path:
    """Paired differences against ``reference`` in percentage points, with their intervals and
    the equivalence margin shaded."""
    with style_context():
        fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(comparison), 1) + 1.4))
        if margin:
            ax.axvspan(-margin * 100, margin * 100, color="0.88", zorder=0, label=f"±{margin * 100:g} pp margin")
        for y, row in enumerate(comparison.itertuples()):
            st = styles[row.arch]
            if not math.isnan(row.ci_low):
                ax.errorbar(row.diff * 100, y, xerr=[[(row.diff - row.ci_low) * 100], [(row.ci_high - row.diff) * 100]],
                            color=st.color, capsize=4, lw=2, marker=st.marker, ms=7)
            else:
                ax.plot(row.diff * 100, y, marker=st.marker, color=st.color, ms=7)
        ax.axvline(0, color="0.3", lw=1)
        ax.set_yticks(range(len(comparison)), list(comparison["arch"]))
        ax.invert_yaxis()
        ax.set_xlabel(f"test accuracy minus {reference}'s, paired by seed (percentage points)")
        ax.set_title(f"Difference to {reference}: mean with its interval (left of 0 = worse)",
                     loc="left", fontsize=10)
        if margin:
            _legend_beside(ax)
        return save(fig, path)


def factor_effects(panels: Sequence[tuple[Metric, pd.DataFrame]], path: Path) -> Path:
    """Each factor level's main effect, one panel per metric, in that metric's own units, with the
    Holm-adjusted interval its verdict used (an unbounded one drawn as an arrow to the edge)."""
    with style_context():
        rows = max(max((len(f) for _, f in panels), default=1), 1)
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.5 * rows + 1.8), squeeze=False)
        palette = sns.color_palette("colorblind", 10)
        for k, (ax, (m, frame)) in enumerate(zip(axes[0], panels)):
            labels = [f"{r.factor}: {r.level} vs {r.reference}" for r in frame.itertuples()]
            factors = sorted(frame["factor"].unique())
            for y, row in enumerate(frame.itertuples()):
                color = palette[factors.index(row.factor) % 10]
                interval_whisker(ax, row.diff, y, row.ci_low, row.ci_high, m.scale, color=color)
            ax.axvline(0, color="0.3", lw=1)
            ax.set_yticks(range(len(labels)), labels)
            ax.invert_yaxis()
            unit = f" ({m.delta_unit})" if m.delta_unit else ""
            ax.set_xlabel(f"main effect on {m.label}{unit}")
            ax.set_title(f"{m.label.capitalize()}: effect, 95% CI (Holm)", loc="left", fontsize=10)
            if k:
                ax.tick_params(labelleft=False)
        fig.tight_layout()
        return save(fig, path)


def interval_whisker(ax, x: float, y: float, lo: float, hi: float, scale: float, color) -> None:
    """A point with its interval; an infinite end is an arrow to the axis' edge, a NaN interval none."""
    ax.plot(x * scale, y, "o", color=color, ms=7, zorder=3)
    if math.isnan(lo) or math.isnan(hi):
        return
    finite = [v for v in (lo, hi) if math.isfinite(v)]
    if finite:
        left, right = (lo * scale if math.isfinite(lo) else None), (hi * scale if math.isfinite(hi) else None)
        ax.hlines(y, x * scale if left is None else left, x * scale if right is None else right, color=color, lw=2)
        for end in (left, right):
            if end is not None:
                ax.vlines(end, y - 0.15, y + 0.15, color=color, lw=2)
    for end, direction in ((lo, -1), (hi, 1)):
        if math.isinf(end):
            ax.annotate("", xy=(0.0 if direction < 0 else 1.0, y), xycoords=("axes fraction", "data"),
                        xytext=(x * scale, y), textcoords="data",
                        arrowprops={"arrowstyle": "->", "color": color, "lw": 1.5})


def interaction(cells: pd.DataFrame, x: str, hue: str, path: Path, metric: Metric = ACCURACY) -> Path:
    with style_context():
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        found = sorted(cells[x].unique())
        ref = stats.reference_level(found)
        levels = [ref] + [lv for lv in found if lv != ref]  # reference level first, as in the effects
        palette = sns.color_palette("colorblind", 10)
        for i, (level, group) in enumerate(cells.groupby(hue, sort=True)):
            group = group.set_index(x).reindex(levels)
            xs = np.arange(len(levels)) + (i - 0.5) * 0.04
            ax.errorbar(xs, group["mean"] * metric.scale,
                        yerr=[(group["mean"] - group["ci_low"]).fillna(0).clip(lower=0) * metric.scale,
                              (group["ci_high"] - group["mean"]).fillna(0).clip(lower=0) * metric.scale],
                        color=palette[i % 10], marker=MARKERS[i % len(MARKERS)], capsize=4, lw=2,
                        label=f"{hue} = {level}")
        ax.set_xticks(range(len(levels)), levels)
        ax.set_xlabel(x)
        ax.set_ylabel(f"{metric.label} ({metric.unit})" if metric.unit else metric.label)
        ax.set_title(f"Interaction {x} x {hue}: cell means, 95% t-CI over seeds", loc="left", fontsize=10)
        ax.legend(title=None)
        return save(fig, path)


# -- curves ----------------------------------------------------------------------------
def curves(epochs: pd.DataFrame, archs: Sequence[str], styles: dict[str, Style], path: Path) -> Path:
    panels = (("train_loss", "training loss", "cross-entropy"), ("val_loss", "validation loss", "cross-entropy"),
              ("train_acc", "training accuracy", "%"), ("val_acc", "validation accuracy", "%"))
    grouped = epochs.groupby(["arch", "epoch"])
    with style_context():
        fig, axes = plt.subplots(2, 2, figsize=(11, 7.2), sharex=True)
        for ax, (col, title, unit) in zip(axes.flat, panels):
            scale = 100 if unit == "%" else 1
            agg = grouped[col].agg(["mean", "min", "max"]).reset_index()
            for arch in archs:
                a = agg[agg["arch"] == arch]
                if a.empty or a["mean"].isna().all():
                    continue
                st = styles[arch]
                ax.plot(a["epoch"], a["mean"] * scale, color=st.color, ls=st.linestyle, marker=st.marker,
                        ms=3.5, lw=1.8, label=arch)
                ax.fill_between(a["epoch"], a["min"] * scale, a["max"] * scale, color=st.color, alpha=0.15, lw=0)
            ax.set_title(title, loc="left")
            ax.set_ylabel(f"{title} ({unit})")
        last = int(epochs["epoch"].max()) if len(epochs) else 1
        for ax in axes[1]:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            if last == 1:  # one point per line: show epoch 1 as such, not as 0.95 to 1.05
                ax.set_xlim(0.5, 1.5)
                ax.set_xticks([1])
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0), ncol=min(len(labels), 6))
        fig.suptitle("Per-epoch curves: line = mean over seeds, band = min-max over seeds", x=0.01,
                     ha="left", fontsize=11)
        fig.tight_layout(rect=(0, 0.06 + 0.03 * (len(labels) // 7), 1, 0.97))
        return save(fig, path)


# -- errors ----------------------------------------------------------------------------
def confusion_counts(confusion: pd.DataFrame, arch: str, k: int) -> pd.DataFrame:
    """true x predicted test-image counts of ``arch``, summed over seeds."""
    sub = confusion[confusion["arch"] == arch]
    return (sub.groupby(["true", "predicted"])["count"].sum().unstack("predicted")
            .reindex(index=range(k), columns=range(k), fill_value=0).fillna(0).astype(int))


def error_shares(counts: pd.DataFrame) -> np.ndarray:
    """Each cell's share (%) of its true class; NaN on the diagonal and where no image fell."""
    share = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).to_numpy(dtype=float) * 100
    share[np.eye(len(share), dtype=bool)] = np.nan
    share[counts.to_numpy() == 0] = np.nan
    return share


def error_scale(confusion: pd.DataFrame, archs: Sequence[str], k: int) -> tuple[float, float] | None:
    """The smallest and largest off-diagonal share (%) over ``archs``: one colour scale for all."""
    shares = np.concatenate([error_shares(confusion_counts(confusion, a, k)).ravel() for a in archs] or [[]])
    shares = shares[np.isfinite(shares)]
    if not len(shares):
        return None
    low, high = float(shares.min()), float(shares.max())
    return (low, high) if high > low else (high / 10, high)


def confusion_matrix(confusion: pd.DataFrame, arch: str, classes: Sequence[str], scale: tuple[float, float] | None,
                     path: Path) -> Path:
    """One network's confusion counts (seeds summed). Mistakes are coloured by their share of the
    true class on a log scale shared by every network, so rare and common errors differ in colour;
    the diagonal (images right) is a neutral grey."""
    k = len(classes)
    counts = confusion_counts(confusion, arch, k)
    share = error_shares(counts)
    cell = 0.34 if k <= 16 else max(0.08, 5.5 / k)
    annotate = cell >= 0.3  # a count needs about this much room to stay legible
    cmap = matplotlib.colormaps[HEATMAP]
    norm = matplotlib.colors.LogNorm(*scale) if scale else None
    with style_context(), plt.rc_context({"axes.grid": False}):
        fig, ax = plt.subplots(figsize=(cell * k + 2.0, cell * k + 1.3))
        diagonal = np.where(np.eye(k, dtype=bool), 1.0, np.nan)
        ax.imshow(diagonal, cmap=matplotlib.colors.ListedColormap(["#dfe3ea"]), vmin=0, vmax=1)
        if norm is not None:
            image = ax.imshow(np.ma.masked_invalid(share), cmap=cmap, norm=norm)
            bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
            bar.set_label("mistakes: share of the true class (%), log scale", fontsize=8)
            bar.ax.tick_params(labelsize=8)
            bar.ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            bar.ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(k + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", lw=0.6)
        ax.tick_params(which="minor", length=0)
        if annotate:
            values = counts.to_numpy()
            for (i, j), n in np.ndenumerate(values):
                if n == 0:
                    continue  # blank = no image: the mistakes stand out
                dark = i != j and norm is not None and _luminance(cmap(norm(share[i, j]))) < 0.45
                ax.text(j, i, f"{n}", ha="center", va="center", fontsize=8 if n < 1000 else 7,
                        color="white" if dark else "black", fontweight="bold" if i == j else "normal")
        ax.set_xticks(range(k), classes)
        ax.set_yticks(range(k), classes)
        _class_axes(ax, f"{arch} (seeds summed)" + ("" if norm is not None else ": no mistakes"))
        return save(fig, path)


def _luminance(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _class_axes(ax, title: str) -> None:
    """Title and labels of a true x predicted class heatmap."""
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=8)


def per_class(acc: pd.DataFrame, archs: Sequence[str], classes: Sequence[str], styles: dict[str, Style],
              path: Path) -> Path:
    """Per class, each network's test error rate as a dot: the axis starts at zero errors."""
    archs = [a for a in archs if a in acc.index]
    k = len(classes)
    dodge = np.linspace(-0.3, 0.3, len(archs)) if len(archs) > 1 else np.zeros(1)
    with style_context():
        fig, ax = plt.subplots(figsize=(8, 0.42 * k + 1.6))
        for i, arch in enumerate(archs):
            st = styles[arch]
            errors = (1 - acc.loc[arch].reindex(range(k)).to_numpy(dtype=float)) * 100
            ax.plot(errors, np.arange(k) + dodge[i], ls="none", marker=st.marker, color=st.color, ms=5.5,
                    label=arch)
        ax.set_yticks(range(k), classes)
        ax.set_ylim(k - 0.5, -0.5)  # first class on top
        ax.set_xlim(left=0)
        ax.set_xlabel("per-class test error (% of the class's images misclassified)")
        ax.set_ylabel("true class")
        ax.set_title("Per-class error rate (confusion counts summed over seeds)", loc="left", fontsize=10)
        for y in np.arange(k - 1) + 0.5:
            ax.axhline(y, color="0.85", lw=0.6)
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        return save(fig, path)


# -- cost ------------------------------------------------------------------------------
def epoch_times(epochs: pd.DataFrame, archs: Sequence[str], styles: dict[str, Style], path: Path) -> Path:
    """Box over seeds and epochs 2+; epoch 1 (warm-up: allocation, kernel selection) as crosses."""
    archs = [a for a in archs if a in set(epochs["arch"])]
    steady = epochs[epochs["epoch"] > 1]
    first = epochs[epochs["epoch"] == 1]
    with style_context():
        fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(archs) + 2), 4.3))
        data = [steady.loc[steady["arch"] == a, "train_seconds"].to_numpy() for a in archs]
        if any(len(d) for d in data):
            box = ax.boxplot([d if len(d) else [np.nan] for d in data], positions=range(len(archs)),
                             widths=0.55, patch_artist=True, showfliers=True, medianprops={"color": "black"})
            for patch, arch in zip(box["boxes"], archs):
                patch.set_facecolor(styles[arch].color)
                patch.set_alpha(0.75)
        for i, arch in enumerate(archs):
            warm = first.loc[first["arch"] == arch, "train_seconds"]
            ax.scatter(np.full(len(warm), i) + 0.32, warm, marker="x", color="0.15", s=28, zorder=3,
                       label="epoch 1 (warm-up)" if i == 0 else None)
        ax.set_xticks(range(len(archs)), archs, rotation=30 if len(archs) > 5 else 0,
                      ha="right" if len(archs) > 5 else "center")
        ax.set_ylabel("training time per epoch (s)")
        ax.set_ylim(bottom=0)
        ax.set_title("Epoch time: box = epochs 2+ over all seeds; x = epoch 1 (warm-up)", loc="left", fontsize=10)
        ax.legend(loc="upper left")
        return save(fig, path)


def tradeoffs(board: pd.DataFrame, styles: dict[str, Style], path: Path) -> Path:
    """Mean test accuracy against three costs: training time, parameters, training FLOPs."""
    panels = (("train_seconds", "training time per run, mean over seeds (s)", 1.0),
              ("params", "parameters (thousands)", 1e-3),
              ("flops_per_image", "training MFLOP per image", 1e-6))
    with style_context():
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), sharey=True)
        placed = []
        for ax, (column, label, scale) in zip(axes, panels):
            x = board[column].to_numpy(dtype=float) * scale
            y = board["mean"].to_numpy(dtype=float) * 100
            front = stats.pareto_front(x, y)
            if len(front) and np.isfinite(x[front]).all():
                fx, fy = x[front], y[front]
                ax.step(np.r_[fx, fx[-1] * 1.05], np.r_[fy, fy[-1]], where="post", color="0.4", ls="--", lw=1.2,
                        label="Pareto front: no other is both cheaper and more accurate", zorder=1)
            for row, xi in zip(board.itertuples(), x):
                st = styles[row.arch]
                err = None
                if not math.isnan(row.ci_low):
                    err = [[(row.mean - row.ci_low) * 100], [(row.ci_high - row.mean) * 100]]
                ax.errorbar(xi, row.mean * 100, yerr=err, color=st.color, marker=st.marker, ms=7,
                            capsize=3, lw=1.4, zorder=3)
            ax.set_xlabel(label)
            finite = x[np.isfinite(x)]
            # Room right of the costliest point for its label.
            ax.set_xlim(0, finite.max() * 1.4 if len(finite) and finite.max() > 0 else None)
            placed.append((ax, x, y))
        axes[0].set_ylabel("test accuracy, mean over seeds (%)")
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.01, 0), fontsize=8)
        fig.suptitle("Accuracy against cost (whiskers: 95% interval)", x=0.01, ha="left", fontsize=11)
        fig.tight_layout(rect=(0, 0.06 if handles else 0, 1, 1))
        for ax, x, y in placed:  # after the layout: labels are placed in the axes' final pixels
            label_points(ax, x, y, list(board["arch"]), [styles[a].color for a in board["arch"]])
        return save(fig, path)


def label_points(ax, xs: Sequence[float], ys: Sequence[float], texts: Sequence[str],
                 colors: Sequence, fontsize: float = 8) -> list:
    """Label each point beside it, moving labels apart vertically until no two overlap, with a
    leader line from a moved label to its point. Deterministic: the same points, the same places."""
    fig = ax.figure
    fig.canvas.draw()  # text extents need a renderer
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    box = ax.get_window_extent(renderer)
    gap, pad = 7.0, 2.0  # pixels between a point and its label, and around a label
    items = []
    for x, y, text, color in zip(xs, ys, texts, colors):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        px, py = to_px((x, y))
        probe = ax.text(0, 0, text, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h = extent.width + 2 * pad, extent.height + 2 * pad
        right = px + gap + w <= box.x1 or px - gap - w < box.x0  # the side with room
        left = px + gap if right else px - gap - w
        items.append({"text": text, "color": color, "px": px, "py": py, "x0": left, "w": w, "h": h,
                      "yc": py, "right": right})
    for _ in range(200):  # relax: push every overlapping pair apart by half the overlap each
        moved = False
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                a, b = items[i], items[j]
                if a["x0"] >= b["x0"] + b["w"] or b["x0"] >= a["x0"] + a["w"]:
                    continue  # side by side: no overlap
                need = (a["h"] + b["h"]) / 2 - abs(a["yc"] - b["yc"])
                if need <= 0:
                    continue
                lower, upper = (a, b) if (a["yc"], a["py"], i) < (b["yc"], b["py"], j) else (b, a)
                lower["yc"] -= need / 2 + 0.01
                upper["yc"] += need / 2 + 0.01
                moved = True
        for it in items:  # stay inside the axes
            it["yc"] = min(max(it["yc"], box.y0 + it["h"] / 2), box.y1 - it["h"] / 2)
        if not moved:
            break
    scale = 72.0 / fig.dpi  # pixels to points: offsets in points survive saving at another DPI
    made = []
    for it in items:
        dx = (it["x0"] + pad - it["px"]) if it["right"] else (it["x0"] + it["w"] - pad - it["px"])
        dy = it["yc"] - it["py"]
        arrow = {"arrowstyle": "-", "color": it["color"], "lw": 0.7, "shrinkA": 0, "shrinkB": 4} \
            if abs(dy) > it["h"] / 2 else None
        made.append(ax.annotate(it["text"], ax.transData.inverted().transform((it["px"], it["py"])),
                                xytext=(dx * scale, dy * scale), textcoords="offset points", fontsize=fontsize,
                                ha="left" if it["right"] else "right", va="center", arrowprops=arrow,
                                annotation_clip=False, zorder=5,
                                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}))
    return made


def time_to_target(times: pd.DataFrame, archs: Sequence[str], target: float, styles: dict[str, Style],
                   path: Path) -> Path:
    """Per architecture and seed, training seconds until validation accuracy reached ``target``;
    runs that never did sit at the right edge, marked."""
    archs = [a for a in archs if a in set(times["arch"])]
    finite = times.loc[np.isfinite(times["seconds_to_target"]), "seconds_to_target"]
    never_x = (finite.max() if len(finite) else 1.0) * 1.15
    with style_context():
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(archs) + 1.5))
        for y, arch in enumerate(archs):
            st = styles[arch]
            rows = times[times["arch"] == arch]
            reached = rows[np.isfinite(rows["seconds_to_target"])]
            missed = rows[~np.isfinite(rows["seconds_to_target"])]
            jitter = np.linspace(-0.12, 0.12, len(reached)) if len(reached) > 1 else np.zeros(len(reached))
            ax.scatter(reached["seconds_to_target"], y + jitter, color=st.color, s=30, marker=st.marker, zorder=3)
            if len(reached):
                ax.scatter([np.median(rows["seconds_to_target"]) if len(missed) * 2 < len(rows) else never_x],
                           [y], color=st.color, s=90, marker="|", linewidths=3, zorder=4)
            if len(missed):
                ax.scatter(np.full(len(missed), never_x), np.full(len(missed), y), color=st.color, s=40,
                           marker=">", facecolors="none", zorder=3)
        if (~np.isfinite(times["seconds_to_target"])).any():
            ax.axvline(never_x, color="0.6", lw=1, ls=":", zorder=1)
        # What each mark means, in neutral ink: the colours and y positions already name the networks.
        keys = [matplotlib.lines.Line2D([], [], ls="none", marker="o", color="0.35", ms=5,
                                        label="one seed (its network's marker)"),
                matplotlib.lines.Line2D([], [], ls="none", marker="|", color="0.35", ms=10, mew=3, label="median")]
        if (~np.isfinite(times["seconds_to_target"])).any():
            keys.append(matplotlib.lines.Line2D([], [], ls=":", marker=">", mfc="none", color="0.45", ms=6,
                                                label="never reached it (dotted line)"))
        ax.legend(handles=keys, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=8)
        ax.set_yticks(range(len(archs)), archs)
        ax.invert_yaxis()
        ax.set_xlim(left=0)
        ax.set_xlabel(f"training seconds until validation accuracy >= {target * 100:.2f}%")
        ax.set_title("Time to target: dots = seeds, bar = median (AlgoPerf's measure)", loc="left", fontsize=10)
        return save(fig, path)


# -- what the networks see -------------------------------------------------------------
def feature_maps(probe: np.ndarray, maps: dict[str, np.ndarray], title: str, path: Path, channels: int = 8) -> Path:
    archs = list(maps)
    with style_context(), plt.rc_context({"axes.grid": False}):
        fig, axes = plt.subplots(len(archs), channels + 1, figsize=((channels + 1) * 1.05, len(archs) * 1.2 + 0.4),
                                 squeeze=False)
        for r, arch in enumerate(archs):
            _show(axes[r, 0], probe)
            axes[r, 0].set_ylabel(arch, rotation=0, ha="right", va="center", fontsize=10)
            for c in range(channels):
                ax = axes[r, c + 1]
                if c < len(maps[arch]):
                    ax.imshow(maps[arch][c], cmap=FEATURE_CMAP)
                    if r == 0:
                        ax.set_title(f"channel {c}", fontsize=8, fontweight="normal")
            for ax in axes[r]:
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
        axes[0, 0].set_title("input", fontsize=8, fontweight="normal")
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
        fig.tight_layout()
        return save(fig, path)


def misclassified(images: np.ndarray, captions: Sequence[str], title: str, path: Path, cols: int = 4) -> Path:
    n = len(images)
    rows = max(1, math.ceil(n / cols))
    with style_context(), plt.rc_context({"axes.grid": False}):
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 2.1 + 0.35), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, image, caption in zip(axes.flat, images, captions):
            _show(ax, image, vmin=0, vmax=255)
            ax.set_title(caption, fontsize=9, fontweight="normal", linespacing=1.15)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
        fig.tight_layout()
        return save(fig, path)


# -- one network against the reference -------------------------------------------------------
def confusion_difference(diff: pd.DataFrame, classes: Sequence[str], arch: str, reference: str, path: Path) -> Path:
    """Mean confusion counts per seed of ``arch`` minus ``reference``: red off the diagonal means
    ``arch`` makes that mistake more often."""
    k = len(classes)
    diff = diff.reindex(index=range(k), columns=range(k), fill_value=0).fillna(0)
    bound = max(float(np.abs(diff.to_numpy()).max()), 1.0)
    size = 0.42 * k + 2.0
    with style_context(), plt.rc_context({"axes.grid": False}):
        fig, ax = plt.subplots(figsize=(size + 1.0, size))
        sns.heatmap(diff, ax=ax, cmap="RdBu_r", vmin=-bound, vmax=bound, square=True,
                    annot=diff.to_numpy(), fmt=".1f", annot_kws={"fontsize": 7}, xticklabels=classes,
                    yticklabels=classes, linewidths=0.3, linecolor="white", cbar_kws={"shrink": 0.7})
        _class_axes(ax, f"{arch} minus {reference}: test images per seed")
        fig.tight_layout()
        return save(fig, path)


def class_differences(rows: pd.DataFrame, arch: str, reference: str, margin: float, path: Path) -> Path:
    """Per class, ``arch`` minus ``reference`` in percentage points with its interval."""
    colours = {"better": "#146c2e", "worse": "#a61b1b", "equivalent": "#0b5cad", "undecided": "0.45"}
    with style_context():
        fig, ax = plt.subplots(figsize=(8, 0.38 * max(len(rows), 1) + 1.5))
        ax.axvspan(-margin * 100, margin * 100, color="0.9", zorder=0, label=f"±{margin * 100:g} pp margin")
        shown = set()
        for y, row in enumerate(rows.itertuples()):
            colour = colours.get(row.verdict, "0.45")
            label = row.verdict if row.verdict not in shown else None  # one legend entry per verdict
            shown.add(row.verdict)
            if math.isnan(row.ci_low):
                ax.plot(row.diff * 100, y, "o", color=colour, ms=6, label=label)
            else:
                ax.errorbar(row.diff * 100, y, xerr=[[(row.diff - row.ci_low) * 100], [(row.ci_high - row.diff) * 100]],
                            color=colour, capsize=3, lw=1.6, marker="o", ms=6, label=label)
        ax.axvline(0, color="0.3", lw=1)
        ax.set_yticks(range(len(rows)), list(rows["arch"]))
        ax.invert_yaxis()
        ax.set_xlabel(f"per-class test accuracy, {arch} minus {reference} (pp)")
        ax.set_title("Per-class differences with intervals (colour: verdict; grey band: margin)",
                     loc="left", fontsize=10)
        _legend_beside(ax, title="verdict", title_fontsize=8)
        return save(fig, path)


def disagreements(images: np.ndarray, captions: Sequence[str], title: str, path: Path, cols: int = 8) -> Path:
    """Test images two networks classified differently, with who got each right."""
    return misclassified(images, captions, title, path, cols=cols)
