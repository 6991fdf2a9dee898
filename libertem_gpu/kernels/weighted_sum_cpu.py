"""Frames summed with weights on the CPU (Numba); the reference and the array implementation
shared with the GPU are in :mod:`libertem_gpu.kernels.weighted_sum`.

A matrix product with few sums (``l``) and many pixels reads each pixel once and spends only
``2 l`` flops on it, so BLAS over a float64 copy of the tile is bound by the copy. Here the
pixels are converted as they are read, a chunk of pixels at a time whose ``l`` sums stay in
the L2 cache, four frames at a time so that each sum is loaded and stored once per four
products; sums in float64, in frame order per pixel. Converting the four frames' pixels anew
for each sum measured faster than converting them once into a buffer (512 frames of 256 x
256 uint16, 16 sums, one thread, Zen 4: 0.046 s against 0.065-0.080 s; BLAS over a float64
copy: 0.38 s). The sums of squares (``squared``) square each pixel as it is converted: a
float64 copy of the tile squared in NumPy first took 0.45 s against 0.04 s for the plain sums
(4096 frames of 256 x 256 uint16, three sums, two threads).
"""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.kernels.tiles import as_rows

__all__ = ["cpu"]

#: Pixels per chunk: ``l`` float64 sums of a chunk (l = 16: 128 KiB) stay in L2.
_CHUNK = 1024


@numba.njit(nogil=True, cache=True, inline="always")
def _value(x, squared):  # type: ignore[no-untyped-def]
    """``x`` in float64, squared if ``squared`` (Numba only)."""
    v = np.float64(x)
    return v * v if squared else v


def _make_accumulate(squared: bool):  # type: ignore[no-untyped-def]
    """The Numba loop summing the pixels (``squared``: their squares) with the weights; the
    flag is a constant of each compiled loop (a plain value in its closure: a function there
    would change Numba's cache key in every process), so neither has a branch per pixel."""

    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def accumulate(a, npix, weights, out, chunk):  # type: ignore[no-untyped-def]
        n = weights.shape[0]
        sums = weights.shape[1]
        n4 = n - n % 4
        for p0 in range(0, npix, chunk):
            p1 = min(p0 + chunk, npix)
            for i in range(0, n4, 4):
                r0 = a[i, p0:p1]
                r1 = a[i + 1, p0:p1]
                r2 = a[i + 2, p0:p1]
                r3 = a[i + 3, p0:p1]
                for j in range(sums):
                    w0 = weights[i, j]
                    w1 = weights[i + 1, j]
                    w2 = weights[i + 2, j]
                    w3 = weights[i + 3, j]
                    o = out[j, p0:p1]
                    for p in range(p1 - p0):
                        o[p] = (
                            o[p]
                            + w0 * _value(r0[p], squared)
                            + w1 * _value(r1[p], squared)
                            + w2 * _value(r2[p], squared)
                            + w3 * _value(r3[p], squared)
                        )
            for i in range(n4, n):
                r = a[i, p0:p1]
                for j in range(sums):
                    w = weights[i, j]
                    o = out[j, p0:p1]
                    for p in range(p1 - p0):
                        o[p] += w * _value(r[p], squared)

    return accumulate


_accumulate = {False: _make_accumulate(False), True: _make_accumulate(True)}


def cpu(tile: np.ndarray, weights: np.ndarray, out: np.ndarray, squared: bool = False) -> None:
    """``out`` (float64 ``(l, npix)``, rows contiguous) ``+= weights.T @ tile`` (``tile (n,
    npix)``, any real dtype; ``weights (n, l)``; ``tile**2`` in float64 if ``squared``); one
    thread: partitions run side by side."""
    a, npix = as_rows(tile)
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if out.strides[1] != out.itemsize:
        raise ValueError(f"out's rows must be contiguous, got strides {out.strides}")
    _accumulate[bool(squared)](a, npix, w, out, _CHUNK)
