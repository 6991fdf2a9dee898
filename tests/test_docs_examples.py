"""Every code example on the documentation pages (``docs/**/*.md``) runs as written.

The ```` ```python ```` blocks of a page run in order in one namespace, and its ```` ```bash ````
blocks in a shell, all in a fresh working directory (so examples that write files write them
there, and a later block can read what an earlier one wrote). In the shell, ``libertem-gpu`` and
``python3`` are this interpreter's. A block that cannot run standalone (it needs a GPU, a cluster
or a file that is not here) is preceded by a comment naming the reason::

    <!-- skip-test: needs a dask scheduler -->

A page whose examples continue from context the prose gives (``ctx`` and ``ds`` already made)
sets that context up in a hidden comment, which runs, in page order, as a ``python`` block::

    <!-- test-setup
    ctx = Context("inline")
    -->

Blocks without a language or in ``console`` (transcripts, code maps, command synopses) are not
examples to run. Keep skipped blocks few: ``test_skipped_blocks_are_few`` counts them.
"""

from __future__ import annotations

import contextvars
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "screenshots" not in p.parts)

#: A fenced block, with an optional ``<!-- skip-test: reason -->`` comment just before it, or
#: a hidden ``<!-- test-setup ... -->`` python block.
BLOCK = re.compile(
    r"(?:^<!--\s*skip-test:\s*(?P<skip>.*?)\s*-->\s*\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```\s*$"
    r"|^<!--\s*test-(?P<setup>setup)\s*\n(?P<setup_body>.*?)^-->\s*$",
    re.S | re.M,
)
RUNNABLE = ("python", "bash")
#: At most this many runnable blocks may be skipped over the whole site.
MAX_SKIPPED = 10


def code_blocks(path: Path) -> list[tuple[str, str, str | None]]:
    """``(language, body, skip reason or None)`` of each runnable fenced block of ``path``; the
    body is preceded by blank lines so that a traceback's line numbers are the page's."""
    text = path.read_text()
    blocks = []
    for m in BLOCK.finditer(text):
        lang, body = ("python", "setup_body") if m["setup"] else (m["lang"], "body")
        if lang in RUNNABLE:
            pad = "\n" * text.count("\n", 0, m.start(body))
            blocks.append((lang, pad + m[body], m["skip"]))
    return blocks


def python_blocks(path: Path) -> list[str]:
    """The bodies of the fenced ``python`` code blocks of ``path``, in order."""
    return [body for lang, body, _ in code_blocks(path) if lang == "python"]


def _page_id(page: Path) -> str:
    return page.relative_to(DOCS).with_suffix("").as_posix()


PAGES_WITH_CODE = [p for p in PAGES if code_blocks(p)]


def test_every_analysis_page_has_an_example():
    analyses = [p for p in PAGES if p.parent.name == "analyses" and p.name != "index.md"]
    assert analyses, "docs/analyses/ has no pages"
    for page in analyses:
        assert python_blocks(page), f"{page.name} has no python example"


def test_skipped_blocks_are_few_and_say_why():
    skipped = [(p, reason) for p in PAGES for _, _, reason in code_blocks(p) if reason is not None]
    for page, reason in skipped:
        assert reason, f"{_page_id(page)}: a skip-test comment must give its reason"
    assert len(skipped) <= MAX_SKIPPED, [f"{_page_id(p)}: {r}" for p, r in skipped]


def _shell_env(tmp_path: Path) -> dict[str, str]:
    """PATH with ``libertem-gpu`` and ``python3`` running this interpreter and this checkout."""
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    for name, args in (("libertem-gpu", "-m libertem_gpu"), ("python3", "")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {args} "$@"\n')
        shim.chmod(0o755)
    root = str(DOCS.parent)
    pythonpath = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": root if not pythonpath else f"{root}{os.pathsep}{pythonpath}",
    }


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_page_id)
def test_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs_example__"}
    # A page is a session of its own: settings it changes without `with` stay in this copy.
    session = contextvars.copy_context()
    env = None
    for lang, body, skip in code_blocks(page):
        if skip is not None:
            continue
        if lang == "python":
            session.run(exec, compile(body, str(page), "exec"), namespace)
        else:
            env = env or _shell_env(tmp_path)
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, f"{_page_id(page)}: {body}\n{done.stdout}\n{done.stderr}"
