"""The report's figures read as they claim: distinct styles, labels apart, honest axes, no key on data."""

from __future__ import annotations

import itertools
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from bench.report import figures

ARCHS = [f"ablate-{c}-{d}" for c in ("dil", "std") for d in ("avg", "max", "stride")]


@pytest.fixture
def drawn(monkeypatch):
    """Figures drawn but not saved: the list of each figure as it would have been written."""
    kept = []

    def keep(fig, path):
        fig.canvas.draw()
        kept.append(fig)
        return path

    monkeypatch.setattr(figures, "save", keep)
    yield kept
    for fig in kept:
        matplotlib.pyplot.close(fig)


def overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_every_network_of_a_grid_gets_its_own_colour_marker_and_line():
    styles = figures.arch_styles([f"net{i}" for i in range(56)])
    assert len({(s.color, s.marker, s.linestyle) for s in styles.values()}) == 56
    first = [styles[f"net{i}"] for i in range(6)]
    assert len({s.color for s in first}) == len({s.marker for s in first}) == 6
    assert {matplotlib.colors.to_hex(s.color).upper() for s in first} <= set(figures.OKABE_ITO)
    assert figures.arch_styles(ARCHS[:3]) == {a: figures.arch_styles(ARCHS)[a] for a in ARCHS[:3]}  # by grid place


@pytest.mark.parametrize("spread", [0.0, 0.02, 0.3])
def test_point_labels_never_overlap_even_for_coincident_points(drawn, tmp_path, spread):
    rng = np.random.default_rng(0)
    board = pd.DataFrame({
        "arch": ARCHS, "mean": 0.975 + rng.normal(0, spread / 100 + 1e-9, 6),
        "ci_low": 0.97, "ci_high": 0.985,
        "train_seconds": 10 + rng.normal(0, spread * 10 + 1e-9, 6), "params": 334_154.0,
        "flops_per_image": 6.4e6 + np.array([0, 0, 4.7e6, 0, 0, 4.7e6]),
    })
    board["ci_low"] = board["mean"] - 0.003
    board["ci_high"] = board["mean"] + 0.003
    figures.tradeoffs(board, figures.arch_styles(ARCHS), tmp_path / "t.png")
    (fig,) = drawn
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.texts if t.get_text() in ARCHS]
        assert sorted(t.get_text() for t in labels) == sorted(ARCHS)  # every network labelled
        boxes = [matplotlib.text.Text.get_window_extent(t, renderer) for t in labels]  # the text, not its leader
        for (a, ta), (b, tb) in itertools.combinations(zip(boxes, labels), 2):
            assert not overlap(a, b), f"{ta.get_text()} overlaps {tb.get_text()}"


def test_labels_are_placed_the_same_way_every_time(drawn, tmp_path):
    board = pd.DataFrame({"arch": ARCHS, "mean": 0.975, "ci_low": 0.97, "ci_high": 0.98, "train_seconds": 10.0,
                          "params": 1e5, "flops_per_image": 1e6})
    for _ in range(2):
        figures.tradeoffs(board, figures.arch_styles(ARCHS), tmp_path / "t.png")
    first, second = ([t.get_position() for t in f.axes[0].texts] for f in drawn)
    assert first == second


def confusion(errors: dict[tuple[int, int], int], right: int = 1000, k: int = 3) -> pd.DataFrame:
    rows = [{"arch": "a", "true": t, "predicted": t, "count": right} for t in range(k)]
    rows += [{"arch": "a", "true": t, "predicted": p, "count": n} for (t, p), n in errors.items()]
    return pd.DataFrame(rows)


def test_confusion_mistakes_differ_in_colour_and_the_diagonal_does_not_swamp_them(drawn, tmp_path):
    table = confusion({(0, 1): 1, (0, 2): 5, (1, 2): 50})
    scale = figures.error_scale(table, ["a"], 3)
    assert scale == pytest.approx((100 / 1006, 100 * 50 / 1050))
    figures.confusion_matrix(table, "a", ["x", "y", "z"], scale, tmp_path / "c.png")
    (fig,) = drawn
    ax = fig.axes[0]
    mistakes = ax.images[-1]
    colours = {cell: tuple(mistakes.cmap(mistakes.norm(mistakes.get_array()[cell]))) for cell in
               ((0, 1), (0, 2), (1, 2))}
    assert len(set(colours.values())) == 3  # one error in a thousand is not the colour of fifty
    assert np.ma.getmaskarray(mistakes.get_array())[[0, 1, 2], [0, 1, 2]].all()  # the diagonal is not on this scale
    shown = {t.get_text() for t in ax.texts}
    assert {"1000", "1", "5", "50"} <= shown and "0" not in shown  # no image: a blank cell
    assert isinstance(mistakes.norm, matplotlib.colors.LogNorm)


