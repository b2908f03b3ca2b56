"""Open the rendered report in headless Chromium, from disk, with the network blocked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.report import render_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)")]


@pytest.fixture(scope="module")
def report(digits_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "run"
    shutil.copytree(digits_run, out)
    return render_report(out)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, report: Path, width: int, height: int):
    """The report at ``width`` x ``height``; returns the page, its errors and its outside requests."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def route(r):
        # The report may load itself (file://) and its data: URIs, nothing else.
        if r.request.url.startswith(("file://", "data:")):
            r.continue_()
        else:
            requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(report.as_uri(), wait_until="load")
    return page, errors, requests


def test_report_opens_offline_with_every_image_decoded(browser, report, tmp_path):
    page, errors, requests = open_page(browser, report, 1280, 900)
    images = page.evaluate(
        "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight, i.width])")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert len(images) == len(list((report.parent / "figures").glob("*.png")))
    for alt, complete, width, height, shown in images:
        assert complete and width > 0 and height > 0, f"image not decoded: {alt}"
        assert shown <= width / 2 + 1, f"{alt} is not shown at half its pixels (HiDPI)"
    assert errors == []
    assert requests == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_answer_is_on_the_first_screen(browser, report):
    page, _, _ = open_page(browser, report, 1366, 768)
    box = page.evaluate("(() => { const r = document.querySelector('section.answer').getBoundingClientRect();"
                        " return [r.top, r.bottom, document.querySelector('section.answer li').innerText]; })()")
    top, bottom, first_line = box
    assert 0 <= top and bottom <= 768, f"the verdict box ends at {bottom} px"
    assert first_line.strip()


def test_every_contents_link_lands_on_its_section(browser, report):
    page, _, _ = open_page(browser, report, 1366, 768)
    targets = page.evaluate("Array.from(document.querySelectorAll('nav.toc a')).map(a => a.getAttribute('href'))")
    assert len(targets) >= 8
    for href in targets:
        page.evaluate("window.scrollTo(0, 0)")
        page.click(f"nav.toc a[href='{href}']")
        landed = page.evaluate(f"""(() => {{
            const el = document.querySelector({href!r});
            const bottom = window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 1;
            return el === null ? null : [el.tagName, el.getBoundingClientRect().top, bottom,
                                         window.location.hash]; }})()""")
        assert landed is not None, f"{href} names no element"
        tag, top, at_bottom, hash_ = landed
        assert tag == "SECTION" and hash_ == href
        assert abs(top) <= 2 or (at_bottom and top > 0), f"{href} scrolled to {top} px"


def test_nothing_overflows_a_phone_screen(browser, report):
    page, errors, _ = open_page(browser, report, 420, 860)
    widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth]")
    assert max(widths) <= 420
    # Wide tables scroll inside their own box, and their verdict column stays reachable there.
    boxes = page.evaluate("Array.from(document.querySelectorAll('.scroll')).map(d => [d.scrollWidth, "
                          "d.clientWidth, getComputedStyle(d).overflowX])")
    assert any(scroll > client for scroll, client, _ in boxes)  # the comparison tables are wider than 420 px
    assert all(overflow == "auto" for _, _, overflow in boxes)
    assert errors == []


def test_print_stylesheet_shows_what_scrolls_on_screen(browser, report):
    page, _, _ = open_page(browser, report, 1366, 768)
    page.emulate_media(media="print")
    assert page.evaluate("getComputedStyle(document.querySelector('nav.toc')).display") == "none"
    assert page.evaluate("getComputedStyle(document.querySelector('.scroll')).overflowX") == "visible"


def on_first_screen(page, selector: str) -> bool:
    """Whether the element ``selector`` names lies wholly within the viewport before any scrolling
    (for checks such as: the recommendation is on the first screen)."""
    return page.evaluate("""(selector) => {
        window.scrollTo(0, 0);
        const el = document.querySelector(selector);
        if (el === null) return false;
        const r = el.getBoundingClientRect();
        return r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth;
    }""", selector)


def pinned_column_after_scrolling(page, table_css: str) -> dict:
    """Scroll the box holding ``table.<table_css>`` to its right end; what its rows' first cells show then."""
    return page.evaluate("""(css) => {
        const table = document.querySelector('table.' + css);
        const box = table.closest('.scroll');
        box.scrollIntoView();
        box.scrollLeft = box.scrollWidth;
        const frame = box.getBoundingClientRect();
        const cells = Array.from(table.querySelectorAll('tbody tr')).map(tr => tr.cells[0]);
        return {
            scrolled: box.scrollLeft, overflow: box.scrollWidth - box.clientWidth,
            header: table.querySelector('thead tr').cells[0].innerText.trim(),
            headerPosition: getComputedStyle(table.querySelector('thead tr').cells[0]).position,
            cells: cells.map(td => {
                const r = td.getBoundingClientRect();
                const style = getComputedStyle(td);
                const top = document.elementFromPoint(r.left + 4, r.top + r.height / 2);
                return {text: td.innerText.trim(), position: style.position, left: style.left,
                        offset: r.left - frame.left, right: r.right, onTop: td === top || td.contains(top)};
            }),
        };
    }""", table_css)


def test_the_network_name_is_the_pinned_column_on_a_phone(browser, report):
    page, errors, _ = open_page(browser, report, 420, 860)
    pinned = pinned_column_after_scrolling(page, "leaderboard")
    assert pinned["overflow"] > 100 and pinned["scrolled"] > 100  # the table did scroll sideways
    assert pinned["header"] == "architecture" and pinned["headerPosition"] == "sticky"
    assert sorted(c["text"] for c in pinned["cells"]) == ["dilated", "lenet"]  # the names, not the ranks
    for cell in pinned["cells"]:
        assert cell["position"] == "sticky" and cell["left"] == "0px", cell
        assert abs(cell["offset"]) <= 1 and cell["right"] <= 420, cell  # still at the box's left edge, on screen
        assert cell["onTop"], f"{cell['text']} is hidden under the scrolled cells"
    assert errors == []


@pytest.fixture(scope="module")
def ablation_report(tmp_path_factory) -> Path:
    """A flagship-like grid: six factorial networks x 3 seeds, so the answer box is as long as real."""
    from synthetic_store import registered, write_store

    convs, downs = ("std", "dil"), ("max", "avg", "stride")
    specs = {f"b-{c}-{d}": {"conv": c, "downsample": d} for c in convs for d in downs}
    accuracy = {(a, s): 0.988 + 0.0007 * i + 0.0004 * s for i, a in enumerate(specs) for s in range(3)}
    seconds = {(a, s): 40.0 * (1.35 if "dil" in a else 1.0) + s for a in specs for s in range(3)}
    out = tmp_path_factory.mktemp("ablation") / "run"
    with registered(specs):
        write_store(out, accuracy, [0, 1, 2], epochs=5, factors=specs, dataset="mnist", epoch_seconds=seconds)
        return render_report(out)


@pytest.mark.parametrize("width, height", [(420, 900), (1280, 800)])
def test_the_recommendation_is_on_the_first_screen(browser, ablation_report, width, height):
    page, errors, _ = open_page(browser, ablation_report, width, height)
    text = page.inner_text(".answer .recommendation")
    assert text.startswith("Recommendation. Use b-") or text.startswith("Recommendation. No recommendation yet")
    assert on_first_screen(page, ".answer .recommendation"), f"not on the first screen at {width}x{height}"
    assert errors == []
