"""Property-based guards: stores spanning what real grids produce render, and tell the truth.

Hypothesis builds stored grids of 1-10 seeds and 1-8 networks, with and without factors (one or
two, levels sometimes missing), epoch times from 10 ms to 10 minutes, accuracies from chance to
100%, zero spread, ties, failed and diverged runs, with and without per-image results.  Each is
rendered whole; every interval the statistics give contains its estimate and stays inside its
metric's real bounds; the page shows no NaN or infinity as a number.  A fixed seed and a bounded
example count keep the run repeatable and short.
"""

from __future__ import annotations

import html as html_lib
import itertools
import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.records import RunRecord
from bench.report import render_report
from bench.stats import evidence as report_stats
from bench.report.load import load
from bench.stats import METHODS, accuracy_interval
from bench.stats.metrics import METRICS, metric
from synthetic_store import registered, write_store

IMAGES = 200
CHANCE = 0.1
LEVELS = {"conv": ("std", "dil"), "downsample": ("max", "avg", "stride")}


@st.composite
def grids(draw):
    """A grid as real runs produce it: names and factors, per-run accuracies, times and bits."""
    n_factors = draw(st.sampled_from([0, 1, 2]))
    if n_factors:
        factors = list(LEVELS)[:n_factors] if n_factors == 2 else [draw(st.sampled_from(list(LEVELS)))]
        cells = list(itertools.product(*(LEVELS[f] for f in factors)))
        keep = draw(st.lists(st.sampled_from(cells), min_size=1, max_size=len(cells), unique=True))
        specs = {"p-" + "-".join(c): dict(zip(factors, c)) for c in cells if c in keep}
    else:
        n = draw(st.integers(1, 8))
        specs = {f"p-net{i}": {} for i in range(n)}
    archs = list(specs)
    seeds = list(range(draw(st.integers(1, 10))))
    # Accuracies from chance to 100%, zero spread or seed noise, ties between networks.
    levels = st.sampled_from([CHANCE, 0.5, 0.9, 0.985, 0.99, 1.0])
    base = {a: draw(levels) for a in archs}
    noisy = draw(st.booleans())
    per_image = draw(st.booleans())
    # Epoch times from 10 ms to 10 minutes, sometimes the same for every network.
    scale = draw(st.sampled_from([0.01, 0.5, 30.0, 600.0]))
    same_time = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    accuracy, seconds, correct = {}, {}, {}
    for a_i, arch in enumerate(archs):
        for seed in seeds:
            p = base[arch]
            if noisy and 0 < p < 1:
                p = float(np.clip(p + rng.normal(0, 0.004), CHANCE, 1.0))
            if per_image:
                bits = rng.random(IMAGES) < p
                correct[(arch, seed)] = bits
                p = float(bits.mean())
            accuracy[(arch, seed)] = p
            seconds[(arch, seed)] = scale * (1.0 if same_time else 1 + 0.3 * a_i) * (1 + (0.01 * seed if noisy else 0))
    runs = [(a, s) for a in archs for s in seeds]
    bad = draw(st.lists(st.sampled_from(runs), max_size=min(3, len(runs) - 1), unique=True))
    split = len(bad) // 2
    return {"specs": specs, "seeds": seeds, "accuracy": accuracy, "seconds": seconds,
            "correct": correct if per_image else None, "failed": tuple(bad[:split]),
            "diverged": tuple(bad[split:])}


def _shown_text(page: str) -> str:
    """The page's visible text: no style, no script, no embedded images, no fixed methods prose
    (which spells out "inf when never reached")."""
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r'src="data:[^"]*"', "", page)
    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", page))
    for prose in METHODS.values():
        text = text.replace(prose, " ")
    return text


def _check_interval(lo: float, hi: float, estimate: float, bounds: tuple[float, float], what: str) -> None:
    if math.isnan(lo) or math.isnan(hi) or math.isnan(estimate):
        return
    assert lo <= estimate + 1e-12 and estimate - 1e-12 <= hi, f"{what}: [{lo}, {hi}] misses {estimate}"
    assert bounds[0] <= lo and hi <= bounds[1], f"{what}: [{lo}, {hi}] leaves the bounds {bounds}"


