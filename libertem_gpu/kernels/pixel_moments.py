"""Mean and sum of squared deviations of a set of pixels of each frame (FEM's ring statistics).

For each frame ``i`` of a tile and the pixels ``indices`` (flat, into the tile's part of the
frame): ``mean[i] = mean(tile[i, indices])`` and ``m2[i] = sum((tile[i, indices] - mean[i])**2)``,
in one pass of sums of deviations from a pixel of the frame (no cancellation to speak of for
data with a large mean; exact sums for integer frames). Results of the row slabs of a frame
combine with :func:`combine` (Chan, Golub and LeVeque's pairwise update).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError

__all__ = ["combine", "gpu", "reference"]


def reference(frames: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sum of squared deviations of ``frames[:, indices]``, plain NumPy float64.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(n, npix)``.
    indices : numpy.ndarray
        Flat pixel indices (at least one).

    Returns
    -------
    mean, m2 : numpy.ndarray
        float64 ``(n,)``.
    """
    v = np.asarray(frames, dtype=np.float64)[:, np.asarray(indices)]
    mean = v.mean(axis=1)
    return mean, ((v - mean[:, None]) ** 2).sum(axis=1)


def _check(npix: int, indices: Any, n: int, mean: Any, m2: Any) -> None:
    for name, o in (("mean", mean), ("m2", m2)):
        if tuple(o.shape) != (n,) or o.dtype != np.float64:
            raise ShapeMismatchError(
                f"{name} must be float64 of shape ({n},), got {o.dtype} {o.shape}"
            )
    if len(indices) == 0:
        raise ValueError("indices is empty: the moments of no pixel are undefined")
    if indices.dtype != np.int64:
        raise TypeError(f"indices must be int64, got {indices.dtype}")


def gpu(tile: Any, indices: Any, mean: Any, m2: Any) -> None:
    """CuPy twin of :func:`cpu` (same arguments as device arrays)."""
    from libertem_gpu.kernels import gpu_common as g

    cp = g.cupy()
    a = g.rows2d(tile)
    _check(a.shape[1], indices, a.shape[0], mean, m2)
    if a.shape[0] == 0:
        return
    v = a[:, indices].astype(cp.float64)
    mu = v.mean(axis=1)
    mean[...] = mu
    v -= mu[:, None]
    m2[...] = (v * v).sum(axis=1)


def combine(
    n_a: Any, mean_a: Any, m2_a: Any, n_b: int, mean_b: Any, m2_b: Any
) -> tuple[Any, Any, Any]:
    """Moments of the union of two disjoint pixel sets, per frame (arrays of any module).

    ``n_a`` may be an array (per frame) and zero, in which case ``b`` is returned.
    """
    n = n_a + n_b
    delta = mean_b - mean_a
    share = n_b / n
    return n, mean_a + delta * share, m2_a + m2_b + delta * delta * (n_a * share)


# The CPU kernels (Numba) live in ``pixel_moments_cpu``, so that the reference imports no
# Numba; their names stay reachable here for callers of the single module this once was.
_MOVED = frozenset({"cpu"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("libertem_gpu.kernels.pixel_moments_cpu"), name)
