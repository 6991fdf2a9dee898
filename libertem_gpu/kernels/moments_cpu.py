"""Shifted first and second moments over frames on the CPU (Numba); the reference, the merge
and the GPU kernel are in :mod:`libertem_gpu.kernels.moments`."""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu import host_threads
from libertem_gpu.kernels.cpu_target import target_has
from libertem_gpu.kernels.frame_rows import rows4, rows8
from libertem_gpu.kernels.lanes32 import (
    add_u32,
    as_unsigned_biased,
    below_2_31_as_float64,
    high_half_u32,
    square_u32,
    sub_u32,
    times_2_16_u32,
    u32,
)
from libertem_gpu.kernels.moments import merged_trivially
from libertem_gpu.kernels.pairs16 import PIXELS, in_pixel_order, madd_pair, madd_pairs4
from libertem_gpu.kernels.tiles import as_rows, check_out
from libertem_gpu.kernels.vector_width import prefer_wide_vectors

__all__ = ["cpu", "finalize_sums_into", "merge_sums_into"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


_PIX_BLOCK = 16384  # shift, s1, s2 blocks: 3 x 128 KiB, resident in L2 beside 8 frame rows


@numba.njit(nogil=True, cache=True, inline="always")
def _frame_by_frame(a, first, p0, p1, shift, s1, s2):  # type: ignore[no-untyped-def]
    """Pixels ``p0:p1`` of frames ``first`` on, one frame at a time (Numba only): the frames
    left over after a kernel's passes of several."""
    sh = shift[p0:p1]
    o1 = s1[p0:p1]
    o2 = s2[p0:p1]
    for i in range(first, a.shape[0]):
        r0 = a[i, p0:p1]
        for p in range(p1 - p0):
            d = np.float64(r0[p]) - sh[p]
            o1[p] += d
            o2[p] += d * d


@numba.njit(nogil=True, cache=True, inline="always")
def _pixel_block(p0, npix, shift, s1, s2):  # type: ignore[no-untyped-def]
    """The end, length and the shift's and sums' slices of the block of pixels from ``p0``
    (Numba only): the loops below work block by block, so that the three stay in L2."""
    p1 = min(p0 + _PIX_BLOCK, npix)
    return p1, p1 - p0, shift[p0:p1], s1[p0:p1], s2[p0:p1]


@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _in_order_block(a, p0, p1, shift, s1, s2):  # type: ignore[no-untyped-def]
    """Pixels ``p0:p1`` of every frame in frame order, as ``_moments`` adds them (the same
    bits): the integer kernels' way for a block whose shifts are not whole."""
    _frame_by_frame(a, 0, p0, p1, shift, s1, s2)


@numba.njit(nogil=True, cache=True, inline="always", fastmath={"contract"})
def _four_frames(a, i, p0, p1, shift, s1, s2):  # type: ignore[no-untyped-def]
    """Pixels ``p0:p1`` of frames ``i`` to ``i + 3`` in one pass over the sums, added in frame
    order (Numba only): tiles of four frames' row slabs of large frames (see
    ``plan.choose_scheme``), whose sums do not stay in any cache, read and write them once
    instead of four times."""
    r0, r1, r2, r3 = rows4(a, i, p0, p1)
    sh = shift[p0:p1]
    o1 = s1[p0:p1]
    o2 = s2[p0:p1]
    for p in range(p1 - p0):
        c = sh[p]
        d0 = np.float64(r0[p]) - c
        d1 = np.float64(r1[p]) - c
        d2 = np.float64(r2[p]) - c
        d3 = np.float64(r3[p]) - c
        o1[p] = (((o1[p] + d0) + d1) + d2) + d3
        o2[p] = (((o2[p] + d0 * d0) + d1 * d1) + d2 * d2) + d3 * d3


@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _moments(a, npix, shift, s1, s2):  # type: ignore[no-untyped-def]
    """The float64 moments loop, eight frames per pass (an eighth of the accumulator traffic),
    added in frame order, so that results equal the one-frame-at-a-time loop whatever the
    tiling: the kernel for float frames and integers wider than 16 bits.

    Fused multiply-add for the squares (contraction only, no reassociation): 7-10% faster.
    """
    prefer_wide_vectors()
    n = a.shape[0]
    n8 = n - n % 8
    n4 = n - n % 4
    for p0 in range(0, npix, _PIX_BLOCK):
        p1, m, sh, o1, o2 = _pixel_block(p0, npix, shift, s1, s2)
        for i in range(0, n8, 8):
            r0, r1, r2, r3, r4, r5, r6, r7 = rows8(a, i, p0, p1)
            for p in range(m):
                c = sh[p]
                d0 = np.float64(r0[p]) - c
                d1 = np.float64(r1[p]) - c
                d2 = np.float64(r2[p]) - c
                d3 = np.float64(r3[p]) - c
                d4 = np.float64(r4[p]) - c
                d5 = np.float64(r5[p]) - c
                d6 = np.float64(r6[p]) - c
                d7 = np.float64(r7[p]) - c
                o1[p] = (((((((o1[p] + d0) + d1) + d2) + d3) + d4) + d5) + d6) + d7
                q = o2[p] + d0 * d0
                q = (((q + d1 * d1) + d2 * d2) + d3 * d3) + d4 * d4
                o2[p] = ((q + d5 * d5) + d6 * d6) + d7 * d7
        for i in range(n8, n4, 4):
            _four_frames(a, i, p0, p1, shift, s1, s2)
        _frame_by_frame(a, n4, p0, p1, shift, s1, s2)


# 8-bit integers, and 16-bit ones where the compiled code has no AVX2 (on the Zen 4 VM, one
# thread, 8 MiB in L3: uint8 17.7-23.0 GB/s against 10.7-11.0 in 64-bit lanes, int8 17.2-19.1
# against 9.2-11.3; on a Xeon of the Sapphire Rapids family, 2026-12-05, StdDevUDF over 1 GiB
# of uint8, A/B in fresh processes: 1.76x the floats made by an OR it replaced there): sums of
# the values and of their squares in 32-bit integer lanes (eight to an AVX2 vector, four for
# float64), turned into the shifted sums once per pixel block and at most ``_LANE_FRAMES``
# frames. Signed values are biased by half their range first (their sign bit flipped), the
# shift with them, which leaves every deviation as it was.
# A square of a 16-bit value fits 32 bits, but their sum does not: the lanes keep it modulo
# 2**32 together with the sum of the squares' upper halves, which gives the lost carries back
# (see ``_add_lane_sums``). About 0.9 vector operations per value and frame against 1.4 for the
# float64 loops they replace (unsigned values made floats by an OR, six frames a pass; signed
# ones converted, eight frames pairwise). Measured compiled for haswell on a 2-vCPU Zen 4 VM:
# 1 GiB of page-cached uint16, two threads, kernel alone, 14.8-15.2 -> 20.8-23.0 GB/s; one
# thread on 64 MiB of int16 in memory, 8.2 -> 11.8-12.5 GB/s.
_LANE_FRAMES = 4096  # frames per round of the lanes: their sums stay below 2**28


@numba.njit(nogil=True, cache=True, inline="always")
def _shift_in_value_range(sh, bias):  # type: ignore[no-untyped-def]
    """Whether every shift of a pixel block plus ``bias`` is a whole number in ``[0, 2**16)``, as
    the 32-bit lanes' conversion to shifted sums needs to stay exact (Numba only; NaN fails)."""
    bad = False
    for p in range(sh.shape[0]):
        v = sh[p] + bias
        bad |= (v < 0.0) | (v >= 65536.0) | (v != np.floor(v)) | (v != v)
    return not bad


@numba.njit(nogil=True, cache=True, inline="always")
def _lane_sums(a, first, stop, p0, p1, lanes):  # type: ignore[no-untyped-def]
    """Add pixels ``p0:p1`` of frames ``first:stop`` into the lanes (Numba only): rows ``sq``
    the squares modulo 2**32, ``hi`` their upper 16 bits, ``sx`` the values; signed values
    biased (``as_unsigned_biased``)."""
    sq, hi, sx = lanes[0], lanes[1], lanes[2]
    m = p1 - p0
    stop4 = stop - (stop - first) % 4
    for i in range(first, stop4, 4):
        r0, r1, r2, r3 = rows4(a, i, p0, p1)
        for p in range(m):
            v0 = as_unsigned_biased(r0[p])
            v1 = as_unsigned_biased(r1[p])
            v2 = as_unsigned_biased(r2[p])
            v3 = as_unsigned_biased(r3[p])
            y0 = square_u32(v0)
            y1 = square_u32(v1)
            y2 = square_u32(v2)
            y3 = square_u32(v3)
            sq[p] = add_u32(sq[p], add_u32(add_u32(y0, y1), add_u32(y2, y3)))
            h = add_u32(add_u32(high_half_u32(y0), high_half_u32(y1)), high_half_u32(y2))
            hi[p] = add_u32(hi[p], add_u32(h, high_half_u32(y3)))
            x = add_u32(add_u32(u32(v0), u32(v1)), add_u32(u32(v2), u32(v3)))
            sx[p] = add_u32(sx[p], x)
    for i in range(stop4, stop):
        r0 = a[i, p0:p1]
        for p in range(m):
            v0 = as_unsigned_biased(r0[p])
            y0 = square_u32(v0)
            sq[p] = add_u32(sq[p], y0)
            hi[p] = add_u32(hi[p], high_half_u32(y0))
            sx[p] = add_u32(sx[p], u32(v0))


@numba.njit(nogil=True, cache=True, inline="always")
def _add_lane_sums(n, sh, bias, lanes, o1, o2):  # type: ignore[no-untyped-def]
    """Add the lanes' sums over ``n <= _LANE_FRAMES`` frames of values biased by ``bias`` to
    the shifted sums (Numba only).

    The squares' sum is ``hi * 2**16 + low``, where ``low``, the sum of their lower halves, is
    below ``n * 2**16 <= 2**28``: so it is the lanes' ``sq - hi * 2**16`` modulo 2**32. With
    ``0 <= c < 2**16`` every term below is a whole number under 2**46: exact in float64, in any
    order, as the float64 loop's sums are (the same bits while the sums stay below 2**53).
    """
    sq, hi, sx = lanes[0], lanes[1], lanes[2]
    for p in range(o1.shape[0]):
        c = sh[p] + bias
        low = sub_u32(sq[p], times_2_16_u32(hi[p]))
        squares = below_2_31_as_float64(hi[p]) * 65536.0 + below_2_31_as_float64(low)
        values = below_2_31_as_float64(sx[p])
        o1[p] += values - n * c
        o2[p] += (squares - 2.0 * c * values) + n * c * c


def _make_lane_moments(lanes_of, lane_type, n_lanes, round_frames):  # type: ignore[no-untyped-def]
    """The moments kernel over integer lanes: per pixel block whose shifts the lanes can take
    (``_shift_in_value_range``; others in frame order), in rounds of at most ``round_frames``
    frames, one helper (``_lane_sums(a, first, stop, p0, p1, lanes)`` or its like) sums the
    round's frames into ``n_lanes`` rows of ``lane_type`` lanes and another
    (``_add_lane_sums(n, sh, bias, lanes, o1, o2)`` or its like) turns them into the shifted
    sums. Signed values are biased by ``bias``, the shift with them.

    ``lanes_of`` names the pair: ``"values"`` (``_lane_sums``, ``_add_lane_sums``) or
    ``"pairs"`` (``_pair_sums``, ``_add_pair_sums``). A name, not the helpers: the closure
    holds plain values only, the helpers being called in branches on them, which Numba prunes.
    A dispatcher among a closure's variables pickles differently in every process, and Numba
    keys its file cache by them, so the kernel compiled again in every process
    (``tests/kernels/test_cpu_cache.py``)."""
    if lanes_of not in ("values", "pairs"):
        raise ValueError(f"lanes_of must be 'values' or 'pairs', not {lanes_of!r}")
    pairs = lanes_of == "pairs"

    @numba.njit(nogil=True, cache=True)
    def lane_moments(a, npix, shift, s1, s2, bias):
        prefer_wide_vectors()
        n = a.shape[0]
        storage = np.empty(n_lanes * _PIX_BLOCK, lane_type)
        for p0 in range(0, npix, _PIX_BLOCK):
            p1, m, sh, o1, o2 = _pixel_block(p0, npix, shift, s1, s2)
            if not _shift_in_value_range(sh, bias):
                _in_order_block(a, p0, p1, shift, s1, s2)
                continue
            # C-contiguous rows of exactly m lanes: a slice lanes[:, :m] of a 2-D array has
            # rows of unknown stride to Numba, whose loops over them LLVM did not vectorise
            lanes = storage[: n_lanes * m].reshape((n_lanes, m))
            for first in range(0, n, round_frames):
                stop = min(first + round_frames, n)
                lanes[:] = 0
                if pairs:
                    _pair_sums(a, first, stop, p0, p1, lanes)
                    _add_pair_sums(stop - first, sh, bias, lanes, o1, o2)
                else:
                    _lane_sums(a, first, stop, p0, p1, lanes)
                    _add_lane_sums(stop - first, sh, bias, lanes, o1, o2)

    return lane_moments


_moments_lanes = _make_lane_moments("values", np.uint32, 3, _LANE_FRAMES)


# 16-bit integers with AVX2 (AVX-512 too): the same three
# rows of 32-bit lanes as ``_lane_sums``, filled two frames at a time by ``vpmaddwd``
# (:mod:`libertem_gpu.kernels.pairs16`): the values made signed (``v - 32768`` for unsigned ones;
# signed ones as they are), each pixel's two values side by side, then one instruction gives the
# two squares' sum and one the two values' sum, eight frames per pass over the lanes. About 0.6
# vector operations per value and frame against 0.9 for ``_lane_sums``. One thread on the 2-vCPU
# Zen 4 VM, uint16, haswell code against the 32-bit lanes: 256 frames of 8192 pixels (in L2)
# 24.0 -> 33.0 GB/s, 64 frames of 65536 (L3) 20.8 -> 26.4, 1024 frames (streaming) 15.3 -> 19.8,
# 8 frames level; host code against the 64-bit lanes: 24.0 -> 38.4, 21.6 -> 26.7, 19.0 -> 19.6.


@numba.njit(nogil=True, cache=True, inline="always")
def _pair_sums(a, first, stop, p0, p1, lanes):  # type: ignore[no-untyped-def]
    """Add pixels ``p0:p1`` of frames ``first:stop`` into the lanes (Numba only): the pixels of
    whole runs of sixteen in ``pairs16.PAIR_ORDER``, eight frames a pass, then two, then the
    last one alone; the rest one by one, in place."""
    m = p1 - p0
    m16 = m - m % PIXELS
    stop8 = stop - (stop - first) % 8
    for i in range(first, stop8, 8):
        for c in range(0, m16, PIXELS):
            madd_pairs4(a, i, False, p0 + c, lanes, c)
    for i in range(stop8, stop, 2):
        alone = i + 1 == stop
        for c in range(0, m16, PIXELS):
            madd_pair(a, i, alone, p0 + c, lanes, c)
    sq, cy, sx = lanes[0], lanes[1], lanes[2]
    for i in range(first, stop):
        row = a[i]
        for p in range(m16, m):
            s = _signed16(row[p0 + p])
            q = np.uint32(s * s)
            sq[p] = add_u32(sq[p], q)
            cy[p] = add_u32(cy[p], high_half_u32(q))
            sx[p] = add_u32(sx[p], np.uint32(s & 0xFFFFFFFF))


@numba.njit(nogil=True, cache=True, inline="always")
def _signed16(x):  # type: ignore[no-untyped-def]
    """A 16-bit value as ``_pair_sums`` takes it (Numba only): ``x - 32768`` if unsigned, as it
    is if signed."""
    return np.int64(as_unsigned_biased(x)) - 32768


@numba.njit(nogil=True, cache=True, inline="always")
def _add_pair_sums(n, sh, bias, lanes, o1, o2):  # type: ignore[no-untyped-def]
    """Add ``_pair_sums``' lanes over ``n <= _LANE_FRAMES`` frames to the shifted sums (Numba
    only). The values were taken as ``s = v + bias - 32768``, so the shift is
    ``sh + bias - 32768`` for them. The squares' sum is restored as in ``_add_lane_sums``; every
    term is a whole number below 2**44, exact in float64 in any order."""
    m = o1.shape[0]
    m16 = m - m % PIXELS
    sq, cy, sx = lanes[0], lanes[1], lanes[2]
    # lanes into pixel order first, so that the conversion runs over contiguous lanes and
    # pixels and vectorises (by PAIR_ORDER, lane by lane, it did not: 1.5-2x slower tiles)
    in_pixel_order(sq, m16)
    in_pixel_order(cy, m16)
    in_pixel_order(sx, m16)
    _add_pair_lanes(n, sh, bias, sq, cy, sx, o1, o2, m)


@numba.njit(nogil=True, cache=True, inline="always")
def _add_pair_lanes(n, sh, bias, sq, cy, sx, o1, o2, count):  # type: ignore[no-untyped-def]
    """The first ``count`` lanes into the first ``count`` pixels' shifted sums (Numba only)."""
    for k in range(count):
        c = sh[k] + bias - 32768.0
        low = sub_u32(sq[k], times_2_16_u32(cy[k]))
        squares = below_2_31_as_float64(cy[k]) * 65536.0 + below_2_31_as_float64(low)
        values = np.float64(np.int32(sx[k]))
        o1[k] += values - n * c
        o2[k] += (squares - 2.0 * c * values) + n * c * c


_moments_pairs = _make_lane_moments("pairs", np.uint32, 3, _LANE_FRAMES)


_SMALL_INTS = frozenset(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16))


