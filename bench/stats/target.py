"""Time to target (AlgoPerf's measure): how long each run took to reach a validation accuracy.

Works on the epochs table, one row per (run, epoch) with columns run_id, arch, seed, epoch,
val_acc and train_seconds (that epoch's training time).  Per run: the first epoch whose
val_acc >= target and the training seconds summed up to and including it; ``inf`` for both
when the run never reached the target.  The default target is the lowest of the compared
architectures' mean final validation accuracies, so the target is one every architecture
reaches on average, and the question becomes who gets there first.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

RUN_KEYS = ["run_id", "arch", "seed"]


def default_target(epochs: pd.DataFrame) -> float:
    """Minimum over architectures of the mean (over seeds) of the final epoch's val_acc."""
    final = epochs.sort_values(["run_id", "epoch"], kind="stable").groupby("run_id").tail(1)
    per_arch = final.groupby("arch")["val_acc"].mean().dropna()
    return float(per_arch.min()) if len(per_arch) else math.nan


def time_to_target(epochs: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per run: epochs_to_target, seconds_to_target (inf when never reached), reached."""
    ordered = epochs.sort_values(["run_id", "epoch"], kind="stable")
    cumulative = ordered.groupby("run_id")["train_seconds"].cumsum()
    hits = ordered.assign(seconds=cumulative)[ordered["val_acc"] >= target]
    first = hits.groupby("run_id").head(1).set_index("run_id")
    runs = ordered[RUN_KEYS].drop_duplicates("run_id").reset_index(drop=True)
    runs["epochs_to_target"] = runs["run_id"].map(first["epoch"]).astype(float).fillna(math.inf)
    runs["seconds_to_target"] = runs["run_id"].map(first["seconds"]).astype(float).fillna(math.inf)
    runs["reached"] = np.isfinite(runs["epochs_to_target"])
    return runs


def target_summary(epochs: pd.DataFrame, target: float | None = None) -> pd.DataFrame:
    """Per architecture: median epochs and seconds to target, seeds that reached it, seconds per epoch.

    A median is inf when half or more of the seeds never reached the target.
    """
    if target is None:
        target = default_target(epochs)
    times = time_to_target(epochs, target)
    rows = []
    for arch, group in times.groupby("arch", sort=True):
        rows.append({
            "arch": arch, "target": target,
            "seeds": len(group), "reached": int(group["reached"].sum()),
            "median_epochs": float(np.median(group["epochs_to_target"])),
            "median_seconds": float(np.median(group["seconds_to_target"])),
            "seconds_per_epoch": float(epochs.loc[epochs["arch"] == arch, "train_seconds"].mean()),
        })
    return pd.DataFrame(rows, columns=["arch", "target", "seeds", "reached", "median_epochs",
                                       "median_seconds", "seconds_per_epoch"])


def per_epoch_reversals(summary: pd.DataFrame) -> pd.DataFrame:
    """Pairs where the faster network per epoch is the slower one to the target.

    One row per pair (faster_per_epoch, faster_to_target); empty when per-epoch speed
    orders the architectures the same way as time to target.
    """
    rows = []
    records = summary.to_dict("records")
    for a in records:
        for b in records:
            if a["seconds_per_epoch"] < b["seconds_per_epoch"] and a["median_seconds"] > b["median_seconds"]:
                rows.append({"faster_per_epoch": a["arch"], "faster_to_target": b["arch"],
                             "seconds_per_epoch": a["seconds_per_epoch"],
                             "other_seconds_per_epoch": b["seconds_per_epoch"],
                             "seconds_to_target": a["median_seconds"],
                             "other_seconds_to_target": b["median_seconds"]})
    return pd.DataFrame(rows, columns=["faster_per_epoch", "faster_to_target", "seconds_per_epoch",
                                       "other_seconds_per_epoch", "seconds_to_target",
                                       "other_seconds_to_target"])
