"""Optional packages in tests: skip where one cannot be imported, whatever the reason."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

__all__ = ["import_or_skip"]


def import_or_skip(name: str) -> ModuleType:
    """Import ``name`` or skip the test with the reason.

    Unlike ``pytest.importorskip``, which skips on ``ImportError`` only, any exception skips:
    ``import kvikio`` raises cuda-pathfinder's ``DynamicLibNotFoundError`` (a ``RuntimeError``)
    where the cuFile library is missing.
    """
    try:
        return importlib.import_module(name)
    except Exception as e:
        pytest.skip(f"{name} cannot be imported here: {e!r}")