def cpu(tile: np.ndarray, shift: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> None:
    """Accumulate shifted sums: ``s1 += sum_i (x_i - shift)``, ``s2 += sum_i (x_i - shift)**2``.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    shift : numpy.ndarray
        float64 ``(npix,)``; keep it fixed for all tiles of one accumulation.
    s1, s2 : numpy.ndarray
        float64 ``(npix,)``, updated in place.
    """
    a, npix = as_rows(tile)
    check_out(shift, (npix,), "shift", writable=False)
    check_out(s1, (npix,), "s1")
    check_out(s2, (npix,), "s2")
    if a.shape[0] == 0 or npix == 0:
        return
    if a.dtype in _SMALL_INTS:  # blocks whose shifts are not whole: frame order, in float64
        # Integer lanes on every CPU. On a Xeon of the Sapphire Rapids family (2026-12-05;
        # StdDevUDF over 1 GiB, A/B in fresh processes, results/2026-12-05-ab-cpu-vm-std-
        # lanes-*.json) they beat the floats made by an OR that Intel's AVX-512 cores took
        # before: uint16 1.33x, uint8 1.76x; int16 took 64-bit lanes there, 1.02x. On Zen 4
        # the vpmaddwd pairs beat the 64-bit lanes (one thread: 64 frames in L3 21.6 -> 26.7
        # GB/s, 256 frames in L2 24.0 -> 38.4).
        bias = 0.0 if a.dtype.kind == "u" else float(2 ** (8 * a.dtype.itemsize - 1))
        if a.dtype.itemsize == 2 and target_has("avx2"):
            _moments_pairs(a, npix, shift, s1, s2, bias)
        else:  # 8-bit frames (each byte would fill 8 bytes of 64-bit lanes), or no AVX2
            _moments_lanes(a, npix, shift, s1, s2, bias)
    else:
        _moments(a, npix, shift, s1, s2)


# --- the in-place forms of finalize and merge, in one pass ---
#
# :func:`libertem_gpu.kernels.moments.finalize_sums_into` and ``merge_sums_into`` in NumPy take
# six and seven passes over chunks of the sums: 0.17 and 0.18 ms for a 256 x 256 frame, once
# per partition each (merges on the client, while the workers work), which with partitions of
# 16 MiB was a tenth of StdDevUDF's run. These loops do the same float64 operations in the
# same order, without fastmath: the same bits.


@_jit
def _finalize(n, shift, s1, s2):  # type: ignore[no-untyped-def]
    for i in range(s1.shape[0]):
        a = s1[i]
        d = a / n
        d *= a
        v = s2[i] - d
        if v < 0.0:  # as np.maximum(v, 0.0): NaN and -0.0 stay
            v = 0.0
        s2[i] = v
        c = shift[i] * n
        shift[i] = c
        s1[i] = a + c


@_jit
def _merge(n_a, s1_a, m2_a, n_b, s1_b, m2_b, c):  # type: ignore[no-untyped-def]
    for i in range(s1_a.shape[0]):
        delta = s1_b[i] / n_b
        delta -= s1_a[i] / n_a
        delta *= delta
        delta *= c
        m2_a[i] = (m2_a[i] + m2_b[i]) + delta
        s1_a[i] += s1_b[i]


def finalize_sums_into(n: int, shift: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> None:
    """:func:`libertem_gpu.kernels.moments.finalize_sums_into` on NumPy arrays, in one pass
    and bit for bit as there."""
    if n > 0:
        _finalize(n, shift, s1, s2)


def merge_sums_into(
    n_a: int, s1_a: np.ndarray, m2_a: np.ndarray, n_b: int, s1_b: np.ndarray, m2_b: np.ndarray
) -> None:
    """:func:`libertem_gpu.kernels.moments.merge_sums_into` on NumPy arrays, in one pass and
    bit for bit as there."""
    if merged_trivially(n_a, s1_a, m2_a, n_b, s1_b, m2_b):
        return
    c = n_a * n_b / (n_a + n_b)
    # on the client, where the last merge waits for nothing else (see host_threads)
    host_threads.map_flat(
        lambda a1, a2, b1, b2: _merge(n_a, a1, a2, n_b, b1, b2, c), s1_a, m2_a, s1_b, m2_b
    )
