"""Every Python example on the analysis pages (``docs/analyses/*.md``) runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGES = sorted((Path(__file__).resolve().parent.parent / "docs" / "analyses").glob("*.md"))


def python_blocks(path: Path) -> list[str]:
    """The bodies of the fenced ``python`` code blocks of ``path``, in order."""
    text = path.read_text()
    return [m[1] for m in re.finditer(r"^```python\n(.*?)^```\s*$", text, re.S | re.M)]


def test_every_analysis_page_has_an_example():
    assert PAGES, "docs/analyses/ has no pages"
    for page in PAGES:
        if page.name != "index.md":
            assert python_blocks(page), f"{page.name} has no python example"


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "index.md"], ids=lambda p: p.stem)
def test_example_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace: dict = {"__name__": "__docs_example__"}
    for block in python_blocks(page):
        exec(compile(block, str(page), "exec"), namespace)
