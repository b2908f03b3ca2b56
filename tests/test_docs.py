"""What the README and docs/ promise, checked against the code."""

from __future__ import annotations

import re

import pytest
import torch

from architectures import get_spec
from bench import schema, user_networks
from conftest import ROOT, run_cli

README = (ROOT / "README.md").read_text()


def code_block_after(heading: str, text: str = README) -> str:
    """The first ```python block after ``heading``."""
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def readme_network(tmp_path):
    """The README's "Bring your own network" snippet, as the file it says to write."""
    path = tmp_path / "tinynet.py"
    path.write_text(code_block_after("## Bring your own network"))
    yield path
    user_networks.use([])  # the CLI keeps what it loaded in this process


def test_the_readme_network_builds_lists_and_trains(readme_network, tmp_path, capsys):
    assert run_cli("list", "--archs-from", str(readme_network)) == 0
    assert "tinynet" in capsys.readouterr().out
    spec = get_spec("tinynet")
    for channels, size in ((1, 28), (3, 32)):
        model = spec.build(in_channels=channels, num_classes=10, image_size=size)
        assert model(torch.zeros(2, channels, size, size)).shape == (2, 10)
    assert run_cli("--archs-from", str(readme_network), "--archs", "tinynet", "--dataset", "digits",
                   "--seeds", "1", "--epochs", "1", "--workers", "1", "--no-report", "--out", str(tmp_path)) == 0


def test_the_column_tables_in_the_docs_are_the_schemas():
    doc = (ROOT / "docs" / "output-format.md").read_text()
    for table in schema.TABLES:
        assert schema.markdown(table) in doc, f"docs/output-format.md is stale for {table.file}: " \
                                              "paste `python -m bench.schema`"


def test_every_link_to_docs_resolves():
    for text_file in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(((?:docs/)?[\w-]+\.md)\)", text_file.read_text()):
            base = ROOT if target.startswith("docs/") else text_file.parent
            assert (base / target).is_file(), f"{text_file.name} links to missing {target}"


def test_the_readme_is_for_users():
    assert len(README.splitlines()) <= 220
    assert "this session" not in README.lower()
