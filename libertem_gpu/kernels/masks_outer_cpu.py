"""Several float32 masks on CPUs without AVX-512: ``out += tile @ masks.T`` by the outer-product
micro-kernel of :mod:`.outer_product` (6 frames x 16 masks in registers), for frames of 8- or
16-bit integers or float32 (exact in float32).

The masks come in groups of 16, each ``(npix, 16)``: the 16 masks' values of a pixel are one
64-byte line (:func:`group_masks`). The tile is walked chunk by chunk (1024 pixels, whose
masks, 64 KiB a group, stay in L2) and, in each chunk, block by block (6 frames): the block's
pixels, converted to float32 in a small buffer, meet the chunk's masks while the micro-kernel
converts the next block into the other buffer and prefetches the one after. The sums of one
chunk are float32 (each over at most 1024 products) and are added up in float64.

Measured on a Zen 3 EPYC (AVX2), one thread, 16 masks on 256 x 256 frames streamed from memory,
against the kernel that vectorizes along the pixels (:func:`.masks_avx2_cpu.blocked_6x2_single`):
uint16 70 -> 75-77 GFLOP/s, float32 63 -> 73-74. The micro-kernel alone, its data in cache,
reaches 86-96 GFLOP/s; OpenBLAS's sgemm on large square matrices, 97. Through the engine, on a
Sapphire Rapids host with the kernels compiled for haswell, 1 GiB files, two threads, against
the 6 x 2 kernel: 16 masks on uint16 1.32x, on float32 1.26x (``benchmarks/ab_cpu.py``).
"""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.kernels.outer_product import FRAMES, MASKS, STEP, outer_6x16

__all__ = ["CHUNK", "group_masks", "outer_blocked"]

#: Pixels per chunk: one group's masks for a chunk are 64 KiB (L2), the two frame buffers
#: 2 x 24 KiB. 512 measured 12 % slower (the fixed cost per block), 2048 no faster.
CHUNK = 1024
_PAD = 16


def group_masks(masks_t: np.ndarray) -> np.ndarray:
    """``(npix, k)`` float32 masks as ``(ceil(k / 16), npix, 16)`` float32 groups, the masks
    beyond ``k`` in the last group zero."""
    npix, k = masks_t.shape
    groups = np.zeros((-(-k // MASKS), npix, MASKS), np.float32)
    for g in range(groups.shape[0]):
        width = min(MASKS, k - g * MASKS)
        groups[g, :, :width] = masks_t[:, g * MASKS : g * MASKS + width]
    return groups


@numba.njit(nogil=True, cache=True)
def _convert_rows(a, f0, nf, p0, lo, hi, dst):  # type: ignore[no-untyped-def]
    # dst[f, lo:hi] = a[f0 + f, p0 + lo : p0 + hi] as float32 for f < nf; zero for the rows
    # of a block with fewer than 6 frames.
    for f in range(FRAMES):
        row = dst[f]
        if f < nf:
            src = a[f0 + f, p0 + lo : p0 + hi]
            for p in range(hi - lo):
                row[lo + p] = np.float32(src[p])
        else:
            for p in range(lo, hi):
                row[p] = np.float32(0)


@numba.njit(nogil=True, cache=True, inline="always")
def _block(s, nblocks, nchunks, npix):  # type: ignore[no-untyped-def]
    # Block s of the walk (group, chunk, frame block): its first frame, first pixel, pixels.
    p0 = ((s // nblocks) % nchunks) * CHUNK
    return (s % nblocks) * FRAMES, p0, min(CHUNK, npix - p0)


@numba.njit(nogil=True, cache=True)
def outer_blocked(a, npix, groups, out):  # type: ignore[no-untyped-def]
    """``out[i, j] += a[i, :npix] @ mask_j`` for the ``out.shape[1]`` masks in ``groups``
    (:func:`group_masks`); ``out`` float32."""
    n = a.shape[0]
    k = out.shape[1]
    if n == 0 or npix == 0:
        return
    ngroups = groups.shape[0]
    nblocks = -(-n // FRAMES)
    nchunks = -(-npix // CHUNK)
    total = ngroups * nchunks * nblocks
    tot = np.zeros((n, ngroups * MASKS))
    buffers = np.empty((2, FRAMES, CHUNK + _PAD), np.float32)
    # Where there is nothing to convert or prefetch, the micro-kernel works on these.
    spare_src = np.zeros((FRAMES, CHUNK + _PAD), a.dtype)
    spare_dst = np.empty((FRAMES, CHUNK + _PAD), np.float32)
    acc = np.empty((FRAMES, MASKS), np.float32)
    _convert_rows(a, 0, min(FRAMES, n), 0, 0, min(CHUNK, npix), buffers[0])
    for s in range(total):
        g = s // (nblocks * nchunks)
        f0, p0, m = _block(s, nblocks, nchunks, npix)
        # The next block is converted during this one where it has 6 frames and as many
        # pixels; else afterwards, here.
        src = spare_src[:, :m]
        dst = spare_dst
        piped = False
        f1 = q1 = m1 = 0
        if s + 1 < total:
            f1, q1, m1 = _block(s + 1, nblocks, nchunks, npix)
            if n - f1 >= FRAMES and m1 == m:
                src = a[f1 : f1 + FRAMES, q1 : q1 + m]
                dst = buffers[(s + 1) % 2]
                piped = True
        ahead = spare_src[:, :m]
        if s + 2 < total:
            f2, q2, m2 = _block(s + 2, nblocks, nchunks, npix)
            if n - f2 >= FRAMES:
                ahead = a[f2 : f2 + FRAMES, q2 : q2 + m2]
        acc[:] = 0
        outer_6x16(buffers[s % 2], groups[g, p0 : p0 + m], 0, m, acc, src, dst, ahead)
        for f in range(min(FRAMES, n - f0)):
            for j in range(MASKS):
                tot[f0 + f, g * MASKS + j] += acc[f, j]
        if s + 1 < total:
            done = m - m % STEP if piped else 0
            _convert_rows(a, f1, min(FRAMES, n - f1), q1, done, m1, buffers[(s + 1) % 2])
    for i in range(n):
        for j in range(k):
            out[i, j] += tot[i, j]
