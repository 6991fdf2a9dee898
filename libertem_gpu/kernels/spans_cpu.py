"""Mask sums and centre of mass over masks given as runs, on the CPU (Numba); the encoding and
the reference are in :mod:`libertem_gpu.kernels.spans`."""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.bswap import load, per_byte_order
from libertem_gpu.kernels.prefetch import prefetch_bytes
from libertem_gpu.kernels.spans import _SHORT_RUN, MaskSpans
from libertem_gpu.kernels.tiles import as_rows, check_no_swap

__all__ = ["com_cpu", "masks_cpu"]

_jit = numba.njit(nogil=True, cache=True)

_LINE = 64  # bytes per cache line


def _make_runs_direct(swap):  # type: ignore[no-untyped-def]
    @_jit
    def runs_direct(a, ptr, starts, stops, values, out):
        k = len(ptr) - 1
        for i in range(a.shape[0]):
            frame = a[i]
            for j in range(k):
                acc = 0.0
                for q in range(ptr[j], ptr[j + 1]):
                    seg = frame[starts[q] : stops[q]]
                    s = np.int64(0)
                    for p in range(len(seg)):  # 0-based: no negative-index checks, vectorises
                        s += np.int64(load(seg[p], swap))
                    acc += np.float64(s) * values[q]
                out[i, j] += acc

    return runs_direct


def _make_runs_prefix_int(swap):  # type: ignore[no-untyped-def]
    @_jit
    def runs_prefix_int(a, npix, ptr, starts, stops, values, out):
        k = len(ptr) - 1
        prefix = np.zeros(npix + 1, dtype=np.int64)
        for i in range(a.shape[0]):
            frame = a[i]
            s = np.int64(0)
            for p in range(npix):
                s += np.int64(load(frame[p], swap))
                prefix[p + 1] = s
            for j in range(k):
                acc = 0.0
                for q in range(ptr[j], ptr[j + 1]):
                    acc += np.float64(prefix[stops[q]] - prefix[starts[q]]) * values[q]
                out[i, j] += acc

    return runs_prefix_int


# Integer frames: a kernel per byte order (see per_byte_order).
_runs_direct = per_byte_order(_make_runs_direct)
_runs_prefix_int = per_byte_order(_make_runs_prefix_int)


@_jit
def _runs_prefix_float(a, npix, ptr, starts, stops, values, out):
    k = len(ptr) - 1
    prefix = np.zeros(npix + 1, dtype=np.float64)
    for i in range(a.shape[0]):
        frame = a[i]
        s = 0.0
        for p in range(npix):
            s += np.float64(frame[p])
            prefix[p + 1] = s
        for j in range(k):
            acc = 0.0
            for q in range(ptr[j], ptr[j + 1]):
                acc += (prefix[stops[q]] - prefix[starts[q]]) * values[q]
            out[i, j] += acc


def masks_cpu(tile: np.ndarray, spans: MaskSpans, out: np.ndarray, swap: bool = False) -> None:
    """Accumulate mask sums of whole frames: ``out[i, j] += sum over runs of mask j``.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` whole frames, last axis contiguous, any supported dtype.
    spans : MaskSpans
        The masks, from :func:`encode`.
    out : numpy.ndarray
        ``(n, k)`` float64 or float32, updated in place (each frame's sum is formed in float64
        and added once).
    swap : bool
        The tile holds unsigned integers in reversed byte order; swapped as they are read.

    Notes
    -----
    Integer frames are summed exactly in int64 (per run, or through an int64 prefix sum when
    runs are short); float frames through a float64 prefix sum.
    """
    a, npix = as_rows(tile)
    if npix != spans.rows * spans.cols:
        raise ShapeMismatchError(f"tile has {npix} pixels, masks {spans.rows * spans.cols}")
    if out.shape != (a.shape[0], spans.num_masks) or out.dtype not in (np.float64, np.float32):
        raise ShapeMismatchError(
            f"out must be float64 or float32 {(a.shape[0], spans.num_masks)}, got {out.dtype} "
            f"{out.shape}"
        )
    if a.shape[0] == 0 or spans.num_masks == 0:
        return
    args = (spans.ptr, spans.starts, spans.stops, spans.values, out)
    if a.dtype.kind in "ui" and a.dtype.itemsize <= 4:
        if spans.mean_run >= _SHORT_RUN:
            _runs_direct[swap](a, *args)
        else:
            _runs_prefix_int[swap](a, npix, *args)
    else:
        check_no_swap(swap, a.dtype)
        _runs_prefix_float(a, npix, *args)


