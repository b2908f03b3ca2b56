"""The rendered report, from a small real digits run and from synthetic stored tables."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.datasets.idx import read_idx
from bench.report import render_report
from bench.storage import load_record
from idx_files import write_fake_mnist
from synthetic_store import factorial_specs, registered, write_store

from conftest import ROOT, run_cli, run_cli_process

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
    return re.findall(r'class="data row\d+ col0"\s*>([^<]+)<', table(html, "leaderboard"))


def row_of(table_html: str, arch: str) -> list[str]:
    match = re.search(rf'<tr><td class="name">{re.escape(arch)}</td>(.*?)</tr>', table_html, re.S)
    assert match, f"no row for {arch}"
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)]


def test_html_is_self_contained_and_embeds_every_png(rendered):
    out, html = rendered
    pngs = sorted((out / "figures").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"digits-accuracy.png", "digits-curves.png", "digits-confusion-lenet.png", "digits-confusion-dilated.png",
            "digits-per-class.png",
            "digits-tradeoffs.png", "digits-epoch-time.png", "digits-feature-maps.png", "digits-vs-lenet.png",
            "digits-samples.png", "digits-misclassified-lenet.png", "digits-misclassified-dilated.png",
            "digits-time-to-target.png", "digits-confusion-dilated-vs-lenet.png",
            "digits-classes-dilated-vs-lenet.png", "digits-disagree-dilated-vs-lenet.png",
            "digits-corruptions.png", "digits-shift-consistency.png", "digits-shift-size.png",
            "digits-reliability.png", "digits-tested-images.png"} <= names
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert base64.b64encode(png.read_bytes()).decode() in html, png.name
    assert html.count('src="data:image/png;base64,') == len(pngs)
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from a network
    sections = re.findall(r'<section id="([a-z]+)-digits">\s*<h2>(\d+)\. ([^<]+)</h2>', html)
    assert [(int(n), title) for _, n, title in sections] == list(enumerate([
        "Leaderboard", "Pairwise comparisons", "Robustness", "Time to target", "Learning curves", "Where the networks err",
        "Cost", "What the networks see and get wrong", "Failed or diverged runs"], start=1))  # numbered in order
    toc = re.search(r'<nav class="toc".*?</nav>', html, re.S).group(0)
    assert re.findall(r'href="#([a-z]+-digits)"', toc) == [f"{key}-digits" for key, _, _ in sections]
    assert html.count("How to read this.") >= 7  # one per section (failed runs: only when any)
    assert "python -m bench --archs lenet,dilated --dataset digits" in html  # the reproduce command
    for png in pngs:  # every figure links to its PNG, shown at half its pixel width (2x for HiDPI)
        assert f'href="figures/{png.name}"' in html
    for csv in ("runs.csv", "epochs.csv", "confusion.csv", "config.json"):
        assert f'href="{csv}"' in html


def bits(out, runs: pd.DataFrame, arch: str) -> np.ndarray:
    """seed x image matrix of which test images ``arch``'s runs got right, from their records."""
    rows = runs[runs["arch"] == arch].sort_values("seed")
    return np.stack([load_record(out, r).test_correct for r in rows["run_id"]]).astype(float)


def two_source_se(D: np.ndarray) -> tuple[float, float]:
    """SE and Welch-Satterthwaite df of a seed x image matrix's mean, written out by hand."""
    n, m = D.shape
    a, b = D.mean(1).var(ddof=1) / n, D.mean(0).var(ddof=1) / m
    return math.sqrt(a + b), (a + b) ** 2 / (a * a / (n - 1) + b * b / (m - 1))


def test_leaderboard_order_and_numbers_match_the_stored_runs(rendered):
    out, html = rendered
    runs = pd.read_csv(out / "runs.csv")
    means = runs.groupby("arch")["test_acc"].mean().sort_values(ascending=False)
    assert leaderboard_archs(html) == list(means.index)
    board = table(html, "leaderboard")
    for arch, acc in runs.groupby("arch")["test_acc"]:
        matrix = bits(out, runs, arch)
        mean = matrix.mean()
        assert mean == pytest.approx(acc.mean())  # the records' bits agree with runs.csv
        se, df = two_source_se(matrix)
        half = sps.t.ppf(0.975, df) * se / (mean * (1 - mean))  # on the logit scale
        low, high = (1 / (1 + math.exp(-(math.log(mean / (1 - mean)) + k * half))) for k in (-1, 1))
        (row,) = [r for r in board.split("<tr")[1:] if f">{arch}<" in r]  # this arch's own row
        assert f">{mean * 100:.2f}<" in row
        assert f">{acc.std(ddof=1) * 100:.2f}<" in row
        assert f"[{low * 100:.2f}, {high * 100:.2f}]" in row
        assert 0 <= low < mean < high <= 1


