"""Our larger check of LiberTEM-style usage (issue 17: at least 90% passing).

Each case of :mod:`tests.compat.usage_cases` is a script written for LiberTEM 0.16, run here
after replacing ``libertem`` with ``libertem_gpu.compat`` in it, nothing else. Cases that meet a
difference still open are strict xfails with the reason, so that they flip when it closes.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from tests.compat.usage_cases import CASES, PREAMBLE

OPEN: dict[str, str] = {}


def _port(code: str) -> str:
    """The one change a user makes: the package name in the imports."""
    return re.sub(r"\blibertem\b", "libertem_gpu.compat", code)


def _params():
    for name in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=OPEN[name])] if name in OPEN else []
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", list(_params()))
def test_usage(name: str):
    script = _port(textwrap.dedent(PREAMBLE) + textwrap.dedent(CASES[name]))
    namespace: dict = {"__name__": f"usage_{name}"}
    try:
        exec(compile(script, f"<usage case {name}>", "exec"), namespace)
    finally:
        ctx = namespace.get("ctx")
        if ctx is not None:
            ctx.close()


def test_most_usage_passes():
    """The share of cases expected to pass (the aim: 90%)."""
    assert (len(CASES) - len(OPEN)) / len(CASES) >= 0.9
    assert set(OPEN) <= set(CASES)
