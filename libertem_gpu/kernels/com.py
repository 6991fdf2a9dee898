"""Centre of mass of (masked) frames.

The kernel accumulates, per frame, the weighted total ``sum w*f`` and the first moments
``sum w*f*row`` and ``sum w*f*col``, where ``w`` are weights over the whole frame (e.g. 1 inside
a disk). Tiles may hold a horizontal slab of rows (``row_offset``); slabs of one frame add up.
:func:`finalize` divides. Coordinates are absolute pixel indices ``(row, col)`` of the frame,
not shifts relative to a reference centre.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.gpu_common import BLOCK, CHUNK
from libertem_gpu.kernels.tiles import SUPPORTED_DTYPES, check_out

__all__ = ["cpu", "disk_weights", "finalize", "reference"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


def disk_weights(
    sig_shape: tuple[int, int], cy: float, cx: float, r: float | None, ri: float = 0.0
) -> np.ndarray:
    """Weights that are 1 where ``ri <= distance <= r`` from ``(cy, cx)`` and 0 elsewhere.

    Parameters
    ----------
    sig_shape : tuple of int
        ``(rows, cols)`` of a frame.
    cy, cx : float
        Centre, in pixel indices (row, column).
    r : float or None
        Outer radius; ``None`` means no outer limit (the whole frame beyond ``ri``).
    ri : float
        Inner radius (annulus); 0 for a full disk.

    Returns
    -------
    numpy.ndarray
        float64 ``sig_shape``.
    """
    rows, cols = sig_shape
    y = np.arange(rows, dtype=np.float64)[:, None] - cy
    x = np.arange(cols, dtype=np.float64)[None, :] - cx
    d = np.hypot(y, x)
    inside = d >= ri
    if r is not None:
        inside &= d <= r
    return inside.astype(np.float64)


def reference(
    frames3d: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted total and first moments of whole frames, in plain NumPy.

    Parameters
    ----------
    frames3d : numpy.ndarray
        ``(n, rows, cols)``.
    weights : numpy.ndarray
        ``(rows, cols)``.

    Returns
    -------
    total, y, x : numpy.ndarray
        float64 ``(n,)``: ``sum w*f``, ``sum w*f*row``, ``sum w*f*col``.
    """
    f = np.asarray(frames3d, dtype=np.float64)
    wf = f * np.asarray(weights, dtype=np.float64)
    rows, cols = wf.shape[1:]
    total = wf.sum(axis=(1, 2))
    y = (wf.sum(axis=2) * np.arange(rows)).sum(axis=1)
    x = (wf.sum(axis=1) * np.arange(cols)).sum(axis=1)
    return total, y, x