def check_store(out, weights: bool = True) -> None:
    """Every comparison the report can show, for every compared metric, against its estimate.

    Without weights the runs are read as the report would (their bits and tables), not vetted."""
    stored = load(out) if weights else _load_unvetted(out)
    for dataset in stored.datasets:
        runs = stored.ok[stored.ok["dataset"] == dataset]
        if runs.empty:
            continue
        evidence = report_stats.Evidence(runs, stored.correct)
        for arch in evidence.archs:
            interval = accuracy_interval(evidence.scores(arch))
            _check_interval(interval.low, interval.high, interval.mean, (0.0, 1.0), f"{arch}'s accuracy")
        for column in ("test_acc", "mean_epoch_seconds"):
            m = metric(column)
            found = [c for ref in evidence.archs for c in evidence.compare(ref, metric=column)]
            found += [c for cs in report_stats.factor_effects(evidence, column).values() for c in cs]
            for c in found:
                what = f"{column}: {c.arch} vs {c.reference}"
                _check_interval(c.ci_low, c.ci_high, c.diff, m.diff_bounds, what)
                _check_interval(c.eq_low, c.eq_high, c.diff, m.diff_bounds, what + " (equivalence)")
                # The interval printed beside a verdict tells its story: it excludes 0 exactly when
                # the verdict says a difference (Holm-consistent intervals).  One seed is left out:
                # its p-value is McNemar's exact test, its interval a t interval over images.
                if not math.isnan(c.ci_low) and c.n_seeds > 1:
                    excludes_zero = c.ci_low > 0 or c.ci_high < 0
                    assert (c.p_holm <= c.alpha_used) == excludes_zero, what
        for x, hue in itertools.permutations(report_stats.factor_columns(report_stats.factorial_runs(runs)), 2):
            cells = report_stats.interaction_table(runs, x.removeprefix("factor_"), hue.removeprefix("factor_"))
            for r in cells.itertuples():
                _check_interval(r.ci_low, r.ci_high, r.mean, (0.0, 1.0), f"cell {x}={getattr(r, x[7:])}")


def _load_unvetted(out):
    runs = pd.read_csv(out / "runs.csv")
    correct = {}
    for run_id in runs["run_id"]:
        record = RunRecord.from_json(json.loads((out / "runs" / run_id / "record.json").read_text()))
        if record.test_correct is not None:
            correct[run_id] = record.test_correct
    return SimpleNamespace(datasets=sorted(set(runs["dataset"])), ok=runs[runs["status"] == "ok"], correct=correct)


@pytest.mark.parametrize("column", sorted(METRICS))
def test_every_declared_metric_has_units_and_sane_bounds(column):
    m = metric(column)
    assert m.label and m.low < m.high and m.scale > 0
    assert 0 <= m.margin < m.diff_bounds[1]


SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


def _write(out, grid) -> None:
    write_store(out, grid["accuracy"], grid["seeds"], epochs=3, factors=grid["specs"], dataset="mnist",
                failed=grid["failed"], diverged=grid["diverged"], weights=False,
                epoch_seconds=grid["seconds"], test_correct=grid["correct"])


@settings(max_examples=40, **SETTINGS)
@given(grid=grids())
def test_every_interval_of_stores_like_real_grids_holds_its_estimate_inside_its_bounds(grid, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    with registered(grid["specs"]):
        _write(out, grid)
        check_store(out, weights=False)


@settings(max_examples=6, **SETTINGS)
@given(grid=grids())
def test_stores_like_real_grids_render_whole_with_no_nan_shown(grid, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    with registered(grid["specs"]):
        write_store(out, grid["accuracy"], grid["seeds"], epochs=3, factors=grid["specs"], dataset="mnist",
                    failed=grid["failed"], diverged=grid["diverged"],
                    epoch_seconds=grid["seconds"], test_correct=grid["correct"])
        page = render_report(out).read_text()
    shown = _shown_text(page)
    assert not re.search(r"(?i)\b(nan|inf)\b", shown), re.search(r".{60}(?i:\b(nan|inf)\b).{60}", shown, re.S)
    assert "The answer" in shown
