"""No path of the machine in the report: where a stored text names a file, the report shows a
placeholder (``<out>``, ``<data-dir>``), a path relative to the project, or ``~``.

A report is shared; the folder layout of the machine that made it is nobody's business and
reproduces nothing elsewhere.  The dataset is named by its checksum instead.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
OUT = "<out>"
DATA_DIR = "<data-dir>"
# Two or more path segments after a slash that does not continue a word, URL, or base64 run.
ABSOLUTE = re.compile(r"(?<![\w./~:;+=<>-])/[\w.+@-]+(?:/[\w.+@-]*)+")
# How a placeholder is written in the reproduce command: a shell variable the reader sets.
SHELL = {OUT: '"$OUT"', DATA_DIR: '"$DATA_DIR"'}


class Scrubber:
    """Replaces the machine's paths in a text: the known ones by name, any other by its last part."""

    def __init__(self, known: dict[str, str]) -> None:
        # Longest first: an out folder inside $HOME is <out>, not ~/....
        self.known = sorted(((p.rstrip("/"), name) for p, name in known.items() if len(p.rstrip("/")) > 1),
                            key=lambda item: -len(item[0]))

    def __call__(self, text: str) -> str:
        for path, name in self.known:
            text = re.sub(re.escape(path) + r"(?![\w.+@-])", lambda _m, n=name: n, text)
        text = text.replace(f"{PROJECT.as_posix()}/", "")  # the project's own files: relative to it
        return ABSOLUTE.sub(lambda m: f"<…/{m.group(0).rstrip('/').rsplit('/', 1)[-1]}>", text)


def scrubber(out: Path, invocation: dict[str, Any]) -> Scrubber:
    """The paths a grid's stored texts can hold: its out folder (now and when it ran), its data
    folders, the project, and the home folder."""
    known = {str(out.resolve()): OUT, str(out.absolute()): OUT}
    words = _words(invocation.get("reproduce", ""))
    for flag, value in zip(words, words[1:]):
        if flag == "--out" and os.path.isabs(value):
            known[value] = OUT
        if flag == "--data-dir" and os.path.isabs(value):
            known[value] = DATA_DIR
    for info in (invocation.get("datasets") or {}).values():
        source = str(info.get("source") or "")
        if os.path.isabs(source.split(": ", 1)[0]):
            known[source.split(": ", 1)[0]] = DATA_DIR
        folder = (info.get("folder") or {}).get("path")
        if folder:
            known[str(folder)] = DATA_DIR
    home = os.path.expanduser("~")
    if home not in ("", "/"):
        known.setdefault(home, "~")
    return Scrubber(known)


def shown_source(info: dict[str, Any], scrub: Scrubber) -> str:
    """Where a dataset came from, as the report says it: nothing when that was only a folder."""
    source = scrub(str(info.get("source") or ""))
    return "" if source in (DATA_DIR, OUT) else source


def reproduce_words(command: str, scrub: Scrubber) -> str:
    """``command`` as a shell line with each path placeholder a variable to set (``"$OUT"``)."""
    split = re.compile("(" + "|".join(re.escape(p) for p in SHELL) + ")")
    parts = []
    for word in _words(command):
        shown, home = scrub(word), ""
        if shown.startswith("~/"):  # unquoted, so that the shell expands it
            home, shown = "~/", shown[2:]
        pieces = [SHELL.get(piece) or shlex.quote(piece) for piece in split.split(shown) if piece]
        parts.append(home + "".join(pieces) if pieces else shlex.quote(shown))
    return " ".join(parts)


def placeholders_in(command: str) -> list[str]:
    """The variables a shown reproduce command asks the reader to set."""
    return [shell.strip('"$') for shell in SHELL.values() if shell in command]


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # a hand-edited config.json: no words rather than a crash
        return command.split()
