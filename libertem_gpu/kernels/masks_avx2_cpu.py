"""Mask kernels written for CPUs without AVX-512 (Numba): the several-masks kernel ``out +=
tile @ masks.T`` on packed masks (see :func:`libertem_gpu.kernels.masks_cpu.pack_dense`), a
register block of 6 frames x 2 masks, and the single mask (float32 sums over three frames per
pass, float64 over four). The float32 single mask also serves 8- and 16-bit frames on AVX-512,
four frames a pass (:data:`dot1_4frames_wide`).

The blocked kernel in :mod:`.masks_cpu` keeps 5 frames x 4 masks = 20 vector sums, which fit
AVX-512's 32 registers. AVX2 has 16: LLVM kept most of the 20 sums on the stack, a store and a
load around every multiply-add. Measured on a Zen 3 EPYC (AVX2), one thread, 16 float32 masks
on 256 x 256 frames, against 5 x 4: 6 x 2 (12 sums) 2.1 -> 2.8 GB/s on uint16, 3.5 -> 4.4 on
float32; 4 x 2 1.97 / 4.07, 3 x 4 1.84 / 2.88, 8 x 2 (spills again) 1.34 / 3.05.
"""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.kernels.frame_rows import rows4
from libertem_gpu.kernels.prefetch import prefetch_span
from libertem_gpu.kernels.vector_width import prefer_wide_vectors

__all__ = [
    "blocked_6x2",
    "blocked_6x2_single",
    "dot1_3frames",
    "dot1_4frames_f64",
    "dot1_4frames_plain",
    "dot1_4frames_wide",
]


def _make_blocked_6x2(lane_type):  # type: ignore[no-untyped-def]
    """Build the kernel with sums over one pixel chunk formed in ``lane_type`` and added up
    over chunks in float64 (as the AVX-512 kernel does)."""

    # "reassoc" lets LLVM split each sum into vector lanes; "contract" gives fused
    # multiply-adds.
    @numba.njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
    def blocked(a, npix, packed, chunk, out):
        n = a.shape[0]
        k = packed.shape[1]
        n6 = n - n % 6
        k2 = k - k % 2
        tot = np.zeros((n, k))
        for c in range(packed.shape[0]):
            p0 = c * chunk
            p1 = min(p0 + chunk, npix)
            m = p1 - p0
            mc = packed[c]
            for i in range(0, n6, 6):
                x0 = a[i, p0:p1]
                x1 = a[i + 1, p0:p1]
                x2 = a[i + 2, p0:p1]
                x3 = a[i + 3, p0:p1]
                x4 = a[i + 4, p0:p1]
                x5 = a[i + 5, p0:p1]
                for j in range(0, k2, 2):
                    w0 = mc[j, :m]
                    w1 = mc[j + 1, :m]
                    s00 = s01 = s10 = s11 = s20 = s21 = lane_type(0)
                    s30 = s31 = s40 = s41 = s50 = s51 = lane_type(0)
                    for p in range(m):
                        v0 = lane_type(w0[p])
                        v1 = lane_type(w1[p])
                        y = lane_type(x0[p])
                        s00 += y * v0
                        s01 += y * v1
                        y = lane_type(x1[p])
                        s10 += y * v0
                        s11 += y * v1
                        y = lane_type(x2[p])
                        s20 += y * v0
                        s21 += y * v1
                        y = lane_type(x3[p])
                        s30 += y * v0
                        s31 += y * v1
                        y = lane_type(x4[p])
                        s40 += y * v0
                        s41 += y * v1
                        y = lane_type(x5[p])
                        s50 += y * v0
                        s51 += y * v1
                    tot[i, j] += s00
                    tot[i, j + 1] += s01
                    tot[i + 1, j] += s10
                    tot[i + 1, j + 1] += s11
                    tot[i + 2, j] += s20
                    tot[i + 2, j + 1] += s21
                    tot[i + 3, j] += s30
                    tot[i + 3, j + 1] += s31
                    tot[i + 4, j] += s40
                    tot[i + 4, j + 1] += s41
                    tot[i + 5, j] += s50
                    tot[i + 5, j + 1] += s51
            # Frames left over from the blocks of 6 (all masks), then the last mask of an odd
            # count (the blocked frames): one sum at a time.
            for i in range(n6, n):
                xi = a[i, p0:p1]
                for j in range(k):
                    wj = mc[j, :m]
                    s = lane_type(0)
                    for p in range(m):
                        s += lane_type(xi[p]) * lane_type(wj[p])
                    tot[i, j] += s
            for j in range(k2, k):
                wj = mc[j, :m]
                for i in range(n6):
                    xi = a[i, p0:p1]
                    s = lane_type(0)
                    for p in range(m):
                        s += lane_type(xi[p]) * lane_type(wj[p])
                    tot[i, j] += s
        for i in range(n):
            for j in range(k):
                out[i, j] += tot[i, j]

    return blocked


