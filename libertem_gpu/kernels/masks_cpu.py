"""The CPU (Numba) implementations of the mask operations: dense masks (one fused dot product,
or a blocked kernel on packed masks, or AMX) and sparse (CSR) masks, and the CPU ``prepare``
of ``apply_masks``. ``out[i, j] += sum_p tile[i, p] * mask_j[p]``.

Dense masks come transposed, ``masks_t`` of shape ``(npix, k)``; sparse masks as CSR arrays.

Speed notes (2-core Sapphire Rapids, 2.6 GHz, uint16 256x256 frames): a single mask is a fused,
memory-bound dot product in Numba (with float32 masks in float32 lanes: twice the lanes per
vector, 0.7 -> 0.9 of the memory floor on uint16). For k > 1 each input element costs k
multiply-adds: a Numba kernel blocks 5 frames x 4 masks over packed chunks of the masks that
stay in cache and converts raw pixels as it reads them, about 2x (uint16) and 1.5x (float32)
the speed of converting blocks for single-threaded BLAS sgemm. It reads the tile in chunk
order, which Intel's hardware prefetchers follow poorly; for 8- and 16-bit frames it
prefetches the next block while multiplying the current one (+7-17% in the engine on uint16),
except on hosts where software prefetch costs (AMD, :func:`.prefetch.enabled`). Where
the CPU has AMX, k <= 16 float32 masks on 8- and 16-bit frames run on the tile unit instead
(:mod:`libertem_gpu.kernels.amx`: exact integer sums, 0.30 -> 0.51 of the floor for 16
masks on uint16). BLAS (k == 1 on float frames) releases the GIL too; the caller should
limit BLAS to one thread per worker (``OPENBLAS_NUM_THREADS=1`` or threadpoolctl) when
running partitions in parallel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels import amx, prefetch
from libertem_gpu.kernels.cpu_target import host_is_amd, target_has
from libertem_gpu.kernels.masks import (
    AppliedMasks,
    MaskStack,
    amx_takes,
    cpu_runs,
    outer_takes,
)
from libertem_gpu.kernels.masks_packed import PackedMasks, pack_dense
from libertem_gpu.kernels.prefetch import prefetch_bytes
from libertem_gpu.kernels.tiles import as_rows
from libertem_gpu.kernels.vector_width import prefer_wide_vectors

__all__ = ["PackedMasks", "cpu_dense", "cpu_sparse", "pack_dense", "prepare"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)

# Lanes of independent partial sums for the k == 1 dot (see sum_sig for why); 64 measured best.
_LANES = 64
# Frames sharing one pass over the mask: the mask (L2-resident) is loaded once per four frames
# instead of once per frame.
_FRAMES = 4
# Lane blocks summed before the lane sums are added into the frame's total.
_FLUSH = 128


# The k == 1 dot product in float64 lanes (float64 masks or results, AVX-512). Fused
# multiply-add (contraction only; no reassociation): faster and, if anything, closer to the
# exact product sums.
@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _dot1(a, npix, m, out):
    # out[i, 0] += a[i, :npix] @ m, four frames per pass, _LANES lanes per frame; 512-bit
    # vectors gain 4-6 % on uint16 frames (kernel alone, two threads).
    prefer_wide_vectors()
    n = a.shape[0]
    nb = npix // _LANES
    end = nb * _LANES
    mb = m[:end].reshape((nb, _LANES))
    acc = np.empty((_FRAMES, _LANES), np.float64)
    tot = np.empty((_FRAMES, _LANES))
    for i0 in range(0, n, _FRAMES):
        nf = min(_FRAMES, n - i0)
        tot[:] = 0.0
        if nf == _FRAMES:
            x0 = a[i0, :end].reshape((nb, _LANES))
            x1 = a[i0 + 1, :end].reshape((nb, _LANES))
            x2 = a[i0 + 2, :end].reshape((nb, _LANES))
            x3 = a[i0 + 3, :end].reshape((nb, _LANES))
            c0 = acc[0]
            c1 = acc[1]
            c2 = acc[2]
            c3 = acc[3]
            for b0 in range(0, nb, _FLUSH):
                acc[:] = 0.0
                for b in range(b0, min(b0 + _FLUSH, nb)):
                    mv = mb[b]
                    y0 = x0[b]
                    y1 = x1[b]
                    y2 = x2[b]
                    y3 = x3[b]
                    for q in range(_LANES):
                        w = np.float64(mv[q])
                        c0[q] += np.float64(y0[q]) * w
                        c1[q] += np.float64(y1[q]) * w
                        c2[q] += np.float64(y2[q]) * w
                        c3[q] += np.float64(y3[q]) * w
                for f in range(_FRAMES):
                    for q in range(_LANES):
                        tot[f, q] += acc[f, q]
        else:
            for f in range(nf):
                xf = a[i0 + f, :end].reshape((nb, _LANES))
                cf = acc[f]
                for b0 in range(0, nb, _FLUSH):
                    cf[:] = 0.0
                    for b in range(b0, min(b0 + _FLUSH, nb)):
                        mv = mb[b]
                        yf = xf[b]
                        for q in range(_LANES):
                            cf[q] += np.float64(yf[q]) * np.float64(mv[q])
                    for q in range(_LANES):
                        tot[f, q] += cf[q]
        for f in range(nf):
            s = 0.0
            for q in range(_LANES):
                s += tot[f, q]
            row = a[i0 + f]
            for p in range(end, npix):
                s += np.float64(row[p]) * np.float64(m[p])
            out[i0 + f, 0] += s


# float32 frames (k == 1, float32 masks and results): the frames need no conversion, so the
# loop is a pure stream of loads and multiply-adds; written plainly and split into lanes by
# LLVM ("reassoc"), two frames per pass over the mask, it reads page-cached float32 frames as
# fast as the memory floor's plain sum (13-15 % faster than explicit 4-frame x 64-lane sums in
# float32 in the engine). Integer frames take masks_avx2_cpu's four-frame kernel
# (prefetched, 512-bit vectors here): the explicit lanes kept their sums in memory, a load and
# a store around each multiply-add, and read 0.76 of the floor against 0.87 (1 GiB of uint16,
# kernel alone on two threads, alternated with the floor; whole runs 1.08x).
_CHUNK_F32 = 1024


# "reassoc" lets LLVM keep vector lanes of partial sums (each over at most _CHUNK_F32 products,
# a few dozen where the loop is vectorised); "contract" gives fused multiply-adds. No
# assumptions about NaN or infinities.
@numba.njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
def _dot1_float32(a, npix, m, out):
    # out[i, 0] += a[i, :npix] @ m: float32 sums over each chunk, added up in float64.
    n = a.shape[0]
    nc = npix // _CHUNK_F32
    end = nc * _CHUNK_F32
    n2 = n - n % 2
    for i in range(0, n2, 2):
        x0 = a[i, :npix]
        x1 = a[i + 1, :npix]
        t0 = 0.0
        t1 = 0.0
        for c in range(nc):
            p0 = c * _CHUNK_F32
            y0 = x0[p0 : p0 + _CHUNK_F32]
            y1 = x1[p0 : p0 + _CHUNK_F32]
            w = m[p0 : p0 + _CHUNK_F32]
            s0 = np.float32(0)
            s1 = np.float32(0)
            for p in range(_CHUNK_F32):
                s0 += y0[p] * w[p]
                s1 += y1[p] * w[p]
            t0 += s0
            t1 += s1
        for p in range(end, npix):
            t0 += np.float64(x0[p]) * np.float64(m[p])
            t1 += np.float64(x1[p]) * np.float64(m[p])
        out[i, 0] += t0
        out[i + 1, 0] += t1
    for i in range(n2, n):
        t = 0.0
        for p in range(npix):
            t += np.float64(a[i, p]) * np.float64(m[p])
        out[i, 0] += t


# Several masks: a register block of 5 frames x 4 masks (20 independent sums, 512-bit vectors
# where the CPU has them) per pass over a chunk of pixels. The masks come packed by chunk: the
# k masks' values for 1024 pixels as rows of one small block, padded so that the rows start on
# different cache sets (unpadded, rows 4 KiB apart compete for the same L1 sets). A chunk of
# 16 float32 masks (65 KiB) then stays in L1/L2 while the tile's frames pass, each frame's
# chunk is read once per 4 masks from L1, and converting the raw pixels inside the loop overlaps
# the reads with the multiply-adds. Measured on 2-core Sapphire Rapids against the former
# 4 x 4 kernel on unpacked masks, 256-bit vectors and 4096-pixel chunks: float32 frames +28 %,
# uint16 +13 % (where converting the pixels shares the vector ports with the multiply-adds).
# The outer-product kernel computes blocks of 6 frames, zero rows included: on tiles of fewer
# frames the 6 x 2 kernel is faster (16 masks on uint16, haswell code, one thread: one frame
# 0.38 against 0.85 GB/s, two 0.75 against 1.14, three 1.08 against 1.29).
_OUTER_MIN_FRAMES = 6


def _make_blocked(lane_type, prefetch):
    """Build ``out += a @ masks.T`` on packed masks, with sums over one pixel chunk formed in
    ``lane_type`` and added up over chunks in float64; 8- and 16-bit frames are prefetched
    where ``prefetch`` (see :func:`libertem_gpu.kernels.prefetch.enabled`)."""

    # "reassoc" lets LLVM split each sum into vector lanes (partial sums of at most
    # _PACK_CHUNK / 8 products each); "contract" gives fused multiply-adds.
    @numba.njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
    def blocked(a, npix, packed, chunk, out):
        prefer_wide_vectors()
        n = a.shape[0]
        k = packed.shape[1]
        n5 = n - n % 5
        k4 = k - k % 4
        tot = np.zeros((n, k))
        nchunks = packed.shape[0]
        itemsize = a.itemsize
        row_bytes = a.strides[0]
        groups = max(k4 // 4, 1)
        for c in range(nchunks):
            p0 = c * chunk
            p1 = min(p0 + chunk, npix)
            m = p1 - p0
            mc = packed[c]
            for i in range(0, n5, 5):
                # The next block to read: the next 5 frames of this chunk, else the first 5
                # of the next chunk. Its cache lines are prefetched a share per mask group
                # for 8- and 16-bit frames, whose loads otherwise stall the converting loop
                # (wider frames measured slower with it).
                if itemsize > 2:
                    ahead = 0
                    ahead_px = 0
                elif i + 5 < n5:
                    ahead = (i + 5) * row_bytes + p0 * itemsize
                    ahead_px = m
                elif c + 1 < nchunks:
                    ahead = (p0 + chunk) * itemsize
                    ahead_px = min(p0 + 2 * chunk, npix) - p0 - chunk
                else:
                    ahead = 0
                    ahead_px = 0
                lines = 5 * ((ahead_px * itemsize + 63) // 64)
                x0 = a[i, p0:p1]
                x1 = a[i + 1, p0:p1]
                x2 = a[i + 2, p0:p1]
                x3 = a[i + 3, p0:p1]
                x4 = a[i + 4, p0:p1]
                for j in range(0, k4, 4):
                    g = j // 4
                    if prefetch:
                        for q in range(g * lines // groups, (g + 1) * lines // groups):
                            prefetch_bytes(a, ahead + (q % 5) * row_bytes + (q // 5) * 64)
                    w0 = mc[j, :m]
                    w1 = mc[j + 1, :m]
                    w2 = mc[j + 2, :m]
                    w3 = mc[j + 3, :m]
                    s00 = s01 = s02 = s03 = lane_type(0)
                    s10 = s11 = s12 = s13 = lane_type(0)
                    s20 = s21 = s22 = s23 = lane_type(0)
                    s30 = s31 = s32 = s33 = lane_type(0)
                    s40 = s41 = s42 = s43 = lane_type(0)
                    for p in range(m):
                        y0 = lane_type(x0[p])
                        y1 = lane_type(x1[p])
                        y2 = lane_type(x2[p])
                        y3 = lane_type(x3[p])
                        y4 = lane_type(x4[p])
                        v0 = lane_type(w0[p])
                        v1 = lane_type(w1[p])
                        v2 = lane_type(w2[p])
                        v3 = lane_type(w3[p])
                        s00 += y0 * v0
                        s01 += y0 * v1
                        s02 += y0 * v2
                        s03 += y0 * v3
                        s10 += y1 * v0
                        s11 += y1 * v1
                        s12 += y1 * v2
                        s13 += y1 * v3
                        s20 += y2 * v0
                        s21 += y2 * v1
                        s22 += y2 * v2
                        s23 += y2 * v3
                        s30 += y3 * v0
                        s31 += y3 * v1
                        s32 += y3 * v2
                        s33 += y3 * v3
                        s40 += y4 * v0
                        s41 += y4 * v1
                        s42 += y4 * v2
                        s43 += y4 * v3
                    tot[i, j] += s00
                    tot[i, j + 1] += s01
                    tot[i, j + 2] += s02
                    tot[i, j + 3] += s03
                    tot[i + 1, j] += s10
                    tot[i + 1, j + 1] += s11
                    tot[i + 1, j + 2] += s12
                    tot[i + 1, j + 3] += s13
                    tot[i + 2, j] += s20
                    tot[i + 2, j + 1] += s21
                    tot[i + 2, j + 2] += s22
                    tot[i + 2, j + 3] += s23
                    tot[i + 3, j] += s30
                    tot[i + 3, j + 1] += s31
                    tot[i + 3, j + 2] += s32
                    tot[i + 3, j + 3] += s33
                    tot[i + 4, j] += s40
                    tot[i + 4, j + 1] += s41
                    tot[i + 4, j + 2] += s42
                    tot[i + 4, j + 3] += s43
                # Masks left over from the blocks of 4: five frames at a time.
                for j in range(k4, k):
                    wj = mc[j, :m]
                    s0 = s1 = s2 = s3 = s4 = lane_type(0)
                    for p in range(m):
                        v = lane_type(wj[p])
                        s0 += lane_type(x0[p]) * v
                        s1 += lane_type(x1[p]) * v
                        s2 += lane_type(x2[p]) * v
                        s3 += lane_type(x3[p]) * v
                        s4 += lane_type(x4[p]) * v
                    tot[i, j] += s0
                    tot[i + 1, j] += s1
                    tot[i + 2, j] += s2
                    tot[i + 3, j] += s3
                    tot[i + 4, j] += s4
            # Frames left over from the blocks of 5: one frame x 4 masks, then one sum at a time.
            for i in range(n5, n):
                xi = a[i, p0:p1]
                for j in range(0, k4, 4):
                    w0 = mc[j, :m]
                    w1 = mc[j + 1, :m]
                    w2 = mc[j + 2, :m]
                    w3 = mc[j + 3, :m]
                    s0 = s1 = s2 = s3 = lane_type(0)
                    for p in range(m):
                        y = lane_type(xi[p])
                        s0 += y * lane_type(w0[p])
                        s1 += y * lane_type(w1[p])
                        s2 += y * lane_type(w2[p])
                        s3 += y * lane_type(w3[p])
                    tot[i, j] += s0
                    tot[i, j + 1] += s1
                    tot[i, j + 2] += s2
                    tot[i, j + 3] += s3
                for j in range(k4, k):
                    wj = mc[j, :m]
                    s = lane_type(0)
                    for p in range(m):
                        s += lane_type(xi[p]) * lane_type(wj[p])
                    tot[i, j] += s
        for i in range(n):
            for j in range(k):
                out[i, j] += tot[i, j]

    return blocked


# By whether the host prefetches: on the Zen 4 EPYC (which does not), 16 float32 masks on
# uint16, whole runs over 1 GiB alternated: 152-163 ms prefetched, 142-147 ms not.
_blocked = {prefetching: _make_blocked(np.float64, prefetching) for prefetching in (True, False)}
_blocked_single = {
    prefetching: _make_blocked(np.float32, prefetching) for prefetching in (True, False)
}


def _check_out(out: np.ndarray, n: int, k: int) -> None:
    if out.shape != (n, k):
        raise ShapeMismatchError(f"out must have shape ({n}, {k}), got {out.shape}")
    if out.dtype not in (np.float64, np.float32):
        raise TypeError(f"out must be float64 or float32, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")


def cpu_dense(tile: np.ndarray, masks_t: np.ndarray | PackedMasks, out: np.ndarray) -> None:
    """Accumulate dense mask products: ``out += tile @ masks_t``.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    masks_t : numpy.ndarray or PackedMasks
        ``(npix, k)`` float32 or float64, the transposed mask stack, in any memory layout; or
        the same packed by :func:`pack_dense`, which saves packing it again for each tile
        when k > 1.
    out : numpy.ndarray
        ``(n, k)`` float64 or float32, updated in place.

    Notes
    -----
    Sums are formed in float64, except where the masks *and* ``out`` are float32 and the
    frames are float32 or integers of up to 16 bits: then partial sums over a pixel chunk are
    formed in float32 lanes (at most 4096 products each, a few dozen to a few hundred where
    vectorised; relative error ~1e-7 typical) and added up in float64. k > 1 runs a blocked
    Numba kernel on packed masks; k == 1 a fused dot product, or BLAS where frames and masks
    share a float type. Where :func:`libertem_gpu.kernels.amx.available`, 1 < k <= 16
    float32 masks with float32 ``out`` on uint8/uint16 frames run on the AMX tile unit
    instead: masks in 32-bit fixed point, exact integer sums.
    """
    a, npix = as_rows(tile)
    if masks_t.shape[0] != npix or len(masks_t.shape) != 2:
        raise ShapeMismatchError(f"masks_t must have shape ({npix}, k), got {masks_t.shape}")
    if masks_t.dtype not in (np.float64, np.float32):
        raise TypeError(f"masks_t must be float32 or float64, got {masks_t.dtype}")
    n = a.shape[0]
    k = masks_t.shape[1]
    _check_out(out, n, k)
    if n == 0 or k == 0 or npix == 0:
        return
    single = masks_t.dtype == out.dtype == np.float32
    # float32 lanes only where converting the pixels to float32 is exact.
    narrow = a.dtype.itemsize <= 2 or a.dtype == np.float32
    if k == 1 and isinstance(masks_t, np.ndarray):
        if single and narrow and not prefetch.enabled():
            from libertem_gpu.kernels import masks_avx2_cpu

            masks_avx2_cpu.dot1_4frames_plain(a, npix, np.ascontiguousarray(masks_t[:, 0]), out)
        elif single and narrow and not target_has("avx512f"):
            from libertem_gpu.kernels import masks_avx2_cpu

            masks_avx2_cpu.dot1_3frames(a, npix, np.ascontiguousarray(masks_t[:, 0]), out)
        elif single and a.dtype == np.float32:
            _dot1_float32(a, npix, np.ascontiguousarray(masks_t[:, 0]), out)
        elif single and narrow:
            from libertem_gpu.kernels import masks_avx2_cpu

            masks_avx2_cpu.dot1_4frames_wide(a, npix, np.ascontiguousarray(masks_t[:, 0]), out)
        elif a.dtype == masks_t.dtype == out.dtype and a.dtype.kind == "f" and a.shape[1] == npix:
            out += np.dot(a, masks_t)
        elif not target_has("avx512f") or host_is_amd():
            # On Zen 4 too: one thread, 4 MiB tiles in L3, 1.6-1.9x _dot1's GB/s on uint16
            # and 8-bit frames, 1.5-1.8x on float32 (see _dot1); AVX-512 kept for Intel, where
            # _dot1 was measured.
            from libertem_gpu.kernels import masks_avx2_cpu

            masks_avx2_cpu.dot1_4frames_f64(a, npix, np.ascontiguousarray(masks_t[:, 0]), out)
        else:
            _dot1(a, npix, np.ascontiguousarray(masks_t[:, 0]), out)
        return
    packed = masks_t if isinstance(masks_t, PackedMasks) else pack_dense(masks_t)
    if single and amx_takes(a.dtype, k):
        tiles = packed.amx()
        if tiles is not None:
            amx.dense(a, npix, tiles, out)
            return
    if target_has("avx512f"):
        kernel = (_blocked_single if single and narrow else _blocked)[prefetch.enabled()]
    elif (
        single
        and n >= _OUTER_MIN_FRAMES
        and outer_takes(a.dtype, k)
        and packed.groups() is not None
    ):
        from libertem_gpu.kernels import masks_outer_cpu

        masks_outer_cpu.outer_blocked(a, npix, packed.groups(), out)
        return
    else:  # 16 vector registers: a smaller register block (see masks_avx2_cpu)
        from libertem_gpu.kernels import masks_avx2_cpu

        kernel = (
            masks_avx2_cpu.blocked_6x2_single if single and narrow else masks_avx2_cpu.blocked_6x2
        )
    kernel(a, npix, packed.data, packed.chunk, out)


@_jit
def _sparse(a, npix, indptr, indices, data, out):
    k = indptr.shape[0] - 1
    for i in range(a.shape[0]):
        row = a[i, :npix]
        for j in range(k):
            s = 0.0
            for z in range(indptr[j], indptr[j + 1]):
                s += np.float64(row[indices[z]]) * np.float64(data[z])
            out[i, j] += s


def cpu_sparse(
    tile: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    out: np.ndarray,
) -> None:
    """Accumulate sparse mask products; masks are the rows of a CSR ``(k, npix)`` matrix.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    indptr, indices, data : numpy.ndarray
        CSR arrays (as in ``scipy.sparse.csr_array``): integer ``indptr`` of length ``k + 1``,
        integer column ``indices`` in ``[0, npix)`` and float32/float64 ``data``. Indices are
        not bounds-checked per element: they are validated once here.
    out : numpy.ndarray
        ``(n, k)`` float64 or float32, updated in place; sums are formed in float64.
    """
    a, npix = as_rows(tile)
    n = a.shape[0]
    k = len(indptr) - 1
    if k < 0:
        raise ShapeMismatchError("indptr must have at least one element")
    _check_out(out, n, k)
    if len(indices) != len(data) or (k >= 0 and indptr[-1] > len(indices)):
        raise ShapeMismatchError("inconsistent CSR arrays (indptr, indices, data)")
    if len(indices) and (indices.min() < 0 or indices.max() >= npix):
        raise ShapeMismatchError(f"mask indices out of range for npix={npix}")
    if n == 0 or k == 0:
        return
    _sparse(a, npix, indptr, indices, data, out)


# --- prepare ----------------------------------------------------------------------------------


def prepare(stack: MaskStack, sig_shape: tuple[int, ...], input_dtype: Any) -> AppliedMasks:
    """The CPU's strategy for ``stack`` on frames of ``input_dtype``, chosen once per partition:
    runs of pixels for drawn masks on integer frames (unless AMX reads every pixel faster),
    else dense masks, packed for the blocked kernel when there are several; sparse masks that
    share no pixel as a label per pixel, other sparse masks as CSR."""
    npix = int(np.prod(sig_shape))
    if stack.dense_t is None:
        csr = stack.csr
        assert csr is not None
        labelled = stack.labels(npix)
        if labelled is not None:
            # 182 one-pixel rings on 256 x 256 uint16, one thread: 3.5 GB/s, the CSR 1.0.
            from libertem_gpu.kernels.labels_cpu import cpu as cpu_labels

            labels, weights = labelled
            return AppliedMasks(
                cpu_labels,
                lambda: labelled,
                lambda p0, p1: (labels[p0:p1], weights[p0:p1]),
                npix,
                sparse=True,
            )
        return AppliedMasks(cpu_sparse, lambda: csr, stack.csr_columns, npix, sparse=True)
    dense_t = stack.dense_t
    runs = cpu_runs(stack, sig_shape, input_dtype)
    whole: Callable[[], Any]
    slab: Callable[[int, int], Any]
    if dense_t.shape[1] > 1:
        # Packed once per process and run, when a tile first needs them (masks summed as runs
        # never do); a pixel slab of split frames gets its own packing, as once.
        whole = stack.packed
        slab = lambda p0, p1: stack.slab(p0, p1, pack_dense)  # noqa: E731
    else:
        whole = lambda: dense_t  # noqa: E731
        slab = lambda p0, p1: stack.slab(p0, p1, np.asfortranarray)  # noqa: E731
    spans_kernel = None
    if runs is not None:
        from libertem_gpu.kernels.spans_cpu import masks_cpu

        spans_kernel = masks_cpu
    return AppliedMasks(cpu_dense, whole, slab, npix, runs=runs, runs_kernel=spans_kernel)
