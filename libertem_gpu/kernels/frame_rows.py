"""Numba helpers for kernels that stream several frames at once: the rows of four or eight
frames."""

from __future__ import annotations

import numba

__all__ = ["rows4", "rows8"]


@numba.njit(nogil=True, cache=True, inline="always")
def rows8(a, i, p0, p1):  # type: ignore[no-untyped-def]
    """Pixels ``p0:p1`` of frames ``i`` to ``i + 7`` of the 2-D tile ``a`` (Numba only): eight
    read streams, so that accumulators are loaded and stored once per eight frames."""
    return (
        a[i, p0:p1],
        a[i + 1, p0:p1],
        a[i + 2, p0:p1],
        a[i + 3, p0:p1],
        a[i + 4, p0:p1],
        a[i + 5, p0:p1],
        a[i + 6, p0:p1],
        a[i + 7, p0:p1],
    )


@numba.njit(nogil=True, cache=True, inline="always")
def rows4(a, i, p0, p1):  # type: ignore[no-untyped-def]
    """Pixels ``p0:p1`` of frames ``i`` to ``i + 3`` of the 2-D tile ``a`` (Numba only)."""
    return a[i, p0:p1], a[i + 1, p0:p1], a[i + 2, p0:p1], a[i + 3, p0:p1]