@_jit
def _terms(frame, lo, t_index, t_delta, j0, j1, swap):
    # Pixel terms of one frame while it is in the cache (in a second pass over the frames,
    # each costs a cache miss).
    st = 0.0
    sy = 0.0
    sx = 0.0
    for j in range(j0, j1):
        v = np.float64(load(frame[t_index[j] - lo], swap))
        st += v * t_delta[j, 0]
        sy += v * t_delta[j, 1]
        sx += v * t_delta[j, 2]
    return st, sy, sx


@numba.njit(nogil=True, cache=True, inline="always")
def _prefetch_next_quartet(a, i, n, start, length):  # type: ignore[no-untyped-def]
    """Ask for the run ``start:start + length`` (elements) of the four frames after ``i:i + 4``
    into L2 (Numba only). The runs are short pieces of rows, so the hardware prefetchers see
    only short streams and each run's loads wait on memory; asked for a quartet ahead, they
    arrive while this quartet is summed. One thread, a disk of radius 64 on 256 x 256 frames
    streamed from 1 GiB in memory, on a Zen 4 EPYC, alternated with the kernel without it:
    float32 19.7-20.1 -> 27.5-30.2 GB/s, uint16 18.8-23.2 -> 25.9-28.9 GB/s, about the
    one-thread memory floor (in cache no slower: 24-41 -> 40 GB/s, 34-45 -> 46)."""
    nxt = min(i + 4, n - 4)
    b0 = start * a.itemsize
    b1 = b0 + length * a.itemsize
    for f in range(4):
        row = a[nxt + f]
        for b in range(b0, b1, _LINE):
            prefetch_bytes(row, b)