def test_paired_difference_in_html_equals_one_computed_from_the_records(rendered):
    out, html = rendered
    runs = pd.read_csv(out / "runs.csv")
    D = bits(out, runs, "dilated") - bits(out, runs, "lenet")  # lenet: the reference (first of the grid)
    diff = D.mean()
    se, df = two_source_se(D)
    half = sps.t.ppf(0.975, df) * se
    reference = re.search(r"<h3>Against the reference: lenet</h3>(.*?)</table>", html, re.S).group(1)
    cells = row_of(reference, "dilated")
    assert cells[1] == f"{diff * 100:+.2f}"
    assert cells[2] == f"[{(diff - half) * 100:+.2f}, {(diff + half) * 100:+.2f}]"
    eq_half = sps.t.ppf(0.95, df) * se  # the equivalence test's 90% interval
    assert cells[3] == f"[{(diff - eq_half) * 100:+.2f}, {(diff + eq_half) * 100:+.2f}]"
    wins = int((D.mean(1) > 0).sum())
    assert cells[4] == f"{wins} of 2"
    p = 2 * sps.t.sf(abs(diff) / se, df)
    assert cells[5] == ("< 0.001" if p < 0.001 else f"{p:.3f}")  # one comparison: Holm leaves it
    assert cells[0] in ("better", "worse", "equivalent within ±0.25 pp") or cells[0].startswith("undecided")


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


def test_failed_runs_are_listed_and_one_seed_raises_the_alarm(rendered, tmp_path, capsys):
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
    answer = re.search(r'<section class="answer".*?</section>', html, re.S).group(0)
    assert "Only 1 seed per architecture: no interval is trustworthy" in answer  # a red banner, first screen
    assert "used the small embedded “digits” dataset because MNIST was not available" in answer
    # One seed with per-image results: only test-image noise is left, and the report says so.
    assert "test images only (one seed)" in html or "McNemar" in html
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    assert 'class="banner warn">⚠ MNIST was not available' in html
    assert "no MNIST files under the data directory" in html


def test_cost_section_says_when_seed_groups_make_times_incomparable(rendered, tmp_path):
    out, html = tmp_path / "run", rendered[1]
    shutil.copytree(rendered[0], out)
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
    conv_table, down_table = re.findall(r'<table class="data effects">.*?</table>', html, re.S)
    conv = row_of(conv_table, "dilated")  # level vs standard, on test accuracy in pp
    assert conv[1] == "+2.00"
    half = sps.t.ppf(0.975, 2) * 0.01 / math.sqrt(3) * 100
    assert conv[2] == f"[{2 - half:+.2f}, {2 + half:+.2f}]"
    assert row_of(down_table, "avg")[1] == "-2.00"
    answer = re.search(r'<section class="answer".*?</section>', html, re.S).group(0)
    assert "conv: dilated vs standard" in answer and "downsample: avg" in answer  # every factor answered
    assert "Against the reference: synth-plain" in html
    assert '<td class="name">T-shirt/top</td>' in table(html, "gaps")  # class names, not indices
    assert "synth-plain-fashion-mnist-s2-synthetic" in table(html, "failed")


def machine_text(html: str) -> str:
    """The report's text and markup without its embedded images (base64 could spell anything)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)


def test_report_names_no_path_of_the_machine_only_the_dataset_and_its_checksum(tmp_path, monkeypatch):
    home = tmp_path / "home"
    data, out = home / "data", home / "grids" / "fake"
    write_fake_mnist(data / "mnist", n_train=300, n_test=100)
    monkeypatch.setenv("HOME", str(home))
    assert run_cli("--archs", "lenet", "--dataset", "mnist", "--data-dir", str(data), "--seeds", "1",
                   "--epochs", "1", "--workers", "1", "--out", str(out), "--no-report") == 0
    runs = pd.read_csv(out / "runs.csv")  # a failure whose message names files, as real ones do
    runs["error"] = runs["error"].astype(object)
    runs.loc[0, ["status", "error"]] = ["failed", f"cannot read {out / 'runs' / 'x' / 'checkpoint.pt'}"]
    runs.to_csv(out / "runs.csv", index=False)
    assert run_cli("report", str(out)) == 0
    text = machine_text((out / "report.html").read_text())
    for path in (out, data, home, tmp_path, ROOT):
        assert str(path.resolve()) not in text, path
    assert "cannot read &lt;out&gt;/runs/x/checkpoint.pt" in text  # the error, relative to the report's folder
    assert "--out &#34;$OUT&#34;" in text and "--data-dir &#34;$DATA_DIR&#34;" in text
    info = json.loads((out / "config.json").read_text())["datasets"]["mnist"]
    assert info["source"] == str(data / "mnist")  # config.json keeps where it was read (verify uses it)
    digest = hashlib.sha256("\n".join(str(i) for i in range(10)).encode())
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        array = read_idx(next((data / "mnist").glob(name + "*")), ndim=3 if "images" in name else 1)
        array = array[:, None] if array.ndim == 3 else array.astype(np.int64)  # as trained: (N, 1, H, W)
        key = ("train_" if name.startswith("train") else "test_") + ("images" if "images" in name else "labels")
        digest.update(f"|{key}{array.shape}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    assert info["sha256"] == digest.hexdigest()
    assert f'<code class="checksum">{digest.hexdigest()}</code>' in text
