"""Every figure of the report, drawn with matplotlib's Agg backend (and seaborn) to PNG.

One fixed colour per architecture everywhere (seaborn's colour-blind-safe palette, in grid
order; past ten architectures the colours repeat with a dashed line and another marker).
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
from . import stats  # noqa: E402

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
MARKERS = ("o", "s", "D", "^", "v", "P")
LINESTYLES = ("-", "--", ":", "-.")
HEATMAP = "rocket_r"  # perceptually uniform, readable without colour vision
FEATURE_CMAP = "viridis"


@dataclass(frozen=True)
class Style:
    color: tuple[float, float, float]
    linestyle: str
    marker: str


def arch_styles(archs: Sequence[str]) -> dict[str, Style]:
    palette = sns.color_palette("colorblind", 10)
    return {
        arch: Style(tuple(palette[i % 10]), LINESTYLES[(i // 10) % len(LINESTYLES)],
                    MARKERS[(i // 10) % len(MARKERS)] if i >= 10 else "o")
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
            ax.legend(loc="lower right")
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
        for ax in axes[1]:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0), ncol=min(len(labels), 6))
        fig.suptitle("Per-epoch curves: line = mean over seeds, band = min-max over seeds", x=0.01,
                     ha="left", fontsize=11)
        fig.tight_layout(rect=(0, 0.06 + 0.03 * (len(labels) // 7), 1, 0.97))
        return save(fig, path)


# -- errors ----------------------------------------------------------------------------
def confusion_grid(confusion: pd.DataFrame, archs: Sequence[str], classes: Sequence[str], path: Path) -> Path:
    n = len(archs)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    k = len(classes)
    size = 0.38 * k + 1.4
    with style_context(), plt.rc_context({"axes.grid": False}):
        fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * (size + 0.2)), squeeze=False)
        for ax in axes.flat[n:]:
            ax.axis("off")
        for ax, arch in zip(axes.flat, archs):
            sub = confusion[confusion["arch"] == arch]
            counts = (sub.groupby(["true", "predicted"])["count"].sum().unstack("predicted")
                      .reindex(index=range(k), columns=range(k), fill_value=0).fillna(0).astype(int))
            totals = counts.sum(axis=1).replace(0, np.nan)
            share = counts.div(totals, axis=0) * 100
            sns.heatmap(share, ax=ax, cmap=HEATMAP, vmin=0, vmax=100, square=True, cbar=False,
                        annot=counts.to_numpy(), fmt="d", annot_kws={"fontsize": 7},
                        xticklabels=classes, yticklabels=classes, linewidths=0.3, linecolor="white")
            _class_axes(ax, f"{arch} (seeds summed)")
        fig.tight_layout()
        return save(fig, path)


def _class_axes(ax, title: str) -> None:
    """Title and labels of a true x predicted class heatmap."""
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=8)


def per_class(acc: pd.DataFrame, archs: Sequence[str], classes: Sequence[str], styles: dict[str, Style],
              path: Path) -> Path:
    archs = [a for a in archs if a in acc.index]
    k = len(classes)
    width = 0.8 / max(len(archs), 1)
    with style_context():
        fig, ax = plt.subplots(figsize=(max(9, 0.09 * k * len(archs) + 3), 4.3))
        for i, arch in enumerate(archs):
            values = acc.loc[arch].reindex(range(k)).to_numpy() * 100
            ax.bar(np.arange(k) - 0.4 + width * (i + 0.5), values, width=width, color=styles[arch].color,
                   label=arch, edgecolor="white", linewidth=0.3)
        ax.set_xticks(range(k), classes, rotation=30 if max(len(c) for c in classes) > 3 else 0, ha="right"
                      if max(len(c) for c in classes) > 3 else "center")
        low = np.nanmin(acc.to_numpy()) * 100 if acc.size else 0
        ax.set_ylim(max(0, math.floor(low / 10) * 10 - 5), 100)
        ax.set_ylabel("per-class test accuracy (%)")
        ax.set_xlabel("true class")
        ax.set_title("Per-class accuracy (confusion counts summed over seeds)", loc="left")
        ax.legend(ncol=min(len(archs), 6), loc="lower center", bbox_to_anchor=(0.5, 1.07))
        ax.grid(axis="x", visible=False)
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
                ax.annotate(row.arch, (xi, row.mean * 100), xytext=(5, 3), textcoords="offset points", fontsize=8)
            ax.set_xlabel(label)
            ax.set_xlim(left=0)
        axes[0].set_ylabel("test accuracy, mean over seeds (%)")
        axes[0].legend(loc="lower right", fontsize=8)
        fig.suptitle("Accuracy against cost (whiskers: 95% interval)", x=0.01, ha="left", fontsize=11)
        fig.tight_layout()
        return save(fig, path)


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
        ax.axvline(never_x, color="0.6", lw=1, ls=":")
        ax.annotate("never reached", (never_x, len(archs) - 0.5), xytext=(-4, 0), textcoords="offset points",
                    ha="right", fontsize=8, color="0.4")
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
        ax.axvspan(-margin * 100, margin * 100, color="0.9", zorder=0)
        for y, row in enumerate(rows.itertuples()):
            colour = colours.get(row.verdict, "0.45")
            if math.isnan(row.ci_low):
                ax.plot(row.diff * 100, y, "o", color=colour, ms=6)
            else:
                ax.errorbar(row.diff * 100, y, xerr=[[(row.diff - row.ci_low) * 100], [(row.ci_high - row.diff) * 100]],
                            color=colour, capsize=3, lw=1.6, marker="o", ms=6)
        ax.axvline(0, color="0.3", lw=1)
        ax.set_yticks(range(len(rows)), list(rows["arch"]))
        ax.invert_yaxis()
        ax.set_xlabel(f"per-class test accuracy, {arch} minus {reference} (pp)")
        ax.set_title("Per-class differences with intervals (colour: verdict; grey band: margin)",
                     loc="left", fontsize=10)
        return save(fig, path)


def disagreements(images: np.ndarray, captions: Sequence[str], title: str, path: Path, cols: int = 8) -> Path:
    """Test images two networks classified differently, with who got each right."""
    return misclassified(images, captions, title, path, cols=cols)
