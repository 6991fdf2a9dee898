"""The ``Examples`` sections of the public names' docstrings run as written: the API reference
(docs/reference.md, generated from these docstrings) shows them."""

from __future__ import annotations

import doctest
import importlib

import pytest

import libertem_gpu

PUBLIC = sorted(name for name in libertem_gpu.__all__ if name != "__version__")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _doctests(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(libertem_gpu._EXPORTS[name])
    obj = getattr(libertem_gpu, name)
    # The object's own module's globals, as pytest's --doctest-modules would give.
    return [t for t in doctest.DocTestFinder().find(obj, name, module=module) if t.examples]


def test_public_names_have_examples():
    with_examples = [name for name in PUBLIC if _doctests(name)]
    assert len(with_examples) >= 20, with_examples


@pytest.mark.parametrize("name", PUBLIC)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in _doctests(name):
        runner.run(test, out=report.append)
    assert not report, "".join(report)[-4000:]
