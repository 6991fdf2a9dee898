"""Sum over frames on the CPU (Numba): ``out += tile.sum(axis=0)``; the reference and the GPU
kernel are in :mod:`libertem_gpu.kernels.sum_frames`."""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.kernels.bswap import load
from libertem_gpu.kernels.tiles import as_rows, check_no_swap, check_out
from libertem_gpu.kernels.vector_width import prefer_wide_vectors

__all__ = ["cpu"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


# Pixels per block: 65536 float64 accumulators (512 KiB) stay in L2 while all frames of the tile
# stream past, whatever the frame size.
_PIX_BLOCK = 65536


@_jit
def _sum_frames(a, npix, out):
    n = a.shape[0]
    n4 = n - n % 4
    for p0 in range(0, npix, _PIX_BLOCK):
        p1 = min(p0 + _PIX_BLOCK, npix)
        m = p1 - p0
        o = out[p0:p1]
        # Four frames per pass over the accumulators, added in pairs in float64 first: a quarter
        # of the accumulators' load/store traffic and short dependency chains. Converting to
        # float64 is exact, so this differs from the sequential loop by float64 rounding only.
        # Measured on 1 GiB of float32 on 2 cores, kernel alone: 28.0 -> 21.1 ms against two
        # frames added in sequence (eight frames a pass: 24.3 ms).
        for i in range(0, n4, 4):
            r0 = a[i, p0:p1]
            r1 = a[i + 1, p0:p1]
            r2 = a[i + 2, p0:p1]
            r3 = a[i + 3, p0:p1]
            for p in range(m):
                o[p] += (np.float64(r0[p]) + np.float64(r1[p])) + (
                    np.float64(r2[p]) + np.float64(r3[p])
                )
        for i in range(n4, n):
            r0 = a[i, p0:p1]
            for p in range(m):
                o[p] += np.float64(r0[p])


@_jit
def _sum_frames_int(a, npix, out, swap):
    # Integers up to 32 bits: eight frames are added exactly in int64, then converted once.
    # Integer adds vectorise where a chain of float adds cannot (fastmath is off), and the
    # result is exact: each pixel's partial sum is an integer below 2**53. 512-bit vectors:
    # +4 % on uint16 (kernel alone, two threads).
    prefer_wide_vectors()
    n = a.shape[0]
    n8 = n - n % 8
    for p0 in range(0, npix, _PIX_BLOCK):
        p1 = min(p0 + _PIX_BLOCK, npix)
        m = p1 - p0
        o = out[p0:p1]
        for i in range(0, n8, 8):
            r0 = a[i, p0:p1]
            r1 = a[i + 1, p0:p1]
            r2 = a[i + 2, p0:p1]
            r3 = a[i + 3, p0:p1]
            r4 = a[i + 4, p0:p1]
            r5 = a[i + 5, p0:p1]
            r6 = a[i + 6, p0:p1]
            r7 = a[i + 7, p0:p1]
            for p in range(m):
                s01 = np.int64(load(r0[p], swap)) + np.int64(load(r1[p], swap))
                s23 = np.int64(load(r2[p], swap)) + np.int64(load(r3[p], swap))
                s45 = np.int64(load(r4[p], swap)) + np.int64(load(r5[p], swap))
                s67 = np.int64(load(r6[p], swap)) + np.int64(load(r7[p], swap))
                o[p] += np.float64((s01 + s23) + (s45 + s67))
        for i in range(n8, n):
            r0 = a[i, p0:p1]
            for p in range(m):
                o[p] += np.float64(load(r0[p], swap))


def cpu(tile: np.ndarray, out: np.ndarray, swap: bool = False) -> None:
    """Accumulate the sum over frames: ``out += tile.sum(axis=0)``.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    out : numpy.ndarray
        float64 ``(npix,)``, C-contiguous, updated in place.
    swap : bool
        The tile holds unsigned integers in reversed byte order (see
        :mod:`libertem_gpu.kernels.byteorder`); they are swapped as they are read.
    """
    a, npix = as_rows(tile)
    check_out(out, (npix,))
    if a.shape[0] == 0 or npix == 0:
        return
    if a.dtype.kind in "ui" and a.dtype.itemsize <= 4:
        _sum_frames_int(a, npix, out, swap)
    else:
        check_no_swap(swap, a.dtype)
        _sum_frames(a, npix, out)