def test_a_network_without_mistakes_draws_and_says_so(drawn, tmp_path):
    table = confusion({})
    assert figures.error_scale(table, ["a"], 3) is None
    figures.confusion_matrix(table, "a", ["x", "y", "z"], None, tmp_path / "c.png")
    assert drawn[0].axes[0].get_title(loc="left").endswith("no mistakes")


def test_confusion_figure_is_shown_at_its_size_with_counts_at_least_9_px(drawn, tmp_path, monkeypatch):
    k = 10
    table = confusion({(0, 1): 3, (4, 9): 1234}, k=k)
    figures.confusion_matrix(table, "a", [str(i) for i in range(k)], (0.1, 1.0), tmp_path / "kept.png")
    sizes = {t.get_fontsize() for t in drawn[0].axes[0].texts}
    assert min(sizes) / 72 * figures.DPI / figures.SCALE >= 9  # points -> CSS pixels at the size shown
    monkeypatch.undo()  # now saved for real
    png = figures.confusion_matrix(table, "a", [str(i) for i in range(k)], (0.1, 1.0), tmp_path / "c.png")
    width = int.from_bytes(png.read_bytes()[16:20], "big") / figures.SCALE
    assert width <= (1124 - 18) / 2  # two per row in the report's column: not scaled down on a desktop


def test_per_class_errors_are_dots_on_an_axis_from_zero(drawn, tmp_path):
    acc = pd.DataFrame([[0.99, 0.97, 0.985], [0.995, 0.96, 0.98]], index=["a", "b"], columns=[0, 1, 2])
    figures.per_class(acc, ["a", "b"], ["x", "y", "z"], figures.arch_styles(["a", "b"]), tmp_path / "p.png")
    ax = drawn[0].axes[0]
    assert ax.get_xlim()[0] == 0
    assert not ax.patches  # no bars
    (a, b) = ax.lines[:2]
    assert a.get_xdata() == pytest.approx([1, 3, 1.5]) and a.get_marker() != b.get_marker()


def test_the_margin_key_sits_outside_the_data(drawn, tmp_path):
    frame = pd.DataFrame({"arch": ARCHS[:5], "diff": np.linspace(-0.01, 0.002, 5), "ci_low": -0.02,
                          "ci_high": 0.004})
    figures.forest(frame, figures.arch_styles(ARCHS), ARCHS[5], tmp_path / "f.png", margin=0.0025)
    rows = frame.assign(arch=[str(i) for i in range(5)], verdict=["worse", "undecided", "equivalent", "better",
                                                                  "undecided"])
    figures.class_differences(rows, "a", "b", 0.0025, tmp_path / "c.png")
    for fig in drawn:
        ax = fig.axes[0]
        legend = ax.get_legend()
        renderer = fig.canvas.get_renderer()
        assert any("margin" in t.get_text() for t in legend.get_texts())
        assert not overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer))


def test_time_to_target_names_its_dotted_line(drawn, tmp_path):
    times = pd.DataFrame({"arch": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
                          "seconds_to_target": [3.0, 4.0, 5.0, math.inf]})
    figures.time_to_target(times, ["a", "b"], 0.97, figures.arch_styles(["a", "b"]), tmp_path / "t.png")
    ax = drawn[0].axes[0]
    dotted = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert len(dotted) == 1
    assert any("never reached" in t.get_text() for t in ax.get_legend().get_texts())


def test_time_to_target_without_a_miss_draws_no_never_line(drawn, tmp_path):
    times = pd.DataFrame({"arch": ["a", "b"], "seed": [0, 0], "seconds_to_target": [3.0, 5.0]})
    figures.time_to_target(times, ["a", "b"], 0.97, figures.arch_styles(["a", "b"]), tmp_path / "t.png")
    ax = drawn[0].axes[0]
    assert not [line for line in ax.lines if line.get_linestyle() == ":"]
    assert not any("never" in t.get_text() for t in ax.get_legend().get_texts())