@_jit
def _com_runs(a, cols, row_offset, rows, starts, stops, out_total, out_y, out_x, t_index, t_delta):
    # Binary weights: per column one accumulator of the values and one of the values times
    # their row; the frame's sums come from the columns once per frame. The inner loop has no
    # reduction, so it vectorises without reordering any float sum. (A running float64 sum per
    # run is one dependent add per pixel: float32 CoM went from 0.58 to 0.70 of the memory
    # floor on 2 cores with this layout.) Four frames per pass over the runs, each with its
    # own columns, so every sum is formed in the same order as one frame at a time: a run is a
    # short piece of a row, and four of them in flight keep the memory busy where one left it
    # waiting. Kernel alone on 1 GiB of page-cached float32, two threads alternated with the
    # floor, on a Zen 4 EPYC: 0.73 -> 1.00 of it (haswell code 0.66 -> 0.97).
    lo = row_offset * cols
    hi = (row_offset + rows) * cols
    j0 = np.searchsorted(t_index, lo)
    j1 = np.searchsorted(t_index, hi)
    n = a.shape[0]
    colsum = np.zeros((4, cols), dtype=np.float64)
    colsum_y = np.zeros((4, cols), dtype=np.float64)
    for i in range(0, n, 4):
        nf = min(4, n - i)
        colsum[:] = 0.0
        colsum_y[:] = 0.0
        for q in range(len(starts)):
            st = starts[q]
            if st < lo or st >= hi:
                continue
            r = st // cols
            c0 = st - r * cols
            y = np.float64(r)
            b0 = st - lo
            length = stops[q] - st
            if nf == 4:
                _prefetch_next_quartet(a, i, n, b0, length)
                g0 = a[i, b0 : b0 + length]
                g1 = a[i + 1, b0 : b0 + length]
                g2 = a[i + 2, b0 : b0 + length]
                g3 = a[i + 3, b0 : b0 + length]
                k0 = colsum[0, c0 : c0 + length]
                k1 = colsum[1, c0 : c0 + length]
                k2 = colsum[2, c0 : c0 + length]
                k3 = colsum[3, c0 : c0 + length]
                m0 = colsum_y[0, c0 : c0 + length]
                m1 = colsum_y[1, c0 : c0 + length]
                m2 = colsum_y[2, c0 : c0 + length]
                m3 = colsum_y[3, c0 : c0 + length]
                for p in range(length):
                    v0 = np.float64(g0[p])
                    v1 = np.float64(g1[p])
                    v2 = np.float64(g2[p])
                    v3 = np.float64(g3[p])
                    k0[p] += v0
                    k1[p] += v1
                    k2[p] += v2
                    k3[p] += v3
                    # Exact products: a float32 value times a row index fits float64's mantissa.
                    m0[p] += v0 * y
                    m1[p] += v1 * y
                    m2[p] += v2 * y
                    m3[p] += v3 * y
            else:  # the frames left over, one at a time
                for f in range(nf):
                    g = a[i + f, b0 : b0 + length]
                    k = colsum[f, c0 : c0 + length]
                    m = colsum_y[f, c0 : c0 + length]
                    for p in range(length):
                        v = np.float64(g[p])
                        k[p] += v
                        m[p] += v * y
        for f in range(nf):
            t = 0.0
            sy = 0.0
            sx = 0.0
            for c in range(cols):
                t += colsum[f, c]
                sy += colsum_y[f, c]
                sx += colsum[f, c] * c
            dt, dy, dx = _terms(a[i + f], lo, t_index, t_delta, j0, j1, False)
            out_total[i + f] += t + dt
            out_y[i + f] += sy + dy
            out_x[i + f] += sx + dx


def _make_com_runs_int(lane, swap):  # type: ignore[no-untyped-def]
    """The run kernel for integer frames: column sums and each run's sum in ``lane`` (int32
    where they cannot overflow it), four frames per pass over the runs.

    Four frames share each run's loop set-up and its reduction; int32 columns halve the
    stores. Measured on a Zen 3 EPYC (AVX2), one thread, uint16 256 x 256 frames, a disk of
    radius 100: 7.1-7.5 GB/s one frame at a time in int64, 9.1-9.7 four frames in int64,
    12.2 four frames in int32. Run sums in int32 rather than int64 (no widening per pixel),
    a disk of radius 64, alternated: 6.5 -> 8.5 GB/s.
    """

    @_jit
    def com_runs_int(
        a, cols, row_offset, rows, starts, stops, out_total, out_y, out_x, t_index, t_delta
    ):
        lo = row_offset * cols
        hi = (row_offset + rows) * cols
        j0 = np.searchsorted(t_index, lo)
        j1 = np.searchsorted(t_index, hi)
        n = a.shape[0]
        colsum = np.zeros((4, cols), dtype=lane)
        t = np.zeros(4, np.int64)
        sy = np.zeros(4)
        for i in range(0, n, 4):
            nf = min(4, n - i)
            colsum[:] = 0
            t[:] = 0
            sy[:] = 0.0
            for q in range(len(starts)):
                st = starts[q]
                if st < lo or st >= hi:
                    continue
                r = st // cols
                c0 = st - r * cols
                length = stops[q] - st
                if nf == 4:
                    _prefetch_next_quartet(a, i, n, st - lo, length)
                    g0 = a[i, st - lo : st - lo + length]
                    g1 = a[i + 1, st - lo : st - lo + length]
                    g2 = a[i + 2, st - lo : st - lo + length]
                    g3 = a[i + 3, st - lo : st - lo + length]
                    k0 = colsum[0, c0 : c0 + length]
                    k1 = colsum[1, c0 : c0 + length]
                    k2 = colsum[2, c0 : c0 + length]
                    k3 = colsum[3, c0 : c0 + length]
                    s0 = s1 = s2 = s3 = lane(0)
                    for p in range(length):
                        v0 = lane(load(g0[p], swap))
                        v1 = lane(load(g1[p], swap))
                        v2 = lane(load(g2[p], swap))
                        v3 = lane(load(g3[p], swap))
                        s0 = lane(s0 + v0)
                        s1 = lane(s1 + v1)
                        s2 = lane(s2 + v2)
                        s3 = lane(s3 + v3)
                        k0[p] += v0
                        k1[p] += v1
                        k2[p] += v2
                        k3[p] += v3
                    t[0] += s0
                    t[1] += s1
                    t[2] += s2
                    t[3] += s3
                    sy[0] += np.float64(s0) * r
                    sy[1] += np.float64(s1) * r
                    sy[2] += np.float64(s2) * r
                    sy[3] += np.float64(s3) * r
                else:  # the frames left over, one at a time
                    for f in range(nf):
                        g = a[i + f, st - lo : st - lo + length]
                        k = colsum[f, c0 : c0 + length]
                        s = np.int64(0)
                        for p in range(length):
                            v = lane(load(g[p], swap))
                            s += v
                            k[p] += v
                        t[f] += s
                        sy[f] += np.float64(s) * r
            for f in range(nf):
                sx = 0.0
                for c in range(cols):
                    sx += np.float64(colsum[f, c]) * c
                dt, dy, dx = _terms(a[i + f], lo, t_index, t_delta, j0, j1, swap)
                out_total[i + f] += np.float64(t[f]) + dt
                out_y[i + f] += sy[f] + dy
                out_x[i + f] += sx + dx

    return com_runs_int


