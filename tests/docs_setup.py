"""Helpers for the hidden ``<!-- test-setup -->`` blocks of the docs pages."""

from __future__ import annotations

import os

from tests.data_files import require_data

__all__ = ["link_test_data"]


def link_test_data(relative: str, name: str) -> None:
    """Link the real detector file ``relative`` (see tests/data_files.py) as ``name`` in the
    working directory, so that a page's example opens it under the name it shows; skip the
    test, naming ``LIBERTEM_GPU_TEST_DATA``, where the file is missing."""
    os.symlink(require_data(relative), name)
