"""LiberTEM's ``libertem.common.math``: integer helpers that UDFs import."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["count_nonzero", "flat_nonzero", "prod"]


def prod(iterable: Iterable[Any]) -> int:
    """The product of integers as a Python int (1 for none), without overflow."""
    return math.prod(int(v) for v in iterable)


def count_nonzero(a: Any) -> int:
    """The number of non-zero elements, dense or sparse."""
    if hasattr(a, "nnz"):
        return int(np.count_nonzero(a.todense() if hasattr(a, "todense") else a.toarray()))
    return int(np.count_nonzero(a))


def flat_nonzero(a: Any) -> np.ndarray:
    """Flat indices of the non-zero elements."""
    dense = a.todense() if hasattr(a, "todense") else a
    return np.flatnonzero(np.asarray(dense))
