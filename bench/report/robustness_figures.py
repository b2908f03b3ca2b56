"""The Robustness section's figures: corruption heat map, shift, reliability, what was tested."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .figures import HEATMAP, Style, _show, save, style_context


def corruption_heatmap(table: pd.DataFrame, path: Path) -> Path:
    """Architectures x (clean, each corruption, mean): mean accuracy over seeds, in %."""
    with style_context():
        fig, ax = plt.subplots(figsize=(1.0 + 0.62 * table.shape[1], 0.9 + 0.42 * table.shape[0]))
        low = float(np.nanmin(table.to_numpy())) * 100 if table.size else 0.0
        # the colour scale starts at the lowest ten below the worst cell, so close cells still differ
        sns.heatmap(table * 100, annot=True, fmt=".1f", cmap=HEATMAP, vmin=max(0.0, math.floor(low / 10) * 10),
                    vmax=100,
                    cbar_kws={"label": "accuracy (%)"},
                    linewidths=0.5, linecolor="white", annot_kws={"fontsize": 8}, ax=ax)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_xticklabels(ax.get_xticklabels(), rotation=35, ha="right")
        ax.set_title("Accuracy under each corruption (mean over seeds, %; subset of the test split)", loc="left")
        ax.grid(False)
        return save(fig, path)


def consistency_against_accuracy(runs: pd.DataFrame, archs: Sequence[str], styles: dict[str, Style],
                                 path: Path) -> Path:
    """Per seed (small) and per architecture (large, mean): shift consistency against clean test accuracy."""
    with style_context():
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for arch in archs:
            group = runs[runs["arch"] == arch]
            if group.empty:
                continue
            c = styles[arch].color
            ax.scatter(group["test_acc"] * 100, group["shift_consistency"] * 100, s=14, color=c, alpha=0.45)
            ax.scatter(group["test_acc"].mean() * 100, group["shift_consistency"].mean() * 100, s=70, color=c,
                       edgecolor="black", linewidth=0.6, label=arch, zorder=3)
        ax.set_xlabel("clean test accuracy (%)")
        ax.set_ylabel("shift consistency (%)")
        ax.set_title("Shift consistency against clean accuracy (dots: seeds)", loc="left")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
        return save(fig, path)


def accuracy_by_shift(curves: pd.DataFrame, archs: Sequence[str], styles: dict[str, Style], path: Path) -> Path:
    """``curves``: arch x shift size (pixels) mean accuracy."""
    with style_context():
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for arch in archs:
            if arch in curves.index:
                s = styles[arch]
                ax.plot(curves.columns, curves.loc[arch] * 100, color=s.color, linestyle=s.linestyle,
                        marker=s.marker or "o", label=arch)
        ax.set_xticks(list(curves.columns))
        ax.set_xlabel("shift (pixels, largest of |dx|, |dy|; zero fill)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("Accuracy against shift size (mean over seeds; subset)", loc="left")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
        return save(fig, path)


def reliability(bins: dict[str, dict[str, np.ndarray]], archs: Sequence[str], styles: dict[str, Style],
                path: Path) -> Path:
    """Per architecture: accuracy against mean confidence per confidence bin (bins pooled over seeds)."""
    shown = [a for a in archs if a in bins]
    cols = min(len(shown), 3)
    rows = math.ceil(len(shown) / cols)
    with style_context():
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.1 * rows), squeeze=False)
        for ax in axes.flat[len(shown):]:
            ax.axis("off")
        for ax, arch in zip(axes.flat, shown):
            b = bins[arch]
            edges = b["edges"]
            filled = b["count"] > 0
            centres = (edges[:-1] + edges[1:]) / 2
            ax.bar(centres[filled], b["accuracy"][filled], width=np.diff(edges)[filled], color=styles[arch].color,
                   alpha=0.75, edgecolor="white", linewidth=0.4)
            ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_title(arch, fontsize=9)
            ax.set_xlabel("confidence")
            ax.set_ylabel("accuracy")
        fig.suptitle("Reliability diagrams (15 bins, pooled over seeds; diagonal: calibrated)", x=0.01, ha="left",
                     fontweight="bold", fontsize=11)
        fig.tight_layout()
        return save(fig, path)


def tested_examples(clean: np.ndarray, by: dict[str, np.ndarray], path: Path, rows: int = 4) -> Path:
    """Test images as tested: the clean image, then each transformation of it, one column each."""
    names = ["clean", *by]
    n = min(rows, len(clean))
    with style_context():
        fig, axes = plt.subplots(n, len(names), figsize=(0.85 * len(names), 0.95 * n + 0.4), squeeze=False)
        for j, name in enumerate(names):
            images = clean if name == "clean" else by[name]
            for i in range(n):
                ax = axes[i, j]
                ax.axis("off")
                _show(ax, images[i], vmin=0, vmax=255)
            axes[0, j].set_title(name.replace(" ", "\n", 1), fontsize=7, fontweight="normal")
        fig.suptitle("What the evaluations test: the same test images, as each evaluation changes them", x=0.01,
                     ha="left", fontweight="bold", fontsize=10)
        return save(fig, path)
