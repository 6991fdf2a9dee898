"""Per-pixel maximum and minimum over frames, NaN-propagating like ``np.maximum``/``np.minimum``."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.tiles import check_no_swap

__all__ = ["reference_max", "reference_min"]


def reference_max(tile: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over axis 0 (``np.max``, NaN-propagating), in the tile's dtype."""
    return np.asarray(tile).max(axis=0)


def reference_min(tile: np.ndarray) -> np.ndarray:
    """Per-pixel minimum over axis 0 (``np.min``, NaN-propagating), in the tile's dtype."""
    return np.asarray(tile).min(axis=0)


# --- GPU --------------------------------------------------------------------------------------


def _gpu_prepare(tile, out):
    from libertem_gpu.kernels import gpu_common as g

    a = g.rows2d(tile) if tile.dtype != np.bool_ else tile
    if a.ndim != 2:
        raise ShapeMismatchError(f"a tile must be 2-D (n, npix), got shape {tile.shape}")
    if tuple(out.shape) != (a.shape[1],):
        raise ShapeMismatchError(f"out must have shape ({a.shape[1]},), got {out.shape}")
    if not np.can_cast(a.dtype, out.dtype, casting="safe"):
        raise TypeError(f"out dtype {out.dtype} cannot hold tile dtype {tile.dtype} exactly")
    return a


def gpu_max(tile, out, swap: bool = False) -> None:
    """CUDA twin of :func:`cpu_max` on CuPy arrays: CuPy's reduction (NaN-propagating, like
    NumPy) and an in-place ``maximum`` (``swap`` must be False)."""
    import cupy as cp

    check_no_swap(swap, tile.dtype)
    a = _gpu_prepare(tile, out)
    if a.shape[0] and a.shape[1]:
        cp.maximum(out, a.max(axis=0), out=out)


def gpu_min(tile, out, swap: bool = False) -> None:
    """CUDA twin of :func:`cpu_min` on CuPy arrays (``swap`` must be False)."""
    import cupy as cp

    check_no_swap(swap, tile.dtype)
    a = _gpu_prepare(tile, out)
    if a.shape[0] and a.shape[1]:
        cp.minimum(out, a.min(axis=0), out=out)


# The CPU kernels (Numba) live in ``extrema_cpu``, so that the reference imports no Numba; their
# names stay reachable here for callers of the single module this once was.
_MOVED = frozenset({"cpu_max", "cpu_min"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("libertem_gpu.kernels.extrema_cpu"), name)
