"""The documentation site's configuration (mkdocs.yml) covers every page and every public name.

``mkdocs build --strict`` (CI, ``.ci/run``) checks links and docstrings; these checks run without
MkDocs installed, in the test command.
"""

from __future__ import annotations

import re
from pathlib import Path

import libertem_gpu

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_every_page_is_in_the_navigation():
    config = (ROOT / "mkdocs.yml").read_text()
    nav = re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?(\S+\.md)\s*$", config, re.M)
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert len(nav) == len(set(nav)), "a page is listed twice in mkdocs.yml's nav"
    assert set(nav) == pages, {"not in nav": pages - set(nav), "missing files": set(nav) - pages}


def test_the_api_reference_documents_every_public_name():
    reference = (DOCS / "reference.md").read_text()
    documented = set(re.findall(r"^::: libertem_gpu(?:\.\w+)*\.(\w+)\s*$", reference, re.M))
    public = {name for name in libertem_gpu.__all__ if name != "__version__"}
    assert public <= documented, f"not in docs/reference.md: {sorted(public - documented)}"
    for name in public:  # each directive names the module the object comes from
        module = libertem_gpu._EXPORTS[name]
        target = module if module.endswith("." + name) else f"{module}.{name}"
        assert f"::: {target}\n" in reference, f"docs/reference.md: expected '::: {target}'"
