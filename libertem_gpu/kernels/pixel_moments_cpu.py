"""Per-frame moments over a set of pixels on the CPU (Numba); the reference, the combination
and the GPU kernel are in :mod:`libertem_gpu.kernels.pixel_moments`."""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.kernels.pixel_moments import _check
from libertem_gpu.kernels.tiles import as_rows

__all__ = ["cpu"]


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
