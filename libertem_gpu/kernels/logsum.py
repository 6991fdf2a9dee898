"""Sum of log-scaled frames, ``sum_i log(frame_i - min(frame_i) + 1)``, per pixel.

The minimum is taken over each whole frame (LiberTEM's definition), so tiles must hold whole
frames. On the CPU, integer frames of up to 16 bits take ``log(x - min + 1)`` from a table of
the 65536 possible values (``x - min + 1`` is an integer in ``[1, 65536]``): a load instead of a
logarithm, 9x faster than ``math.log`` and the same float64 value. Wider integers and floats
use NumPy's vectorised float64 logarithm on blocks of frames. The GPU implementation
computes it with CuPy, in float64.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from libertem_gpu.kernels.tiles import as_rows, check_out

__all__ = ["cpu", "gpu", "reference"]

#: ``log(k + 1)`` for every difference ``k = x - min`` a 16-bit frame can hold.
_LOG_TABLE = np.log(np.arange(1, 2**16 + 1, dtype=np.float64))


def reference(frames: np.ndarray) -> np.ndarray:
    """``sum_i log(frames[i] - min(frames[i]) + 1)`` over axis 0, plain NumPy float64.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(n, ...)`` array of whole frames.

    Returns
    -------
    numpy.ndarray
        float64 of shape ``frames.shape[1:]``.
    """
    f = np.asarray(frames, dtype=np.float64)
    if f.shape[0] == 0:
        return np.zeros(f.shape[1:])
    axes = tuple(range(1, f.ndim))
    return np.log(f - f.min(axis=axes, keepdims=True) + 1).sum(axis=0)


@numba.njit(nogil=True, cache=True)
def _minima(a, npix, mins):
    for i in range(a.shape[0]):
        r = a[i]
        m = r[0]
        for p in range(1, npix):
            m = min(m, r[p])
        mins[i] = m


# Four frames per pass over ``out``: a quarter of the accumulator traffic (-12% on uint16).
@numba.njit(nogil=True, cache=True)
def _table(a, npix, table, out):
    n = a.shape[0]
    mins = np.empty(n, dtype=np.int64)
    _minima(a, npix, mins)
    n4 = n - n % 4
    for i in range(0, n4, 4):
        r0, r1, r2, r3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        m0, m1, m2, m3 = mins[i], mins[i + 1], mins[i + 2], mins[i + 3]
        for p in range(npix):
            s01 = table[np.int64(r0[p]) - m0] + table[np.int64(r1[p]) - m1]
            s23 = table[np.int64(r2[p]) - m2] + table[np.int64(r3[p]) - m3]
            out[p] += s01 + s23
    for i in range(n4, n):
        r = a[i]
        m = mins[i]
        for p in range(npix):
            out[p] += table[np.int64(r[p]) - m]


#: float64 elements per block of the logarithm path (1 MiB, cache-resident).
_BLOCK = 2**17


def _direct(a: np.ndarray, npix: int, out: np.ndarray) -> None:
    """Wider integers and floats: NumPy's vectorised float64 logarithm on blocks of frames
    (5x faster than ``math.log`` in a Numba loop)."""
    n = a.shape[0]
    step = max(1, _BLOCK // npix)
    buf = np.empty((min(step, n), npix))
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        b = buf[: i1 - i0]
        b[...] = a[i0:i1, :npix]
        # x - (min - 1) in float64: exact for integers below 2**53
        b -= b.min(axis=1, keepdims=True) - 1.0
        np.log(b, out=b)
        out += np.add.reduce(b, axis=0)


def cpu(tile: np.ndarray, out: np.ndarray) -> None:
    """Accumulate ``out += sum_i log(tile[i] - min(tile[i]) + 1)``.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile of whole frames, last axis contiguous, any supported dtype.
    out : numpy.ndarray
        float64 ``(npix,)``, updated in place.
    """
    a, npix = as_rows(tile)
    check_out(out, (npix,))
    if a.shape[0] == 0 or npix == 0:
        return
    if a.dtype.kind in "ui" and a.dtype.itemsize <= 2:
        _table(a, npix, _LOG_TABLE, out)
    else:
        _direct(a, npix, out)


def gpu(tile: Any, out: Any) -> None:
    """CuPy twin of :func:`cpu` (same arguments, on the device, float64 arithmetic)."""
    from libertem_gpu.kernels import gpu_common as g

    cp = g.cupy()
    a = g.rows2d(tile)
    n, npix = a.shape
    g.check_device_out(out, (npix,))
    if n == 0 or npix == 0:
        return
    f = a.astype(cp.float64)
    f -= f.min(axis=1, keepdims=True) - 1.0
    out += cp.log(f).sum(axis=0)
