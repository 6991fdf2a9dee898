"""Mean and sum of squared deviations of a set of pixels of each frame (FEM's ring statistics).

For each frame ``i`` of a tile and the pixels ``indices`` (flat, into the tile's part of the
frame): ``mean[i] = mean(tile[i, indices])`` and ``m2[i] = sum((tile[i, indices] - mean[i])**2)``,
in one pass of sums of deviations from a pixel of the frame (no cancellation to speak of for
data with a large mean; exact sums for integer frames). Results of the row slabs of a frame
combine with :func:`combine` (Chan, Golub and LeVeque's pairwise update).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.tiles import as_rows

__all__ = ["combine", "cpu", "gpu", "reference"]


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


# One pass, sums of deviations from the frame's first selected pixel (a value inside the data's
# range, so that the sums stay small: no cancellation to speak of; exact for integer frames,
# whose squared deviations are exact in float64). Reassociation lets the gathers and sums
# vectorise: 2x faster than two passes about the mean.
@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _moments(a, indices, mean, m2):
    k = indices.shape[0]
    for i in range(a.shape[0]):
        r = a[i]
        c = np.float64(r[indices[0]])
        s1 = 0.0
        s2 = 0.0
        for j in range(k):
            d = np.float64(r[indices[j]]) - c
            s1 += d
            s2 += d * d
        mean[i] = c + s1 / k
        m2[i] = max(s2 - s1 * (s1 / k), 0.0)


def cpu(tile: np.ndarray, indices: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
    """Write the mean and sum of squared deviations of ``tile[i, indices]`` for each frame.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    indices : numpy.ndarray
        int64 flat pixel indices in ``[0, npix)``, at least one (not checked per pixel: the
        caller makes them once).
    mean, m2 : numpy.ndarray
        float64 ``(n,)``, overwritten.
    """
    a, npix = as_rows(tile)
    _check(npix, indices, a.shape[0], mean, m2)
    if a.shape[0] == 0:
        return
    _moments(a, indices, mean, m2)


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