blocked_6x2 = _make_blocked_6x2(np.float64)
blocked_6x2_single = _make_blocked_6x2(np.float32)


# Pixels per float32 partial sum of the single-mask kernel; the chunks' sums are added in float64.
_DOT_CHUNK = 1024
# Bytes ahead of a chunk's start from which the single-mask kernel prefetches a chunk's length
# of each row (see prefetch.prefetch_span). Measured on 1 GiB of page-cached uint16, kernel
# alone on two threads of Sapphire Rapids, alternated with the floor: 0.71 -> 0.80 (haswell
# code) and 0.76 -> 0.87 (AVX-512); 512 bytes ahead 0.84, 1536 bytes 0.84.
_DOT_AHEAD = 1024


# One float32 mask, 8- or 16-bit integer or float32 frames (exact in float32), float32 results.
# The explicit 4-frame x 64-lane sums of masks_cpu._dot1_single are 32 vector registers of
# float32 on AVX2, which has 16: LLVM kept them in memory. Written plainly, several frames per
# pass, LLVM splits each sum into as many lanes as fit ("reassoc"). Measured on a Zen 3 EPYC,
# one thread, 256 MiB in memory: uint16 12.3 -> 16.5 GB/s (4 frames; 2 frames: 11.2), float32
# 12.3 -> 14.9 (against masks_cpu._dot1_float32, two frames a pass); single-threaded floor 11-14.
#
# Since the rows are prefetched, three frames a pass read a little faster than four in AVX2
# code (one read stream fewer beside the mask's): on Sapphire Rapids compiled for haswell,
# kernel alone on two threads alternated with the floor, uint16 0.726-0.755 -> 0.733-0.762 of
# it in three comparisons, float32 0.775 -> 0.811; five or six frames 0.68-0.70; whole runs
# 1.02x. In 512-bit code three and four read the same (0.76), and four stay.
def _make_dot1(frames, wide, prefetch=True):  # type: ignore[no-untyped-def]
    """Build the kernel: ``out[i, 0] += a[i, :npix] @ m`` over ``frames`` (3 or 4) frames a
    pass, float32 sums over chunks of 1024 pixels, added in float64; ``wide`` asks for 512-bit
    vectors where the CPU has them; ``prefetch`` asks for each chunk's rows ahead (see
    :func:`libertem_gpu.kernels.prefetch.enabled`)."""
    if frames not in (3, 4):
        raise ValueError(f"the single-mask kernel takes 3 or 4 frames a pass, not {frames}")
    four = frames == 4

    @numba.njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
    def dot1(a, npix, m, out):
        if wide:
            prefer_wide_vectors()
        n = a.shape[0]
        nc = npix // _DOT_CHUNK
        end = nc * _DOT_CHUNK
        n_passes = n - n % frames
        for i in range(0, n_passes, frames):
            x0 = a[i, :npix]
            x1 = a[i + 1, :npix]
            x2 = a[i + 2, :npix]
            x3 = a[i + frames - 1, :npix]  # the fourth frame of four; unused for three
            t0 = 0.0
            t1 = 0.0
            t2 = 0.0
            t3 = 0.0
            for c in range(nc):
                p0 = c * _DOT_CHUNK
                if prefetch:
                    b0 = p0 * a.itemsize + _DOT_AHEAD
                    b1 = b0 + _DOT_CHUNK * a.itemsize
                    prefetch_span(x0, b0, b1)
                    prefetch_span(x1, b0, b1)
                    prefetch_span(x2, b0, b1)
                    if four:
                        prefetch_span(x3, b0, b1)
                w = m[p0 : p0 + _DOT_CHUNK]
                y0 = x0[p0 : p0 + _DOT_CHUNK]
                y1 = x1[p0 : p0 + _DOT_CHUNK]
                y2 = x2[p0 : p0 + _DOT_CHUNK]
                y3 = x3[p0 : p0 + _DOT_CHUNK]
                s0 = np.float32(0)
                s1 = np.float32(0)
                s2 = np.float32(0)
                s3 = np.float32(0)
                for p in range(_DOT_CHUNK):
                    s0 += np.float32(y0[p]) * w[p]
                    s1 += np.float32(y1[p]) * w[p]
                    s2 += np.float32(y2[p]) * w[p]
                    if four:
                        s3 += np.float32(y3[p]) * w[p]
                t0 += s0
                t1 += s1
                t2 += s2
                t3 += s3  # zero for three
            for p in range(end, npix):
                t0 += np.float64(x0[p]) * np.float64(m[p])
                t1 += np.float64(x1[p]) * np.float64(m[p])
                t2 += np.float64(x2[p]) * np.float64(m[p])
                if four:
                    t3 += np.float64(x3[p]) * np.float64(m[p])
            out[i, 0] += t0
            out[i + 1, 0] += t1
            out[i + 2, 0] += t2
            if four:
                out[i + 3, 0] += t3
        for i in range(n_passes, n):
            x = a[i, :npix]
            t = 0.0
            for c in range(nc):
                p0 = c * _DOT_CHUNK
                w = m[p0 : p0 + _DOT_CHUNK]
                y = x[p0 : p0 + _DOT_CHUNK]
                s = np.float32(0)
                for p in range(_DOT_CHUNK):
                    s += np.float32(y[p]) * w[p]
                t += s
            for p in range(end, npix):
                t += np.float64(x[p]) * np.float64(m[p])
            out[i, 0] += t

    return dot1


