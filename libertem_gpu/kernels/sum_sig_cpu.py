"""Sum over the signal on the CPU (Numba): ``out[i] += tile[i].sum()``; the reference and the
GPU kernel are in :mod:`libertem_gpu.kernels.sum_sig`."""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.kernels import prefetch
from libertem_gpu.kernels.bswap import load, per_byte_order
from libertem_gpu.kernels.prefetch import prefetch_span
from libertem_gpu.kernels.tiles import as_rows, check_no_swap, check_out
from libertem_gpu.kernels.vector_width import prefer_wide_vectors

__all__ = ["cpu"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


# Integer dtypes whose row sums are exact in int64 for any realistic frame (< 2**31 pixels).
_INT_EXACT = frozenset(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.uint32, np.int32))


# Lanes of independent float64 partial sums. Without fastmath LLVM may not reassociate a single
# running sum, so the reduction would run at one add per FP latency; 64 explicit lanes give it an
# element-wise loop it vectorises. The order of additions is fixed, hence results are
# deterministic and independent of the CPU's vector width. 64 rather than 128: two frames' lanes
# then fit the 16 (AVX-512) or nearly the 16 (AVX2) vector registers. One thread, float32 from
# 1 GiB in memory, alternated with 128 lanes on a Zen 4 EPYC: 21.8-24.1 -> 23.9-27.3 GB/s
# (haswell code 20.2-21.8 -> 22.8-23.7); in cache no change.
_LANES = 64


def _make_sum_sig_int(swap):  # type: ignore[no-untyped-def]
    @_jit
    def sum_sig_int(a, npix, out):
        # Integer accumulation: exact, and LLVM vectorises integer reductions without
        # fastmath. 512-bit vectors: +6 % on uint16 (kernel alone, two threads).
        prefer_wide_vectors()
        for i in range(a.shape[0]):
            row = a[i, :npix]
            s = 0
            for p in range(npix):
                s += np.int64(load(row[p], swap))
            out[i] += np.float64(s)

    return sum_sig_int


# 32-bit integers: int64 sums.
_sum_sig_int = per_byte_order(_make_sum_sig_int)

# Pixels per int32 partial sum for integers of up to 16 bits: 32768 values below 2**16 (or of
# magnitude up to 2**15) cannot overflow it.
_SMALL_BLOCK = 32768


def _make_sum_sig_small_int(swap):  # type: ignore[no-untyped-def]
    # No helper kernel in the closure: a dispatcher among the closure variables hashes
    # differently in every process, so Numba's file cache would never find the kernel again.
    @_jit
    def sum_sig_small_int(a, npix, out):
        # int32 partial sums per block of pixels, added in int64: exact. Truncating each add
        # to int32 lets LLVM keep 8 lanes per 256-bit vector (int64 lanes hold 4, and the
        # widening costs an instruction per 4 pixels). Two frames per pass: two read streams
        # per core. One thread, 256 MiB of uint16 in memory, Zen 3 EPYC (AVX2): 9.6 GB/s
        # (int64 sums) -> 11.7 (int32, one frame a pass) -> 13.6 (two frames); the
        # single-threaded floor read 13.2.
        prefer_wide_vectors()
        n = a.shape[0]
        n2 = n - n % 2
        for i in range(0, n2, 2):
            r0 = a[i, :npix]
            r1 = a[i + 1, :npix]
            s0 = 0
            s1 = 0
            for p0 in range(0, npix, _SMALL_BLOCK):
                b0 = r0[p0 : p0 + _SMALL_BLOCK]
                b1 = r1[p0 : p0 + _SMALL_BLOCK]
                t0 = np.int32(0)
                t1 = np.int32(0)
                for p in range(b0.shape[0]):
                    t0 = np.int32(t0 + np.int32(load(b0[p], swap)))
                    t1 = np.int32(t1 + np.int32(load(b1[p], swap)))
                s0 += t0
                s1 += t1
            out[i] += np.float64(s0)
            out[i + 1] += np.float64(s1)
        for i in range(n2, n):
            row = a[i, :npix]
            s = 0
            for p0 in range(0, npix, _SMALL_BLOCK):
                b = row[p0 : p0 + _SMALL_BLOCK]
                t = np.int32(0)
                for p in range(b.shape[0]):
                    t = np.int32(t + np.int32(load(b[p], swap)))
                s += t
            out[i] += np.float64(s)

    return sum_sig_small_int


_sum_sig_small_int = per_byte_order(_make_sum_sig_small_int)


