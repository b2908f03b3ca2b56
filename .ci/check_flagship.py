"""CI: the flagship's report exists and its answer box answers every factor and recommends.

Usage: python .ci/check_flagship.py OUT   (OUT: the --out of a `make bench` run)
"""

import html
import re
import sys
from pathlib import Path

out = Path(sys.argv[1])
page = (out / "report.html").read_text()
box = re.search(r'<section class="answer".*?</section>', page, re.S)
assert box, "report.html has no answer box"
text = html.unescape(re.sub(r"<[^>]+>", " ", box.group(0)))
items = re.findall(r"<li[^>]*>(.*?)</li>", box.group(0), re.S)
lines = [html.unescape(re.sub(r"<[^>]+>", "", li)).strip() for li in items]
verdict = re.compile(r"(is more accurate|is less accurate|are equivalent|is undecided)")
for factor in ("conv", "downsample"):
    found = [line for line in lines if line.startswith(f"{factor}:") and verdict.search(line)]
    assert found, f"the answer box has no verdict for the factor {factor!r}: {lines}"
assert "Recommendation." in text, "the answer box has no recommendation"
print(f"flagship report: {len(lines)} answer lines, every factor answered, recommendation present")
for line in lines:
    print("  -", line)
print("  ", re.sub(r"\s+", " ", text[text.index("Recommendation."):]).strip()[:600])
