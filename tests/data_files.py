"""Where the tests find the real detector files (``shared/data``, see its README).

One setting: the environment variable ``LIBERTEM_GPU_TEST_DATA`` names the folder; without it,
``shared/data`` beside the repository (``<repo>/../shared/data``, where CI and the developers'
machines have it). Tests that need a file skip without it, and the reason names the variable::

    from tests.data_files import data_path, needs_data

    MIB = data_path("mib")

    @needs_data("mib/001_4x2_6bit.mib")
    def test_real_file(): ...
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["ENV_VAR", "data_path", "data_root", "missing_reason", "needs_data", "require_data"]

#: The environment variable that names the folder of real detector files.
ENV_VAR = "LIBERTEM_GPU_TEST_DATA"
#: The folder used where the variable is unset or empty.
DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_root() -> Path:
    """The folder of real detector files: ``$LIBERTEM_GPU_TEST_DATA`` or the default."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_ROOT)


def data_path(relative: str) -> Path:
    """``relative`` (e.g. ``"blo/test2.blo"``) inside the data folder; it may not exist."""
    return data_root() / relative


def missing_reason(relative: str) -> str | None:
    """Why ``relative`` cannot be used (naming the variable), or None where it exists."""
    path = data_path(relative)
    if path.exists():
        return None
    return f"real detector file not found: {path} (set {ENV_VAR} to the folder of shared/data)"


def needs_data(relative: str) -> pytest.MarkDecorator:
    """A mark that skips the test, with the reason, where ``relative`` is missing."""
    reason = missing_reason(relative)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def require_data(relative: str) -> Path:
    """The path of ``relative``, or skip the running test with the reason."""
    reason = missing_reason(relative)
    if reason is not None:
        pytest.skip(reason)
    return data_path(relative)
