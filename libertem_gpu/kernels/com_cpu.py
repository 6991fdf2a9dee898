"""The CPU (Numba) centre-of-mass kernel over dense weights, and the CPU ``prepare`` of the
``centre_of_mass`` operation (see :mod:`libertem_gpu.kernels.com`)."""

from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.com import AppliedCoM
from libertem_gpu.kernels.tiles import SUPPORTED_DTYPES, check_no_swap, check_out

__all__ = ["cpu", "prepare"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


@_jit
def _com(a, rows, cols, row_stride, weights, row_offset, out_total, out_y, out_x, lo, hi):
    # Column accumulators instead of a per-row reduction: the inner loop over columns is then
    # element-wise and vectorises without fastmath; the short reductions happen once per frame.
    # Each row is read between its first and last non-zero weight only (lo, hi): a disk's
    # weights (folded with a gain map, say) cost the disk's pixels, not the frame's.
    ct = np.empty(cols)
    cy = np.empty(cols)
    for i in range(a.shape[0]):
        ct[:] = 0.0
        cy[:] = 0.0
        fr = a[i]
        for r in range(rows):
            c0 = lo[row_offset + r]
            c1 = hi[row_offset + r]
            start = r * row_stride
            x = fr[start + c0 : start + c1]
            w = weights[row_offset + r, c0:c1]
            rt = ct[c0:c1]
            ry = cy[c0:c1]
            yy = np.float64(row_offset + r)
            for c in range(c1 - c0):
                v = np.float64(x[c]) * w[c]
                rt[c] += v
                ry[c] += v * yy
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
    swap: bool = False,
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
    swap : bool
        Must be False: this kernel reads native byte order only (the signature is shared with
        the run kernel, which swaps).
    """
    _cpu(tile3d, weights, row_extents(weights), row_offset, out_total, out_y, out_x, swap)


def _cpu(
    tile3d: np.ndarray,
    weights: np.ndarray,
    extents: tuple[np.ndarray, np.ndarray],
    row_offset: int,
    out_total: np.ndarray,
    out_y: np.ndarray,
    out_x: np.ndarray,
    swap: bool = False,
) -> None:
    check_no_swap(swap, tile3d.dtype)
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
    lo, hi = extents
    _com(a, rows, cols, rs, weights, row_offset, out_total, out_y, out_x, lo, hi)


class _Ranged:
    """Dense weights with their row extents, computed once per partition; with ``single``
    also as float32, with the weights of the first moments (``moments``: given, or
    ``weights * row`` and ``weights * col``)."""

    __slots__ = ("extents", "weights", "weights32", "weights32_x", "weights32_y")

    def __init__(
        self,
        weights: np.ndarray,
        single: bool = False,
        moments: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.weights = weights
        if not single:
            self.extents = row_extents(weights)
            return
        if moments is None:
            rows, cols = np.mgrid[: weights.shape[0], : weights.shape[1]].astype(np.float64)
            moments = (weights * rows, weights * cols)
        wy, wx = moments
        if wy.shape != weights.shape or wx.shape != weights.shape:
            raise ShapeMismatchError(
                f"moment weights must have the shape of weights {weights.shape}, got "
                f"{wy.shape} and {wx.shape}"
            )
        self.extents = row_extents((weights != 0) | (wy != 0) | (wx != 0))
        self.weights32 = np.ascontiguousarray(weights, dtype=np.float32)
        self.weights32_y = np.ascontiguousarray(wy, dtype=np.float32)
        self.weights32_x = np.ascontiguousarray(wx, dtype=np.float32)


#: Frames the single-precision kernel runs through per row of weights.
_ROWS32_FRAMES = 8

#: Tile types that float32 holds exactly, for the single-precision kernel.
_SINGLE_EXACT = frozenset(
    np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.float32, np.bool_)
)


# Reassociation lets the row sums vectorise: each row's partial sums are float32 lanes added
# in any order (accurate to float32, which is all the weights hold), then float64 per frame.
@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _com_rows32(a, rows, row_stride, w32, wy32, wx32, row_offset, lo, hi, out_total, out_y, out_x):
    n = a.shape[0]
    # A row of weights serves _ROWS32_FRAMES frames while it is in L1: weights of a whole frame
    # would otherwise stream from L3 with every frame (twice the frame's own bytes).
    for i0 in range(0, n, _ROWS32_FRAMES):
        i1 = min(i0 + _ROWS32_FRAMES, n)
        for r in range(rows):
            rr = row_offset + r
            c0 = lo[rr]
            c1 = hi[rr]
            if c1 <= c0:
                continue
            w = w32[rr, c0:c1]
            wy = wy32[rr, c0:c1]
            wx = wx32[rr, c0:c1]
            start = r * row_stride
            for i in range(i0, i1):
                x = a[i, start + c0 : start + c1]
                rt = np.float32(0.0)
                ry = np.float32(0.0)
                rx = np.float32(0.0)
                for c in range(c1 - c0):
                    v = np.float32(x[c])
                    rt += v * w[c]
                    ry += v * wy[c]
                    rx += v * wx[c]
                out_total[i] += np.float64(rt)
                out_y[i] += np.float64(ry)
                out_x[i] += np.float64(rx)


def _rows32(
    tile3d: np.ndarray,
    ranged: _Ranged,
    row_offset: int,
    out_total: np.ndarray,
    out_y: np.ndarray,
    out_x: np.ndarray,
    swap: bool = False,
) -> None:
    check_no_swap(swap, tile3d.dtype)
    if tile3d.dtype not in _SINGLE_EXACT:
        raise TypeError(f"the single-precision kernel reads {sorted(map(str, _SINGLE_EXACT))}")
    n, rows, cols = tile3d.shape
    w = ranged.weights
    if cols != w.shape[1] or row_offset < 0 or row_offset + rows > w.shape[0]:
        raise ShapeMismatchError(
            f"rows {row_offset}..{row_offset + rows} x {cols} outside weights of {w.shape}"
        )
    for o, name in ((out_total, "out_total"), (out_y, "out_y"), (out_x, "out_x")):
        check_out(o, (n,), name)
    if n == 0 or rows == 0:
        return
    a, rs = _frames_view(tile3d)
    lo, hi = ranged.extents
    _com_rows32(
        a,
        rows,
        rs,
        ranged.weights32,
        ranged.weights32_y,
        ranged.weights32_x,
        int(row_offset),
        lo,
        hi,
        out_total,
        out_y,
        out_x,
    )


#: Single-precision layouts by the identity of their weight arrays (kept alive here, so that an
#: identity is not reused while cached): the partitions of a run share one.
_LAYOUTS: dict[tuple[int, ...], tuple[Any, _Ranged]] = {}
_LAYOUTS_MAX = 8
_layouts_lock = threading.Lock()


def _single_layout(weights: np.ndarray, moments: tuple[np.ndarray, np.ndarray] | None) -> _Ranged:
    arrays = (weights,) if moments is None else (weights, *moments)
    key = tuple(id(a) for a in arrays)
    with _layouts_lock:
        found = _LAYOUTS.get(key)
    if found is not None:
        return found[1]
    ranged = _Ranged(weights, single=True, moments=moments)
    with _layouts_lock:
        while len(_LAYOUTS) >= _LAYOUTS_MAX:
            _LAYOUTS.pop(next(iter(_LAYOUTS)))
        _LAYOUTS[key] = (arrays, ranged)
    return ranged


def _ranged(
    tile3d: np.ndarray,
    ranged: _Ranged,
    row_offset: int,
    out_total: np.ndarray,
    out_y: np.ndarray,
    out_x: np.ndarray,
    swap: bool = False,
) -> None:
    _cpu(tile3d, ranged.weights, ranged.extents, row_offset, out_total, out_y, out_x, swap)


def row_extents(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``weights``, the columns ``[lo, hi)`` from its first to past its last
    non-zero weight (``lo == hi`` for an all-zero row)."""
    nz = weights != 0
    any_nz = nz.any(axis=1)
    lo = np.where(any_nz, nz.argmax(axis=1), 0).astype(np.intp)
    hi = np.where(any_nz, weights.shape[1] - nz[:, ::-1].argmax(axis=1), 0).astype(np.intp)
    return lo, hi


def prepare(
    weights: np.ndarray,
    input_dtype: Any,
    single: bool = False,
    moments: tuple[np.ndarray, np.ndarray] | None = None,
) -> AppliedCoM:
    """A binary disk or annulus is a few runs per row: sum those pixels only, exactly, with
    the run kernel (which also swaps big-endian integers as it reads); other weights go to
    :func:`cpu`, or, with ``single`` (weights good to float32 only, such as weights with
    detector corrections folded in) and frames that float32 holds exactly (integers of up to
    16 bits, float32), to a kernel with float32 weights that sums each row in float32 (as fast
    as the run kernel: 1.5e-8 relative to the float64 sums on 256 x 256 frames). That kernel
    also takes the first moments' weights as given (``moments``: for the rows and columns;
    default ``weights * row``, ``weights * col``), and says so (``moments_included``)."""
    from libertem_gpu.kernels import spans

    # Unlike mask sums, the run kernel beats the dense one for float frames too (measured
    # 19.8 against 12.9 GB/s on float32): it reads only the pixels under the disk.
    runs = spans.encode(weights)
    if runs is not None and runs.is_binary:
        return AppliedCoM(spans.com_cpu, runs, True)
    if single and np.dtype(input_dtype) in _SINGLE_EXACT:
        ranged = _single_layout(weights, moments)
        return AppliedCoM(_rows32, ranged, False, moments_included=moments is not None)
    return AppliedCoM(_ranged, _Ranged(weights), False)