_com_runs_int = per_byte_order(lambda swap: _make_com_runs_int(np.int64, swap))
# Up to 16 bits and fewer than 2**15 rows and columns: a column's sum and a run's fit int32.
_com_runs_small_int = per_byte_order(lambda swap: _make_com_runs_int(np.int32, swap))


_NO_TERMS = (np.zeros(0, np.intp), np.zeros((0, 3)))


def com_cpu(
    tile3d: np.ndarray,
    spans: MaskSpans,
    row_offset: int,
    out_total: np.ndarray,
    out_y: np.ndarray,
    out_x: np.ndarray,
    swap: bool = False,
    terms: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Centre-of-mass sums over one binary mask given as runs.

    The arguments mean what they mean for :func:`libertem_gpu.kernels.com.cpu`; ``swap``: the
    tile holds unsigned integers in reversed byte order, swapped as they are read; ``terms``:
    sorted flat pixel indices ``(m,)`` and float64 ``(m, 3)`` to add
    ``sum_j frame[index[j]] * delta[j]`` to the three sums of each frame (see
    :class:`libertem_gpu.kernels.com.PixelTerms`).
    """
    if spans.num_masks != 1 or not spans.is_binary:
        raise ValueError("com_cpu needs exactly one binary mask")
    n, rows, cols = tile3d.shape
    if cols != spans.cols or row_offset + rows > spans.rows:
        raise ShapeMismatchError(
            f"tile rows {row_offset}..{row_offset + rows} x {cols} columns do not fit masks of "
            f"{spans.rows} x {spans.cols}"
        )
    a, _ = as_rows(tile3d.reshape(n, rows * cols))
    if n == 0:
        return
    t_index, t_delta = _NO_TERMS if terms is None else terms
    args = (
        a,
        cols,
        row_offset,
        rows,
        spans.starts,
        spans.stops,
        out_total,
        out_y,
        out_x,
        t_index,
        t_delta,
    )
    if a.dtype.kind in "ui" and a.dtype.itemsize <= 4:
        small = a.dtype.itemsize <= 2 and rows < 2**15 and cols < 2**15
        (_com_runs_small_int if small else _com_runs_int)[swap](*args)
    else:
        check_no_swap(swap, a.dtype)
        _com_runs(*args)