def finalize(total: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass ``(y / total, x / total)``.

    Returns NaN where ``total == 0`` (an empty or fully masked frame has no centre; NaN, as
    LiberTEM's 0/0 gives, keeps such frames visibly out of maps and statistics), without warnings.

    Returns
    -------
    com_y, com_x : numpy.ndarray
        float64, in absolute pixel coordinates (row, column).
    """
    total = np.asarray(total, dtype=np.float64)
    zero = total == 0
    safe = np.where(zero, 1.0, total)
    com_y = np.where(zero, np.nan, np.asarray(y, dtype=np.float64) / safe)
    com_x = np.where(zero, np.nan, np.asarray(x, dtype=np.float64) / safe)
    return com_y, com_x


@_jit
def _com(a, rows, cols, row_stride, weights, row_offset, out_total, out_y, out_x):
    # Column accumulators instead of a per-row reduction: the inner loop over columns is then
    # element-wise and vectorises without fastmath; the short reductions happen once per frame.
    ct = np.empty(cols)
    cy = np.empty(cols)
    for i in range(a.shape[0]):
        ct[:] = 0.0
        cy[:] = 0.0
        fr = a[i]
        for r in range(rows):
            start = r * row_stride
            x = fr[start : start + cols]
            w = weights[row_offset + r]
            yy = np.float64(row_offset + r)
            for c in range(cols):
                v = np.float64(x[c]) * w[c]
                ct[c] += v
                cy[c] += v * yy
        t = 0.0
        sy = 0.0
        sx = 0.0
        for c in range(cols):
            t += ct[c]
            sy += cy[c]
            sx += ct[c] * np.float64(c)
        out_total[i] += t
        out_y[i] += sy
        out_x[i] += sx


def _frames_view(tile3d: np.ndarray) -> tuple[np.ndarray, int]:
    """``(n, frame_len)`` C-contiguous view with rows at the frames, and the row stride."""
    if tile3d.dtype == np.bool_:
        tile3d = tile3d.view(np.uint8)
    n, rows, cols = tile3d.shape
    isz = tile3d.itemsize
    s0, s1, s2 = tile3d.strides
    if rows <= 1:
        s1 = cols * isz
    if (
        (s2 == isz or cols == 1)
        and s1 % isz == 0
        and s1 >= cols * isz
        and s0 % isz == 0
        and (n == 1 or s0 >= (rows - 1) * s1 + cols * isz)
    ):
        rs = s1 // isz
        flen = (rows - 1) * rs + cols
        fs = s0 // isz if n > 1 else flen
        return as_strided(tile3d, shape=(n, flen), strides=(fs * isz, isz)), rs
    c = np.ascontiguousarray(tile3d)
    return c.reshape(n, rows * cols), cols


def cpu(
    tile3d: np.ndarray,
    weights: np.ndarray,
    row_offset: int,
    out_total: np.ndarray,
    out_y: np.ndarray,
    out_x: np.ndarray,
) -> None:
    """Accumulate weighted totals and first moments of a slab of frame rows.

    Parameters
    ----------
    tile3d : numpy.ndarray
        ``(n, rows, cols)``, last axis contiguous, any supported dtype: rows
        ``row_offset .. row_offset + rows`` of n frames.
    weights : numpy.ndarray
        float64 ``(rows_total, cols)`` over the whole frame, C-contiguous.
    row_offset : int
        Index of the tile's first row in the frame.
    out_total, out_y, out_x : numpy.ndarray
        float64 ``(n,)``, updated in place: ``+= sum w*f``, ``sum w*f*row``, ``sum w*f*col``.
    """
    if tile3d.ndim != 3:
        raise ShapeMismatchError(f"tile3d must be 3-D (n, rows, cols), got {tile3d.shape}")
    if tile3d.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"unsupported tile dtype {tile3d.dtype}")
    n, rows, cols = tile3d.shape
    if weights.ndim != 2 or weights.shape[1] != cols:
        raise ShapeMismatchError(
            f"weights must have shape (rows_total, {cols}), got {weights.shape}"
        )
    if weights.dtype != np.float64 or not weights.flags.c_contiguous:
        raise TypeError("weights must be a C-contiguous float64 array")
    row_offset = int(row_offset)
    if row_offset < 0 or row_offset + rows > weights.shape[0]:
        raise ShapeMismatchError(
            f"rows {row_offset}..{row_offset + rows} outside weights with {weights.shape[0]} rows"
        )
    for o, name in ((out_total, "out_total"), (out_y, "out_y"), (out_x, "out_x")):
        check_out(o, (n,), name)
    if n == 0 or rows == 0 or cols == 0:
        return
    a, rs = _frames_view(tile3d)
    _com(a, rows, cols, rs, weights, row_offset, out_total, out_y, out_x)


# --- GPU --------------------------------------------------------------------------------------

# ``numba.cuda`` in the kernel bodies: bound by ``bind_cuda`` when they are compiled, so that
# importing this module imports no CUDA.
cuda: Any = None


def _com_kernel(a, weights, row_offset, out_total, out_y, out_x):
    # Numba-CUDA kernel body; compiled through _cuda_com().
    i = cuda.blockIdx.x
    t = cuda.threadIdx.x
    cols = a.shape[2]
    npix = a.shape[1] * cols
    c0 = cuda.blockIdx.y * CHUNK
    c1 = min(c0 + CHUNK, npix)
    st = 0.0
    sy = 0.0
    sx = 0.0
    for p in range(c0 + t, c1, BLOCK):
        r = p // cols
        c = p - r * cols
        v = float(a[i, r, c]) * float(weights[row_offset + r, c])
        st += v
        sy += v * (row_offset + r)
        sx += v * c
    s_t = cuda.shared.array(BLOCK, "float64")
    s_y = cuda.shared.array(BLOCK, "float64")
    s_x = cuda.shared.array(BLOCK, "float64")
    s_t[t] = st
    s_y[t] = sy
    s_x[t] = sx
    cuda.syncthreads()
    step = BLOCK // 2
    while step > 0:
        if t < step:
            s_t[t] += s_t[t + step]
            s_y[t] += s_y[t + step]
            s_x[t] += s_x[t + step]
        cuda.syncthreads()
        step //= 2
    if t == 0:
        cuda.atomic.add(out_total, i, s_t[0])
        cuda.atomic.add(out_y, i, s_y[0])
        cuda.atomic.add(out_x, i, s_x[0])


def _cuda_com():
    """Numba-CUDA kernel factory: conversion, weighting and the three moment sums of a slab of
    frame rows in one pass; block ``(i, chunk)`` reduces a chunk of frame ``i`` in shared memory
    and adds it atomically."""
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_com_kernel)


def gpu(tile3d, weights, row_offset: int, out_total, out_y, out_x) -> None:
    """CUDA twin of :func:`cpu` on CuPy arrays (same arguments; ``weights`` should already be
    a float64 CuPy array, ``tile3d`` may be the raw integer tile with any strides)."""
    import cupy as cp

    from libertem_gpu.kernels import gpu_common as g

    if tile3d.ndim != 3:
        raise ShapeMismatchError(f"tile3d must be 3-D (n, rows, cols), got {tile3d.shape}")
    if tile3d.dtype == np.bool_:
        tile3d = tile3d.view(np.uint8)
    n, rows, cols = tile3d.shape
    weights = cp.asarray(weights, dtype=cp.float64)
    if weights.ndim != 2 or weights.shape[1] != cols:
        raise ShapeMismatchError(
            f"weights must have shape (rows_total, {cols}), got {weights.shape}"
        )
    row_offset = int(row_offset)
    if row_offset < 0 or row_offset + rows > weights.shape[0]:
        raise ShapeMismatchError(
            f"rows {row_offset}..{row_offset + rows} outside weights with {weights.shape[0]} rows"
        )
    for o, name in ((out_total, "out_total"), (out_y, "out_y"), (out_x, "out_x")):
        g.check_device_out(o, (n,), name)
    if n == 0 or rows == 0 or cols == 0:
        return
    grid = (n, g.row_chunks(rows * cols))
    g.launch(_cuda_com, grid, (g.BLOCK,), tile3d, weights, row_offset, out_total, out_y, out_x)
