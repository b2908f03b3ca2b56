"""What the Robustness section shows, from the stored evaluations (``bench.evaluations``).

The report reads stored files only: the evaluations' columns of ``runs.csv``, their details in
each run's record (reliability bins), and ``evaluations-<dataset>.pt`` (test images as each
evaluation changes them).  Every compared metric of every registered evaluation gets a row of
means and a verdict per factor level (or architecture), so a new evaluation shows here with
no change to this file.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ..stats.metrics import metric
from . import axes
from . import robustness_figures as figures

SHIFT_SIZE = re.compile(r"shift_acc_(\d+)$")
F1_CLASS = re.compile(r"f1_class_(\d+)$")


def context(v) -> dict[str, Any] | None:
    """The section's context for one dataset's view, or None when no run has an evaluation."""
    runs = v.runs
    compared = axes.compared_metrics(runs)[1:]
    present = [c for c in runs.columns if c.startswith("evaluation_seconds_") and runs[c].notna().any()]
    if not present and not compared:
        return None
    order = v.archs
    c: dict[str, Any] = {"metrics": [metric(m).label for m in compared], "errors": _errors(v)}
    c["means"] = [{"arch": a, "shown": [_shown(m, runs.loc[runs["arch"] == a, m].mean()) for m in compared]}
                  for a in order]
    c["seconds"] = {col.removeprefix("evaluation_seconds_"): float(runs[col].mean()) for col in present}
    factorial = any(q.startswith("factor ") for q in v.asked)
    found = (axes.factor_axes(v.evidence) if factorial
             else axes.pairwise_axes(v.evidence, v.reference, v.order)) if len(order) > 1 else []
    c["axes"] = [{"head": f"{a.factor}: {a.level} vs {a.reference}" if factorial else f"{a.level} vs {a.reference}",
                  "cells": [_cell(a.by_metric.get(m)) for m in axes.compared_metrics(runs)],
                  "recommendation": a.recommendation} for a in found]
    c["axis_labels"] = [metric(m).label for m in axes.compared_metrics(runs)]
    corruption = [col for col in runs.columns if col.startswith("corruption_acc_") and col != "corruption_acc_clean"]
    if corruption and "corruption_acc_clean" in runs and "mean_corruption_acc" in runs:
        table = runs.groupby("arch")[["corruption_acc_clean", *corruption, "mean_corruption_acc"]].mean()
        table = table.reindex([a for a in order if a in table.index])
        table.columns = ["clean", *(col.removeprefix("corruption_acc_").replace("_", " ") for col in corruption),
                         "mean"]
        c["heatmap"] = v.figure(figures.corruption_heatmap, "corruptions", table)
    if "shift_consistency" in runs and runs["shift_consistency"].notna().any():
        c["consistency"] = v.figure(figures.consistency_against_accuracy, "shift-consistency", runs, order, v.styles)
    sizes = sorted((int(m.group(1)), col) for col in runs.columns if (m := SHIFT_SIZE.match(col)))
    if sizes:
        curves = runs.groupby("arch")[[col for _, col in sizes]].mean()
        curves.columns = [s for s, _ in sizes]
        c["shift_curve"] = v.figure(figures.accuracy_by_shift, "shift-size", curves, order, v.styles)
    bins = _reliability(v)
    if bins:
        c["reliability"] = v.figure(figures.reliability, "reliability", bins, order, v.styles)
    c["f1"] = _f1_table(v)
    examples = _examples(v)
    if examples is not None:
        c["examples"] = v.figure(figures.tested_examples, "tested-images", *examples)
    return c


def _shown(column: str, x: float) -> str:
    m = metric(column)
    unit = f" {m.unit}" if m.unit and m.unit != "%" else ("%" if m.unit == "%" else "")
    return "–" if x is None or math.isnan(x) else f"{m.value(x)}{unit}"


def _cell(c) -> dict[str, str]:
    if c is None:
        return {"verdict": "", "text": "–", "title": ""}
    from ..stats import describe

    m = metric(c.metric)
    unit = f" {m.delta_unit}" if m.delta_unit else ""
    return {"verdict": c.verdict, "text": f"{c.verdict} ({m.delta(c.diff)}{unit})", "title": describe(c)}


def _errors(v) -> list[str]:
    ids = set(v.runs["run_id"])
    return sorted({f"{name}: {details['error']}" for run_id, by in v.stored.evaluations.items() if run_id in ids
                   for name, details in by.items() if "error" in details})


def _reliability(v) -> dict[str, dict[str, np.ndarray]]:
    """Per architecture, the reliability bins of its seeds pooled (counts add; means weighted)."""
    pooled: dict[str, dict[str, np.ndarray]] = {}
    for run_id, arch in zip(v.runs["run_id"], v.runs["arch"]):
        rel = v.stored.evaluations.get(run_id, {}).get("calibration", {}).get("reliability")
        if not rel:
            continue
        count = np.asarray(rel["count"], dtype=float)
        p = pooled.setdefault(arch, {"edges": np.asarray(rel["edges"]), "count": np.zeros_like(count),
                                     "conf": np.zeros_like(count), "acc": np.zeros_like(count)})
        p["count"] += count
        p["conf"] += count * np.asarray(rel["confidence"])
        p["acc"] += count * np.asarray(rel["accuracy"])
    for p in pooled.values():
        safe = np.maximum(p["count"], 1)
        p["confidence"], p["accuracy"] = p.pop("conf") / safe, p.pop("acc") / safe
    return pooled


def _f1_table(v) -> dict[str, Any] | None:
    columns = sorted(((int(m.group(1)), col) for col in v.runs.columns if (m := F1_CLASS.match(col))))
    if not columns or "macro_f1" not in v.runs:
        return None
    means = v.runs.groupby("arch")[[col for _, col in columns] + ["macro_f1"]].mean()
    classes = [v.classes[i] if i < len(v.classes) else str(i) for i, _ in columns]
    rows = []
    for arch in [a for a in v.archs if a in means.index]:
        row = means.loc[arch]
        best = {col: means[col].max() for _, col in columns}
        rows.append({"arch": arch, "macro": f"{row['macro_f1'] * 100:.2f}",
                     "cells": [{"text": f"{row[col] * 100:.1f}", "best": row[col] == best[col]} for _, col in columns]})
    return {"classes": classes, "rows": rows}


def _examples(v):
    from ..samples import load_evaluation_examples

    try:
        stored = load_evaluation_examples(v.stored.out, v.dataset)
    except Exception:  # a damaged examples file costs a figure, not the report
        return None
    if not stored or not stored.get("by"):
        return None
    by = {caption: images.numpy() for by_caption in stored["by"].values() for caption, images in by_caption.items()}
    return stored["clean"].numpy(), by
