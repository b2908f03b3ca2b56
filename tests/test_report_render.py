"""The rendered report, from a small real digits run and from synthetic stored tables."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.report import render_report
from synthetic_store import factorial_specs, registered, write_store

from conftest import run_cli, run_cli_process

DATE = re.compile(r'<span class="rendered-at">[^<]*</span>')


@pytest.fixture(scope="module")
def rendered(digits_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(digits_run, out)
    html = render_report(out).read_text()
    return out, html


def table(html: str, css_class: str) -> str:
    match = re.search(rf'<table[^>]*class="[^"]*\b{css_class}\b[^"]*"[^>]*>.*?</table>', html, re.S)
    assert match, f"no table of class {css_class}"
    return match.group(0)


def leaderboard_archs(html: str) -> list[str]:
    return re.findall(r'class="data row\d+ col1"\s*>([^<]+)<', table(html, "leaderboard"))


def row_of(table_html: str, arch: str) -> list[str]:
    match = re.search(rf'<tr><td class="name">{re.escape(arch)}</td>(.*?)</tr>', table_html, re.S)
    assert match, f"no row for {arch}"
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)]


def test_html_is_self_contained_and_embeds_every_png(rendered):
    out, html = rendered
    pngs = sorted((out / "figures").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"digits-accuracy.png", "digits-curves.png", "digits-confusion.png", "digits-per-class.png",
            "digits-pareto.png", "digits-epoch-time.png", "digits-feature-maps.png", "digits-vs-leader.png",
            "digits-samples.png", "digits-misclassified-lenet.png", "digits-misclassified-dilated.png"} <= names
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert base64.b64encode(png.read_bytes()).decode() in html, png.name
    assert html.count('src="data:image/png;base64,') == len(pngs)
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from a network
    for heading in ("1. Leaderboard", "2. Pairwise comparison", "3. Factor effects", "4. Learning curves",
                    "5. Where the networks err", "6. Cost", "7. What the networks see", "Failed or diverged"):
        assert heading in html
    assert html.count("How to read this.") >= 7  # one per section (failed runs: only when any)
    assert "python -m bench --archs lenet,dilated --dataset digits" in html  # the reproduce command


def test_leaderboard_order_and_numbers_match_the_tables(rendered):
    out, html = rendered
    runs = pd.read_csv(out / "runs.csv")
    means = runs.groupby("arch")["test_acc"].mean().sort_values(ascending=False)
    assert leaderboard_archs(html) == list(means.index)
    board = table(html, "leaderboard")
    for arch, acc in runs.groupby("arch")["test_acc"]:
        n, mean, sd = len(acc), acc.mean(), acc.std(ddof=1)
        half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        (row,) = [r for r in board.split("<tr")[1:] if f">{arch}<" in r]  # this arch's own row
        assert f">{mean * 100:.2f}<" in row
        assert f">{sd * 100:.2f}<" in row
        assert f"[{(mean - half) * 100:.2f}, {(mean + half) * 100:.2f}]" in row


def test_paired_difference_in_html_equals_one_computed_from_csv(rendered):
    out, html = rendered
    runs = pd.read_csv(out / "runs.csv")
    wide = runs.pivot(index="seed", columns="arch", values="test_acc")
    leader = wide.mean().idxmax()
    other = next(a for a in wide.columns if a != leader)
    d = (wide[other] - wide[leader]).to_numpy()
    half = sps.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    cells = row_of(table(html, "comparison"), other)
    assert cells[0] == str(len(d))
    assert cells[1] == f"{d.mean() * 100:+.2f}"
    assert cells[2] == f"[{(d.mean() - half) * 100:+.2f}, {(d.mean() + half) * 100:+.2f}]"
    if np.all(d == d[0]):
        assert "no test possible" in cells[5] or "no detectable" in cells[5]
    else:
        p = sps.ttest_rel(wide[other], wide[leader]).pvalue
        assert cells[3] == ("< 0.001" if p < 0.001 else f"{p:.3f}")
        assert cells[4] == cells[3]  # one comparison: Holm leaves p unchanged


def test_rerender_is_identical_apart_from_the_date(rendered):
    out, html = rendered
    before = {p.name: p.read_bytes() for p in (out / "figures").glob("*.png")}
    (out / "figures" / "stale.png").write_bytes(b"old figure of an architecture no longer in the run")
    again = render_report(out).read_text()
    assert DATE.sub("", again) == DATE.sub("", html)
    assert {p.name: p.read_bytes() for p in (out / "figures").glob("*.png")} == before  # stale one pruned


def test_garbage_runs_csv_is_one_line_and_non_zero(rendered, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(rendered[0], out)
    (out / "runs.csv").write_text("this is,not a\ncnnbench,table\n")
    proc = run_cli_process("report", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: "), proc.stderr
    assert "runs.csv is not a cnnbench table" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "epochs.csv").is_file()  # nothing stored is touched


def test_failed_runs_are_listed_and_one_seed_says_no_test(rendered, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(rendered[0], out)
    runs = pd.read_csv(out / "runs.csv")
    lost = runs["seed"] == 1
    runs["error"] = runs["error"].astype(object)
    runs.loc[lost, "status"] = "diverged"
    runs.loc[lost, "error"] = "loss became non-finite in epoch 2"
    runs.loc[lost, ["test_acc", "test_loss"]] = np.nan
    runs.to_csv(out / "runs.csv", index=False)
    invocation = json.loads((out / "config.json").read_text())
    invocation["datasets"]["digits"]["fallback_reason"] = "no MNIST files under the data directory"
    (out / "config.json").write_text(json.dumps(invocation))
    assert run_cli("report", str(out)) == 0
    html = (out / "report.html").read_text()
    failed = table(html, "failed")
    for run_id in runs.loc[lost, "run_id"]:
        assert run_id in failed
    assert failed.count("loss became non-finite in epoch 2") == lost.sum()
    assert "no test possible" in table(html, "comparison")
    assert "only one seed: no statistical test is possible" in html
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    assert 'class="banner warn">⚠ MNIST was not available' in html
    assert "no MNIST files under the data directory" in html


def test_cost_section_says_when_seed_groups_make_times_incomparable(rendered, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(rendered[0], out)
    html = render_report(out).read_text()
    assert "seed groups of different sizes" not in html and "trained its seeds in groups" not in html  # CPU: alone
    runs = pd.read_csv(out / "runs.csv")
    runs["seed_group"] = np.where(runs["arch"] == "lenet", 2, 1)
    runs.to_csv(out / "runs.csv", index=False)
    html = render_report(out).read_text()
    assert "seed groups of different sizes" in html
    assert "dilated alone, lenet in groups of 2." in html
    runs["seed_group"] = 2
    runs.to_csv(out / "runs.csv", index=False)
    html = render_report(out).read_text()
    assert "seed groups of different sizes" not in html and "trained its seeds in groups of 2" in html


def test_unknown_baseline_is_one_line_error(rendered, capsys):
    assert run_cli("report", str(rendered[0]), "--baseline", "nosuchnet") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --baseline 'nosuchnet'") and err.count("\n") == 1


def test_run_rejects_unknown_baseline_before_training(tmp_path, capsys):
    out = tmp_path / "never"
    assert run_cli("--archs", "lenet", "--dataset", "digits", "--baseline", "convnet", "--out", str(out)) == 2
    assert "--baseline 'convnet' is not one of the selected" in capsys.readouterr().err
    assert not out.exists()


def test_factor_effects_baseline_and_class_names_from_synthetic_tables(tmp_path):
    specs = {**factorial_specs(), "synth-plain": {}}
    e_c, e_d = [0.01, 0.02, 0.03], [-0.01, -0.01, -0.04]
    accuracy = {}
    for arch, factors in specs.items():
        for s in range(3):
            acc = 0.80 + (factors.get("conv") == "dilated") * e_c[s] + (factors.get("downsample") == "avg") * e_d[s]
            accuracy[(arch, s)] = acc if factors else 0.70
    with registered(specs):
        out = write_store(tmp_path / "syn", accuracy, [0, 1, 2], epochs=3, factors=specs,
                          failed=(("synth-plain", 2),))
        html = render_report(out, baseline="synth-plain").read_text()
    assert (out / "figures" / "fashion-mnist-interaction.png").is_file()
    effects = table(html, "effects")  # the first one: on test accuracy, in percentage points
    conv = row_of(effects, "conv")
    assert conv[0] == "dilated vs standard" and conv[2] == "+2.00"
    half = sps.t.ppf(0.975, 2) * 0.01 / math.sqrt(3) * 100
    assert conv[3] == f"[{2 - half:+.2f}, {2 + half:+.2f}]"
    assert row_of(effects, "downsample")[2] == "-2.00"
    assert "Against the baseline: synth-plain" in html
    assert '<td class="name">T-shirt/top</td>' in table(html, "gaps")  # class names, not indices
    assert "synth-plain-fashion-mnist-s2-synthetic" in table(html, "failed")
