"""The command that reproduces a grid's report, as the report prints it and the answer's
recommendation extends it (more seeds, more epochs)."""

from __future__ import annotations

import shlex

from . import paths


def reproduce(command: str, baseline: str | None, margin: float, target: float | None,
              scrub: paths.Scrubber | None = None) -> str:
    """The stored reproduce command, with the options that shaped this report as they were used,
    and its paths as variables to set (``"$OUT"``) when ``scrub`` is given."""
    if not command:
        return ""
    words, shaped = shlex.split(command), ("--baseline", "--margin", "--target")
    kept = [w for i, w in enumerate(words) if w not in shaped and (i == 0 or words[i - 1] not in shaped)]
    if baseline:
        kept += ["--baseline", baseline]
    kept += ["--margin", f"{margin * 100:g}"]
    if target is not None:
        kept += ["--target", repr(target)]
    return paths.reproduce_words(shlex.join(kept), scrub) if scrub is not None else shlex.join(kept)