# Bytes ahead of a lanes block where the prefetching float kernel asks for its lines: 512,
# 1024 and 2048 read 0.81, 0.89 and 0.88 of the floor (float32, kernel alone, two threads,
# Sapphire Rapids family).
_PREFETCH_AHEAD = 1024


def _make_sum_sig_float(prefetching):  # type: ignore[no-untyped-def]
    """The float sum over each frame's pixels, two frames per pass (two read streams per core:
    +12 % with 512-bit vectors on page-cached float32, kernel alone on two threads); each frame
    keeps its own lanes, so every sum is formed in the same order as one frame at a time.

    ``prefetching`` asks, for each block of lanes, for the lines ``_PREFETCH_AHEAD`` bytes on
    into L1 (see :func:`~libertem_gpu.kernels.prefetch.prefetch_span`). On a 2-vCPU Xeon of the
    Sapphire Rapids family, float32 from 1 GiB in memory, kernel alone on two threads against
    the floor: 0.75 -> 0.89 (haswell code 0.71 -> 0.84). Hosts whose hardware prefetchers
    follow the rows by themselves (AMD's, :func:`~libertem_gpu.kernels.prefetch.enabled`) take
    the kernel without.
    """

    @_jit
    def sum_sig_float(a, npix, out):
        prefer_wide_vectors()
        acc0 = np.empty(_LANES)
        acc1 = np.empty(_LANES)
        nb = npix // _LANES
        end = nb * _LANES
        block_bytes = _LANES * a.itemsize
        n = a.shape[0]
        n2 = n - n % 2
        for i in range(0, n2, 2):
            r0 = a[i]
            r1 = a[i + 1]
            blocks0 = a[i, :end].reshape((nb, _LANES))
            blocks1 = a[i + 1, :end].reshape((nb, _LANES))
            acc0[:] = 0.0
            acc1[:] = 0.0
            for b in range(nb):
                if prefetching:
                    ahead = b * block_bytes + _PREFETCH_AHEAD
                    prefetch_span(r0, ahead, ahead + block_bytes)
                    prefetch_span(r1, ahead, ahead + block_bytes)
                x0 = blocks0[b]
                x1 = blocks1[b]
                for q in range(_LANES):
                    acc0[q] += np.float64(x0[q])
                    acc1[q] += np.float64(x1[q])
            out[i] += _finish_lanes(acc0, a[i, end:npix])
            out[i + 1] += _finish_lanes(acc1, a[i + 1, end:npix])
        for i in range(n2, n):
            blocks0 = a[i, :end].reshape((nb, _LANES))
            acc0[:] = 0.0
            for b in range(nb):
                x0 = blocks0[b]
                for q in range(_LANES):
                    acc0[q] += np.float64(x0[q])
            out[i] += _finish_lanes(acc0, a[i, end:npix])

    return sum_sig_float


_sum_sig_float = _make_sum_sig_float(prefetching=False)
_sum_sig_float_prefetched = _make_sum_sig_float(prefetching=True)


@_jit
def _finish_lanes(acc, tail):
    # The lanes in order, then the pixels left over from the last whole block of lanes.
    s = 0.0
    for q in range(acc.shape[0]):
        s += acc[q]
    for p in range(tail.shape[0]):
        s += np.float64(tail[p])
    return s


def cpu(tile: np.ndarray, out: np.ndarray, swap: bool = False) -> None:
    """Accumulate per-frame sums: ``out[i] += tile[i].sum()``.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    out : numpy.ndarray
        float64 ``(n,)``, updated in place.
    swap : bool
        The tile holds unsigned integers in reversed byte order; swapped as they are read.

    Notes
    -----
    8- to 32-bit integers are summed exactly per call (int32 partial sums of 32768 pixels for
    up to 16 bits, int64 otherwise), then added to ``out``; int64 and float tiles are summed in
    float64 over 64 fixed lanes.
    """
    a, npix = as_rows(tile)
    check_out(out, (a.shape[0],))
    if a.shape[0] == 0 or npix == 0:
        return
    if a.dtype in _INT_EXACT and a.dtype.itemsize <= 2:
        _sum_sig_small_int[swap](a, npix, out)
    elif a.dtype in _INT_EXACT:
        _sum_sig_int[swap](a, npix, out)
    else:
        check_no_swap(swap, a.dtype)
        (_sum_sig_float_prefetched if prefetch.enabled() else _sum_sig_float)(a, npix, out)
