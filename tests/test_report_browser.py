"""Open the rendered report in headless Chromium, from disk, with the network blocked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.report import render_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)")
def test_report_opens_offline_with_every_image_decoded(digits_run, tmp_path):
    from playwright.sync_api import sync_playwright

    out = tmp_path / "run"
    shutil.copytree(digits_run, out)
    report = render_report(out)
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
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
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert len(images) == len(list((out / "figures").glob("*.png")))
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, f"image not decoded: {alt}"
    assert errors == []
    assert requests == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
