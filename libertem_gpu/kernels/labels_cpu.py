"""Masks given as a label per pixel on the CPU (Numba); the reference and the checks are in
:mod:`libertem_gpu.kernels.labels`."""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.kernels.labels import check
from libertem_gpu.kernels.tiles import as_rows

__all__ = ["cpu"]


# Four frames per pass over the labels, and each frame's sums kept twice, for even and for odd
# pixels: neighbouring pixels mostly share a label, and one array per frame would make every
# addition wait for the one before it (the store-to-load latency). The eight arrays hold
# k + 1 sums each (label k: pixels of no mask), in L1 for a few hundred masks.
@numba.njit(nogil=True, cache=True)
def _label_sums(a, npix, labels, weights, out):
    n = a.shape[0]
    k = out.shape[1]
    acc = np.zeros((8, k + 1))
    n4 = n - n % 4
    pairs = npix - npix % 2
    for i in range(0, n4, 4):
        r0, r1, r2, r3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        for p in range(0, pairs, 2):
            l0, l1 = labels[p], labels[p + 1]
            w0, w1 = weights[p], weights[p + 1]
            acc[0, l0] += w0 * np.float64(r0[p])
            acc[1, l1] += w1 * np.float64(r0[p + 1])
            acc[2, l0] += w0 * np.float64(r1[p])
            acc[3, l1] += w1 * np.float64(r1[p + 1])
            acc[4, l0] += w0 * np.float64(r2[p])
            acc[5, l1] += w1 * np.float64(r2[p + 1])
            acc[6, l0] += w0 * np.float64(r3[p])
            acc[7, l1] += w1 * np.float64(r3[p + 1])
        if pairs < npix:
            p = pairs
            acc[0, labels[p]] += weights[p] * np.float64(r0[p])
            acc[2, labels[p]] += weights[p] * np.float64(r1[p])
            acc[4, labels[p]] += weights[p] * np.float64(r2[p])
            acc[6, labels[p]] += weights[p] * np.float64(r3[p])
        for f in range(4):
            for j in range(k):
                out[i + f, j] += acc[2 * f, j] + acc[2 * f + 1, j]
        acc[:] = 0.0
    for i in range(n4, n):
        r = a[i]
        for p in range(0, pairs, 2):
            acc[0, labels[p]] += weights[p] * np.float64(r[p])
            acc[1, labels[p + 1]] += weights[p + 1] * np.float64(r[p + 1])
        if pairs < npix:
            acc[0, labels[pairs]] += weights[pairs] * np.float64(r[pairs])
        for j in range(k):
            out[i, j] += acc[0, j] + acc[1, j]
        acc[:2] = 0.0


def cpu(tile: np.ndarray, labels: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """Accumulate ``out[i, labels[p]] += weights[p] * tile[i, p]``; label ``k`` is no mask.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    labels : numpy.ndarray
        int32 ``(npix,)`` in ``[0, k]``: each pixel's mask, ``k`` for none.
    weights : numpy.ndarray
        float64 ``(npix,)``: each pixel's value in its mask.
    out : numpy.ndarray
        ``(n, k)`` float64 or float32, updated in place; sums are formed in float64.
    """
    a, npix = as_rows(tile)
    check(npix, labels, weights, a.shape[0], out)
    if a.shape[0] == 0 or npix == 0:
        return
    _label_sums(a, npix, labels, np.asarray(weights, dtype=np.float64), out)
