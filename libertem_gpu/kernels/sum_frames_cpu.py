"""Sum over frames on the CPU (Numba): ``out += tile.sum(axis=0)``; the reference and the GPU
kernel are in :mod:`libertem_gpu.kernels.sum_frames`."""

from __future__ import annotations

import threading

import numba
import numpy as np

from libertem_gpu.kernels import prefetch
from libertem_gpu.kernels.bswap import load, per_byte_order
from libertem_gpu.kernels.frame_rows import rows4, rows8
from libertem_gpu.kernels.prefetch import prefetch_span
from libertem_gpu.kernels.tiles import as_rows, check_no_swap, check_out
from libertem_gpu.kernels.vector_width import prefer_wide_vectors

__all__ = ["cpu"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


# Pixels per block: 65536 float64 accumulators (512 KiB) stay in L2 while all frames of the tile
# stream past, whatever the frame size.
_PIX_BLOCK = 65536
# Pixels per prefetched chunk of the two-frame loops: 2 KiB of 16-bit or 32-bit frames. Chunks
# are of a fixed length, so that LLVM vectorises them (a chunk cut short at the end of a row
# stopped it); the rest of a row is added plainly. 2 KiB measured best: 1 KiB and 4 KiB chunks
# of uint16 read 0.80 and 0.73 of the floor against 0.88.
_INT_CHUNK = 1024
_FLOAT_CHUNK = 512
# Bytes ahead of a chunk's start where its prefetch begins: 256 and 768 read 0.85 and 0.78
# against 0.88 (uint16 pairs).
_AHEAD = 512


@numba.njit(nogil=True, cache=True, inline="always")
def _pixel_block(p0, npix, out):  # type: ignore[no-untyped-def]
    """The end, length and sums' slice of the block of pixels from ``p0`` (Numba only): every
    loop below works block by block, so that the block's sums stay in L2."""
    p1 = min(p0 + _PIX_BLOCK, npix)
    return p1, p1 - p0, out[p0:p1]


@numba.njit(nogil=True, cache=True, inline="always")
def _prefetch_pair(r0, r1, start, length):  # type: ignore[no-untyped-def]
    """Ask for ``length`` bytes of two rows from ``start + _AHEAD`` on (Numba only): mostly the
    lines of the chunk about to be read, all at once, so that a thread keeps more reads in
    flight than its loads alone would (see :func:`~libertem_gpu.kernels.prefetch.prefetch_span`)."""
    b0 = start + _AHEAD
    b1 = b0 + length
    prefetch_span(r0, b0, b1)
    prefetch_span(r1, b0, b1)


@_jit
def _sum_frames(a, npix, out):
    prefer_wide_vectors()
    n = a.shape[0]
    n2 = n - n % 2
    for p0 in range(0, npix, _PIX_BLOCK):
        p1, m, o = _pixel_block(p0, npix, out)
        # Two frames per pass over the accumulators, added in float64 first: two read streams
        # and half the accumulators' load/store traffic. Converting to float64 is exact, so
        # this differs from the sequential loop by float64 rounding only. Measured on 1 GiB of
        # page-cached float32 on two threads, kernel alone, each pass alternated with the
        # floor: 0.84 with four frames a pass -> 0.88 (haswell code, AVX2 only: 0.86 either
        # way). In chunks, each prefetched (see _prefetch_pair): 0.96 -> 1.00 (haswell 0.93 ->
        # 0.97).
        nc = m // _FLOAT_CHUNK
        for i in range(0, n2, 2):
            r0 = a[i, p0:p1]
            r1 = a[i + 1, p0:p1]
            for c in range(nc):
                c0 = c * _FLOAT_CHUNK
                _prefetch_pair(r0, r1, c0 * a.itemsize, _FLOAT_CHUNK * a.itemsize)
                y0 = r0[c0 : c0 + _FLOAT_CHUNK]
                y1 = r1[c0 : c0 + _FLOAT_CHUNK]
                oc = o[c0 : c0 + _FLOAT_CHUNK]
                for p in range(_FLOAT_CHUNK):
                    oc[p] += np.float64(y0[p]) + np.float64(y1[p])
            for p in range(nc * _FLOAT_CHUNK, m):
                o[p] += np.float64(r0[p]) + np.float64(r1[p])
        for i in range(n2, n):
            r0 = a[i, p0:p1]
            for p in range(m):
                o[p] += np.float64(r0[p])


@_jit
def _sum_frames_4(a, npix, out):
    """The float sum over frames for hosts that do not prefetch (see
    :func:`~libertem_gpu.kernels.prefetch.enabled`): four frames a pass, no chunks. On a Zen 4
    EPYC, 1 GiB of page-cached float32, kernel alone on two threads alternated with the floor:
    1.01-1.02 of it, against 0.67 for the prefetched pairs of :func:`_sum_frames` (0.90-1.0
    unprefetched)."""
    prefer_wide_vectors()
    n = a.shape[0]
    n4 = n - n % 4
    for p0 in range(0, npix, _PIX_BLOCK):
        p1, m, o = _pixel_block(p0, npix, out)
        for i in range(0, n4, 4):
            r0, r1, r2, r3 = rows4(a, i, p0, p1)
            for p in range(m):
                o[p] += (np.float64(r0[p]) + np.float64(r1[p])) + (
                    np.float64(r2[p]) + np.float64(r3[p])
                )
        for i in range(n4, n):
            r0 = a[i, p0:p1]
            for p in range(m):
                o[p] += np.float64(r0[p])


# Frames of up to 16 bits summed into one int32 partial sum per pixel before it is added into
# float64: 32768 * 65535 < 2**31 (and 32-bit ones into int64, far from its end).
_PAIR_FLUSH = 32768


@numba.njit(nogil=True, cache=True, inline="always")
def _add_few(a, f0, n4, f1, p0, p1, o, lane, swap):  # type: ignore[no-untyped-def]
    """Add pixels ``p0:p1`` of frames ``f0:f1`` (fewer than eight; four at once from ``f0`` to
    ``n4``) to the float64 sums ``o`` directly (Numba only): for so few frames the tile-wide
    accumulator costs more than it saves (one thread, tiles of four frames of 4M pixels: 62
    against 71 ms)."""
    for i in range(f0, n4, 4):
        r0, r1, r2, r3 = rows4(a, i, p0, p1)
        for p in range(p1 - p0):
            s01 = lane(load(r0[p], swap)) + lane(load(r1[p], swap))
            s23 = lane(load(r2[p], swap)) + lane(load(r3[p], swap))
            o[p] += np.float64(lane(s01 + s23))
    for i in range(n4, f1):
        r0 = a[i, p0:p1]
        for p in range(p1 - p0):
            o[p] += np.float64(load(r0[p], swap))


def _make_int_sum(lane, swap):  # type: ignore[no-untyped-def]
    """The integer sum over frames into a tile-wide accumulator per pixel of ``lane`` (a NumPy
    integer type, ``acc`` at least ``_PIX_BLOCK`` long), eight frames a pass, converted to
    float64 once per pixel block and ``_PAIR_FLUSH`` frames; elements are byte-swapped as they
    are read if ``swap`` (see ``per_byte_order``).

    Integer adds vectorise where a chain of float adds cannot (fastmath is off), and the result
    is exact: each pixel's partial sum is an integer below 2**53.

    The accumulator takes the tile's sums where the float64 sums took each pass's before: an
    eight-frame pass then loads and stores 32-bit lanes only, with no conversion. One thread,
    uint16 tiles in memory, alternated (median of eight): 512 frames of 65536 pixels 27.2 ->
    24.3 ms, stacks of 32 row slabs of 1M pixels 53.4 -> 51.5 ms (haswell code 29.4 -> 25.2,
    35.4 -> 29.8). Two threads on 1 GiB of page-cached uint16 alternated with the floor (25
    rounds, each run 0.2 s after the floor): 41.8-44.0 -> 39.5-42.8 ms. Fewer than eight frames
    go straight into the float64 sums (``_add_few``).
    """

    @_jit
    def int_sum(a, npix, out, acc):
        prefer_wide_vectors()  # 512-bit vectors: +4 % on uint16 (kernel alone, two threads)
        n = a.shape[0]
        for p0 in range(0, npix, _PIX_BLOCK):
            p1, m, o = _pixel_block(p0, npix, out)
            ac = acc[:m]
            for f0 in range(0, n, _PAIR_FLUSH):
                f1 = min(f0 + _PAIR_FLUSH, n)
                n8 = f1 - (f1 - f0) % 8
                n4 = f1 - (f1 - f0) % 4
                if n8 == f0:  # under eight frames: straight into the float64 sums
                    _add_few(a, f0, n4, f1, p0, p1, o, lane, swap)
                    continue
                ac[:] = 0
                for i in range(f0, n8, 8):
                    r0, r1, r2, r3, r4, r5, r6, r7 = rows8(a, i, p0, p1)
                    for p in range(m):
                        s01 = lane(load(r0[p], swap)) + lane(load(r1[p], swap))
                        s23 = lane(load(r2[p], swap)) + lane(load(r3[p], swap))
                        s45 = lane(load(r4[p], swap)) + lane(load(r5[p], swap))
                        s67 = lane(load(r6[p], swap)) + lane(load(r7[p], swap))
                        ac[p] = lane(ac[p] + lane((s01 + s23) + (s45 + s67)))
                # Four frames left (tiles of four frames' row slabs of large frames, see
                # plan.choose_scheme): one pass over the sums instead of four.
                for i in range(n8, n4, 4):
                    r0, r1, r2, r3 = rows4(a, i, p0, p1)
                    for p in range(m):
                        s01 = lane(load(r0[p], swap)) + lane(load(r1[p], swap))
                        s23 = lane(load(r2[p], swap)) + lane(load(r3[p], swap))
                        ac[p] = lane(ac[p] + lane(s01 + s23))
                for i in range(n4, f1):
                    r0 = a[i, p0:p1]
                    for p in range(m):
                        ac[p] = lane(ac[p] + lane(load(r0[p], swap)))
                for p in range(m):
                    o[p] += np.float64(ac[p])

    return int_sum


# Tiles of at least this many frames are summed two frames at a time into a tile-wide int32
# accumulator; shallower tiles (row slabs of large frames) would flush it too often.
_PAIR_MIN_FRAMES = 16


def _make_pair_sum(swap):  # type: ignore[no-untyped-def]
    """The sum over frames of integers of up to 16 bits: two frames per pass into an int32
    accumulator per pixel (``acc``, at least ``_PIX_BLOCK`` long), added into float64 once per
    ``_PAIR_FLUSH`` frames; elements are byte-swapped as they are read if ``swap``.

    Two read streams and half the accumulator traffic of float64, read in chunks of
    ``_INT_CHUNK`` pixels, each prefetched (see :func:`_prefetch_pair`). On 1 GiB of
    page-cached uint16, kernel alone on two threads of Sapphire Rapids, each pass alternated
    with the floor: 0.83 -> 0.88 against the same loop unchunked and not prefetched (which had
    replaced the eight-frame kernel on AVX-512: 0.80 -> 0.94 then). Compiled for haswell
    (AVX2 only), where the unchunked pair loop had lost to the eight-frame kernel (0.77
    against 0.81), 0.74 (eight frames) -> 0.92: prefetched eight-frame passes fell to 0.63,
    eight streams asking for too much at once. Whole runs (SumUDF, 1 GiB, same-minute A/B):
    1.21x on haswell code, 0.99x on AVX-512, where float32 frames gained 1.06x (haswell 1.04x).
    """

    @_jit
    def pair_sum(a, npix, out, acc):
        prefer_wide_vectors()
        n = a.shape[0]
        for p0 in range(0, npix, _PIX_BLOCK):
            p1, m, o = _pixel_block(p0, npix, out)
            nc = m // _INT_CHUNK
            for f0 in range(0, n, _PAIR_FLUSH):
                f1 = min(f0 + _PAIR_FLUSH, n)
                odd = f1 - (f1 - f0) % 2
                acc[:m] = 0
                for i in range(f0, odd, 2):
                    r0 = a[i, p0:p1]
                    r1 = a[i + 1, p0:p1]
                    for c in range(nc):
                        c0 = c * _INT_CHUNK
                        _prefetch_pair(r0, r1, c0 * a.itemsize, _INT_CHUNK * a.itemsize)
                        y0 = r0[c0 : c0 + _INT_CHUNK]
                        y1 = r1[c0 : c0 + _INT_CHUNK]
                        ac = acc[c0 : c0 + _INT_CHUNK]
                        for p in range(_INT_CHUNK):
                            ac[p] += np.int32(load(y0[p], swap)) + np.int32(load(y1[p], swap))
                    for p in range(nc * _INT_CHUNK, m):
                        acc[p] += np.int32(load(r0[p], swap)) + np.int32(load(r1[p], swap))
                if odd < f1:
                    r0 = a[odd, p0:p1]
                    for p in range(m):
                        acc[p] += np.int32(load(r0[p], swap))
                for p in range(m):
                    o[p] += np.float64(acc[p])

    return pair_sum


_pair_sum = per_byte_order(_make_pair_sum)
_scratch = threading.local()


def _accumulator(dtype: type[np.integer] = np.int32) -> np.ndarray:
    """This thread's integer accumulator of ``dtype`` for the integer sums (``_PIX_BLOCK``
    long, kept for the thread: 256 KiB of int32, 512 KiB of int64)."""
    accs = getattr(_scratch, "accs", None)
    if accs is None:
        accs = _scratch.accs = {}
    acc = accs.get(dtype)
    if acc is None:
        acc = accs[dtype] = np.empty(_PIX_BLOCK, dtype)
    return acc


# 32-bit integers: int64 lanes.
_sum_frames_int = per_byte_order(lambda swap: _make_int_sum(np.int64, swap))
# Integers of up to 16 bits: int32 lanes (eight 16-bit values cannot overflow them; LLVM narrows
# the adds since it knows the operands' width), converted with one int32 -> float64 instruction.
# Without AVX-512 there is no vector int64 -> float64 conversion, so int64 lanes were converted
# one by one: measured on a Zen 3 EPYC (AVX2), one thread on 256 MiB of uint16 in memory,
# 9.3 -> 15.4 GB/s (single-threaded floor: 14.6 GB/s).
_sum_frames_small_int = per_byte_order(lambda swap: _make_int_sum(np.int32, swap))


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
    prefetching = prefetch.enabled()
    if a.dtype.kind in "ui" and a.dtype.itemsize <= 2:
        # Without software prefetch (AMD) the eight-frame passes are the faster loop: on a
        # Zen 4 EPYC, kernel alone, 0.93-0.98 of the floor against 0.84 for unprefetched pairs.
        if prefetching and a.shape[0] >= _PAIR_MIN_FRAMES:
            _pair_sum[swap](a, npix, out, _accumulator())
        else:
            _sum_frames_small_int[swap](a, npix, out, _accumulator())
    elif a.dtype.kind in "ui" and a.dtype.itemsize <= 4:
        _sum_frames_int[swap](a, npix, out, _accumulator(np.int64))
    else:
        check_no_swap(swap, a.dtype)
        (_sum_frames if prefetching else _sum_frames_4)(a, npix, out)
