"""The CPU (Numba) centre-of-mass kernel over dense weights, and the CPU ``prepare`` of the
``centre_of_mass`` operation (see :mod:`libertem_gpu.kernels.com`)."""

from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.com import AppliedCoM, PixelTerms
from libertem_gpu.kernels.tiles import SUPPORTED_DTYPES, check_no_swap, check_out, read_only

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
    """``(n, frame_len)`` read-only view with rows at the frames, and the row stride (read-only
    whatever the tile: one compiled variant per dtype and layout, see :func:`.read_only`)."""
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
        return read_only(as_strided(tile3d, shape=(n, flen), strides=(fs * isz, isz))), rs
    c = np.ascontiguousarray(tile3d)
    return read_only(c.reshape(n, rows * cols)), cols


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
    also as float32, with the weights of the column moment (``weights * col``), and the
    pixel terms by row (``terms_start[row] .. terms_start[row + 1]`` index ``terms_col`` and
    ``terms_delta``)."""

    __slots__ = (
        "extents",
        "terms_col",
        "terms_delta",
        "terms_start",
        "weights",
        "weights32",
        "weights32_x",
    )

    def __init__(
        self, weights: np.ndarray, single: bool = False, terms: PixelTerms | None = None
    ) -> None:
        self.weights = weights
        self.extents = row_extents(weights)
        if not single:
            return
        rows, cols = weights.shape
        self.weights32 = np.ascontiguousarray(weights, dtype=np.float32)
        self.weights32_x = np.ascontiguousarray(
            weights * np.arange(cols, dtype=np.float64), dtype=np.float32
        )
        index = np.zeros(0, np.intp) if terms is None else terms.index
        delta = np.zeros((0, 3)) if terms is None else terms.delta
        if index.size and (index.min() < 0 or index.max() >= rows * cols):
            raise ShapeMismatchError(f"pixel terms index outside the frame of {weights.shape}")
        self.terms_start = np.searchsorted(index // cols, np.arange(rows + 1)).astype(np.intp)
        self.terms_col = (index % cols).astype(np.intp)
        self.terms_delta = delta


#: Frames the single-precision kernel runs through per row of weights.
_ROWS32_FRAMES = 8

#: Tile types that float32 holds exactly, for the single-precision kernel.
_SINGLE_EXACT = frozenset(
    np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.float32, np.bool_)
)


# Reassociation lets the row sums vectorise: each row's partial sums are float32 lanes added
# in any order (accurate to float32, which is all the weights hold), then float64 per frame.
@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _com_rows32(
    a, rows, row_stride, w32, wx32, row_offset, lo, hi, t_start, t_col, t_delta, out_t, out_y, out_x
):
    n = a.shape[0]
    # A row of weights serves _ROWS32_FRAMES frames while it is in L1: weights of a whole frame
    # would otherwise stream from L3 with every frame (twice the frame's own bytes).
    for i0 in range(0, n, _ROWS32_FRAMES):
        i1 = min(i0 + _ROWS32_FRAMES, n)
        for r in range(rows):
            rr = row_offset + r
            c0 = lo[rr]
            c1 = hi[rr]
            j0 = t_start[rr]
            j1 = t_start[rr + 1]
            if c1 <= c0 and j1 <= j0:
                continue
            w = w32[rr, c0:c1]
            wx = wx32[rr, c0:c1]
            start = r * row_stride
            for i in range(i0, i1):
                x = a[i, start + c0 : start + c1]
                rt = np.float32(0.0)
                rx = np.float32(0.0)
                for c in range(c1 - c0):
                    v = np.float32(x[c])
                    rt += v * w[c]
                    rx += v * wx[c]
                # The row moment is the row's total times its index: two products a pixel,
                # not three (measured about 10 % faster per core).
                st = np.float64(rt)
                sy = st * rr
                sx = np.float64(rx)
                # The pixel terms of this row, while it is in L1 (gathered from the frame in a
                # second pass, they cost a cache miss each: 30 % of a run).
                for j in range(j0, j1):
                    v64 = np.float64(a[i, start + t_col[j]])
                    st += v64 * t_delta[j, 0]
                    sy += v64 * t_delta[j, 1]
                    sx += v64 * t_delta[j, 2]
                out_t[i] += st
                out_y[i] += sy
                out_x[i] += sx


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
        ranged.weights32_x,
        int(row_offset),
        lo,
        hi,
        ranged.terms_start,
        ranged.terms_col,
        ranged.terms_delta,
        out_total,
        out_y,
        out_x,
    )


#: Single-precision layouts by the identity of their arrays (kept alive here, so that an
#: identity is not reused while cached): the partitions of a run share one.
_LAYOUTS: dict[tuple[int, ...], tuple[tuple[np.ndarray, ...], _Ranged]] = {}
_LAYOUTS_MAX = 8
_layouts_lock = threading.Lock()


def _single_layout(weights: np.ndarray, terms: PixelTerms | None) -> _Ranged:
    arrays = (weights,) if terms is None else (weights, terms.index, terms.delta)
    key = tuple(id(a) for a in arrays)
    with _layouts_lock:
        found = _LAYOUTS.get(key)
    if found is not None:
        return found[1]
    ranged = _Ranged(weights, single=True, terms=terms)
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


def _runs_with_terms(
    tile3d: np.ndarray,
    runs_terms: tuple[Any, np.ndarray, np.ndarray],
    row_offset: int,
    out_total: np.ndarray,
    out_y: np.ndarray,
    out_x: np.ndarray,
    swap: bool = False,
) -> None:
    from libertem_gpu.kernels.spans_cpu import com_cpu

    runs, index, delta = runs_terms
    com_cpu(tile3d, runs, row_offset, out_total, out_y, out_x, swap, terms=(index, delta))


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
    terms: PixelTerms | None = None,
) -> AppliedCoM:
    """A binary disk or annulus is a few runs per row: sum those pixels only, exactly, with
    the run kernel (which also swaps big-endian integers as it reads); other weights go to
    :func:`cpu`, or, with ``single`` (weights good to float32 only, such as weights with
    detector corrections folded in) and frames that float32 holds exactly (integers of up to
    16 bits, float32), to a kernel with float32 weights that sums each row in float32 (as fast
    as the run kernel: 1.5e-8 relative to the float64 sums on 256 x 256 frames). The run and
    float32 kernels also add the pixel ``terms`` as they read each frame (``adds_terms``)."""
    from libertem_gpu.kernels import spans, spans_cpu

    # Unlike mask sums, the run kernel beats the dense one for float frames too (measured
    # 19.8 against 12.9 GB/s on float32): it reads only the pixels under the disk.
    runs = spans.encode(weights)
    if runs is not None and runs.is_binary:
        if terms is None:
            return AppliedCoM(spans_cpu.com_cpu, runs, True)
        return AppliedCoM(_runs_with_terms, (runs, terms.index, terms.delta), True, True)
    if single and np.dtype(input_dtype) in _SINGLE_EXACT:
        return AppliedCoM(_rows32, _single_layout(weights, terms), False, terms is not None)
    return AppliedCoM(_ranged, _Ranged(weights), False)
