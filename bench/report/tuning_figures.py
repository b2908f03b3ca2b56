"""The Tuning section's figures: validation accuracy against each tuned value (a sensitivity
curve, DeepOBS style) and the expected best validation accuracy against the number of trials."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from ..tuning.space import TUNABLE
from .figures import Style, save, style_context


def sensitivity(points: pd.DataFrame, params: list[str], archs: list[str], styles: dict[str, Style],
                path: Path) -> Path:
    """``points``: one row per architecture and trial (mean validation accuracy over its seeds)."""
    with style_context():
        fig, axes = plt.subplots(1, len(params), figsize=(5.6 * len(params), 3.8), squeeze=False)
        for ax, name in zip(axes[0], params):
            for arch in archs:
                a = points[points["arch"] == arch].sort_values(f"param_{name}")
                if a.empty:
                    continue
                st = styles[arch]
                # A line joins the points only when this is the one tuned value; else they are a scatter.
                ax.plot(a[f"param_{name}"], a["val_acc"] * 100, color=st.color, ls=st.linestyle if len(params) == 1
                        else "none", marker=st.marker, ms=4, lw=1.5, label=arch)
                best = a[a["chosen"]]
                ax.scatter(best[f"param_{name}"], best["val_acc"] * 100, s=140, marker="*", color=st.color,
                           edgecolor="black", linewidths=0.6, zorder=5)
            if TUNABLE[name] == "log":
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # decades only: no overlap
            ax.set_xlabel(name)
            ax.set_ylabel("validation accuracy (%)")
            ax.set_title(f"validation accuracy against {name}", loc="left")
        axes[0][0].legend(loc="best")
        fig.tight_layout()
        return save(fig, path)


def expected_best(curves: dict[str, pd.DataFrame], styles: dict[str, Style], path: Path) -> Path:
    """``curves``: per architecture, ``bench.tuning.expected_max_curve`` as a frame."""
    with style_context():
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        for arch, c in curves.items():
            st = styles[arch]
            ax.plot(c["trials"], c["expected"] * 100, color=st.color, ls=st.linestyle, marker=st.marker, ms=3.5,
                    lw=1.6, label=arch)
            ax.fill_between(c["trials"], c["low"] * 100, c["high"] * 100, color=st.color, alpha=0.15, lw=0)
        ax.set_xlabel("tuning trials")
        ax.set_ylabel("expected best validation accuracy (%)")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_title("expected best of n trials (band: +-1 sd)", loc="left")
        ax.legend(loc="lower right")
        fig.tight_layout()
        return save(fig, path)