dot1_3frames = _make_dot1(3, wide=False)
dot1_4frames_wide = _make_dot1(4, wide=True)
# Hosts that do not prefetch (AMD, see prefetch.enabled), any vector width: on a Zen 4 EPYC,
# kernel alone on 1 GiB of page-cached frames, two threads alternated with the floor, uint16
# 0.96-0.99 of it against 0.64 prefetched (three frames, 256-bit code: 0.91 against 0.69);
# float32 0.95-1.0 against 0.87 for masks_cpu._dot1_float32.
dot1_4frames_plain = _make_dot1(4, wide=True, prefetch=False)


# One mask in float64 (float64 masks or results, or frames float32 does not hold exactly). The
# explicit 4-frame x 64-lane sums of masks_cpu._dot1 are 64 AVX2 registers of float64: spilled.
# Written plainly, four frames per pass: measured on a Zen 3 EPYC, one thread, in memory, uint16
# 8.6 -> 11.7 GB/s (two frames a pass: 10.0), float64 12.7 -> 16.3, float32 14.8 either way.
@numba.njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
def dot1_4frames_f64(a, npix, m, out):
    """``out[i, 0] += a[i, :npix] @ m`` in float64 sums."""
    n = a.shape[0]
    n4 = n - n % 4
    for i in range(0, n4, 4):
        x0, x1, x2, x3 = rows4(a, i, 0, npix)
        t0 = 0.0
        t1 = 0.0
        t2 = 0.0
        t3 = 0.0
        for p in range(npix):
            w = np.float64(m[p])
            t0 += np.float64(x0[p]) * w
            t1 += np.float64(x1[p]) * w
            t2 += np.float64(x2[p]) * w
            t3 += np.float64(x3[p]) * w
        out[i, 0] += t0
        out[i + 1, 0] += t1
        out[i + 2, 0] += t2
        out[i + 3, 0] += t3
    for i in range(n4, n):
        x = a[i, :npix]
        t = 0.0
        for p in range(npix):
            t += np.float64(x[p]) * np.float64(m[p])
        out[i, 0] += t
