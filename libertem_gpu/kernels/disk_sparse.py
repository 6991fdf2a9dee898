"""``disk_sparse_find``: the peak near each expected position of each frame, from the frame
itself: sparse correlation, the window's maximum, its check and its refinement in one
operation (definitions: :mod:`libertem_gpu.disks.peaks`).

``prepare(template, positions (P, 2) int, search, refine, min_height, input_dtype)`` returns
``(tile, peaks (n, P, 2), heights (n, P), found (n,))``; with ``refine="upsampled"`` the peaks
are left at their pixels (``disk_refine_upsampled`` adds the offsets).

- CPU: for windows inside the frame, where it is cheaper (:data:`_FFT_COST`), the frames'
  full-frame FFT correlation (``disk_correlate``'s, in groups of about 1 MiB), whose windows
  a Numba pass then searches; otherwise one Numba pass per (frame, position) that copies the
  frame's window once (converting the stored integers, zero outside the frame), correlates
  only the shifts it needs (the ``(2 search + 1)^2`` of the search window, then the part of
  the refinement's neighbourhood around the maximum outside it: about half of the full map
  for ``"com"``) and refines in place. Measured on 256 x 256 uint16 frames with 81 disks of
  radius 5: the two stages 2.7x faster than whole maps, the FFT another 1.6x.
- GPU: the full window maps (``disk_correlate_sparse``'s Numba-CUDA kernel), then their peaks
  (``disk_peaks_sparse``'s array code): plenty of threads, no stage dependencies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from libertem_gpu.disks.peaks import REACH
from libertem_gpu.kernels.fourier import _host, work_dtype
from libertem_gpu.kernels.tiles import contiguous_read_only

__all__ = ["prepare_find", "prepare_find_gpu", "prepare_find_reference"]


@numba.njit(nogil=True, fastmath=True, cache=True)
def _dot4(patch, template, a, b):  # type: ignore[no-untyped-def]
    """The correlation at shifts ``(a, b .. b + 3)`` of the window ``patch``: four sums that
    share each template value (measured 4x the multiply-adds per second of one at a time)."""
    a0 = template[0, 0] - template[0, 0]  # the template's type
    a1 = a0
    a2 = a0
    a3 = a0
    for qy in range(template.shape[0]):
        row = patch[a + qy]
        trow = template[qy]
        for qx in range(template.shape[1]):
            tv = trow[qx]
            c = b + qx
            a0 += row[c] * tv
            a1 += row[c + 1] * tv
            a2 += row[c + 2] * tv
            a3 += row[c + 3] * tv
    return a0, a1, a2, a3


@numba.njit(nogil=True, cache=True)
def _fill(patch, template, cmap, done, a, b0, b1):  # type: ignore[no-untyped-def]
    """Correlate row ``a`` of the window map at columns ``b0 .. b1`` (inclusive) where not
    done yet, four at a time; each value is computed once."""
    for b in range(b0, b1 + 1, 4):
        todo = False
        for lane in range(4):
            if b + lane <= b1 and not done[a, b + lane]:
                todo = True
        if not todo:
            continue
        v = _dot4(patch, template, a, b)
        for lane in range(4):
            if b + lane <= b1 and not done[a, b + lane]:
                cmap[a, b + lane] = v[lane]
                done[a, b + lane] = True


@numba.njit(nogil=True, cache=True)
def _evaluate(cmap, search, reach, min_height, mode, out):  # type: ignore[no-untyped-def]
    """The peak of one window map whose search window and refinement neighbourhood are
    filled: ``out = (height, a, b, oy, ox)``; False where there is none. ``mode``: 0 the
    pixel (``"upsampled"`` refines later), 1 ``"com"``, 2 ``"parabolic"``."""
    best = cmap[reach, reach]
    ba = reach
    bb = reach
    for a in range(reach, reach + 2 * search + 1):
        for b in range(reach, reach + 2 * search + 1):
            if cmap[a, b] > best:
                best = cmap[a, b]
                ba = a
                bb = b
    if not best > min_height:
        return False
    for a in range(ba - 1, ba + 2):
        for b in range(bb - 1, bb + 2):
            if cmap[a, b] > best:
                return False
    oy = 0.0
    ox = 0.0
    if mode == 1:
        rim = cmap[ba - reach, bb - reach]
        for d in range(-reach, reach + 1):
            rim = max(rim, cmap[ba - reach, bb + d], cmap[ba + reach, bb + d])
            rim = max(rim, cmap[ba + d, bb - reach], cmap[ba + d, bb + reach])
        total = 0.0
        sy = 0.0
        sx = 0.0
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                w = np.float64(cmap[ba + dy, bb + dx]) - np.float64(rim)
                if w > 0:
                    total += w
                    sy += w * dy
                    sx += w * dx
        if total > 0:
            oy = sy / total
            ox = sx / total
    elif mode == 2:
        mid = np.float64(cmap[ba, bb])
        lo = np.float64(cmap[ba - 1, bb])
        hi = np.float64(cmap[ba + 1, bb])
        den = lo - 2 * mid + hi
        oy = 0.5 * (lo - hi) / den if den < 0 else 0.0
        lo = np.float64(cmap[ba, bb - 1])
        hi = np.float64(cmap[ba, bb + 1])
        den = lo - 2 * mid + hi
        ox = 0.5 * (lo - hi) / den if den < 0 else 0.0
    out[0] = best
    out[1] = ba
    out[2] = bb
    out[3] = oy
    out[4] = ox
    return True


@numba.njit(nogil=True, cache=True)
def _store(i, k, ok, res, pos, half, peaks, heights):  # type: ignore[no-untyped-def]
    if ok:
        peaks[i, k, 0] = pos[k, 0] + res[1] - half + res[3]
        peaks[i, k, 1] = pos[k, 1] + res[2] - half + res[4]
        heights[i, k] = res[0]
    else:
        peaks[i, k, 0] = np.nan
        peaks[i, k, 1] = np.nan
        heights[i, k] = np.nan


@numba.njit(nogil=True, cache=True)
def _find_direct(  # type: ignore[no-untyped-def]
    tile, template, pos, which, search, reach, min_height, mode, peaks, heights
):
    """The positions ``which`` by direct sums: the window copied once (zero outside the
    frame), the search window correlated, then the neighbourhood of its maximum."""
    n, rows, cols = tile.shape
    th, tw = template.shape
    half = search + reach
    m = 2 * half + 1
    # three spare zero columns: the last block of four shifts reads past the window
    patch = np.zeros((m + th - 1, m + tw + 2), template.dtype)
    cmap = np.zeros((m, m), template.dtype)
    done = np.zeros((m, m), np.bool_)
    res = np.zeros(5)
    lo, hi = reach, reach + 2 * search
    for i in range(n):
        for k in which:
            y0 = pos[k, 0] - half - th // 2
            x0 = pos[k, 1] - half - tw // 2
            for r in range(patch.shape[0]):
                yy = y0 + r
                for c in range(m + tw - 1):
                    xx = x0 + c
                    if 0 <= yy < rows and 0 <= xx < cols:
                        patch[r, c] = tile[i, yy, xx]
                    else:
                        patch[r, c] = 0
            done[:] = False
            for a in range(lo, hi + 1):
                _fill(patch, template, cmap, done, a, lo, hi)
            best = cmap[lo, lo]
            ba = lo
            bb = lo
            for a in range(lo, hi + 1):
                for b in range(lo, hi + 1):
                    if cmap[a, b] > best:
                        best = cmap[a, b]
                        ba = a
                        bb = b
            for a in range(ba - reach, ba + reach + 1):
                _fill(patch, template, cmap, done, a, bb - reach, bb + reach)
            ok = _evaluate(cmap, search, reach, min_height, mode, res)
            _store(i, k, ok, res, pos, half, peaks, heights)


@numba.njit(nogil=True, cache=True)
def _find_in_maps(maps, offset, pos, which, search, reach, min_height, mode, peaks, heights):  # type: ignore[no-untyped-def]
    """The positions ``which`` (windows inside the frame) from full-frame correlation maps
    of frames ``offset ..``."""
    half = search + reach
    m = 2 * half + 1
    res = np.zeros(5)
    for j in range(maps.shape[0]):
        i = offset + j
        for k in which:
            y0 = pos[k, 0] - half
            x0 = pos[k, 1] - half
            cmap = maps[j, y0 : y0 + m, x0 : x0 + m]
            ok = _evaluate(cmap, search, reach, min_height, mode, res)
            _store(i, k, ok, res, pos, half, peaks, heights)


#: Full-frame FFT correlation instead of direct sums where ``P_inside * shifts * template
#: pixels > _FFT_COST * rows * cols * log2(rows * cols)``. Measured on 256 x 256 uint16
#: frames, 81 disks of radius 5 (17 x 17 template, 25 + ~30 shifts each): the FFT pair costs
#: about 0.75 direct multiply-adds per ``pixel * log2(pixels)`` (1.7x faster there).
_FFT_COST = 0.75
#: Shifts the direct path correlates per position beyond the search window (the part of the
#: refinement's neighbourhood outside it, on average).
_EXTRA_SHIFTS = {0: 4, 1: 30, 2: 4}


class PreparedFind:
    """``disk_sparse_find`` on the CPU: ``(tile, peaks, heights, found)``. Positions whose
    window (and template) lies inside the frame go through a full-frame FFT correlation where
    that costs less (:data:`_FFT_COST`), the others through direct sums (zero outside the
    frame)."""

    def __init__(
        self,
        template: Any,
        positions: Any,
        search: int,
        refine: str,
        min_height: float,
        input_dtype: Any,
        sig_shape: tuple[int, int] | None = None,
    ) -> None:
        dtype = work_dtype(input_dtype)
        t = np.ascontiguousarray(_host(template), dtype=dtype)
        pos = np.ascontiguousarray(_host(positions), dtype=np.int64)
        self._template, self._pos = t, pos
        self._search = int(search)
        self._reach = REACH[refine]
        self._mode = {"upsampled": 0, "com": 1, "parabolic": 2}[refine]
        self._min_height = float(min_height)
        self._dtype = dtype
        self._fft: Any = None
        self._fft_which = np.zeros(0, np.int64)
        self._direct_which = np.arange(len(pos), dtype=np.int64)
        if sig_shape is not None:
            rows, cols = (int(v) for v in sig_shape)
            half = self._search + self._reach
            th, tw = t.shape
            y0 = pos[:, 0] - half - th // 2
            x0 = pos[:, 1] - half - tw // 2
            inside = (y0 >= 0) & (x0 >= 0)
            inside &= (y0 + 2 * half + th <= rows) & (x0 + 2 * half + tw <= cols)
            shifts = (2 * self._search + 1) ** 2 + _EXTRA_SHIFTS[self._mode]
            direct = int(inside.sum()) * shifts * t.size
            fft = _FFT_COST * rows * cols * math.log2(max(rows * cols, 2))
            if inside.any() and direct > fft:
                from libertem_gpu.kernels.disk_corr import prepare_correlate

                self._fft = prepare_correlate((rows, cols), t, input_dtype)
                self._fft_which = np.flatnonzero(inside).astype(np.int64)
                self._direct_which = np.flatnonzero(~inside).astype(np.int64)

    def __call__(self, tile: Any, peaks: Any, heights: Any, found: Any) -> None:
        if tile.dtype == np.bool_:
            tile = tile.view(np.uint8)
        tile = contiguous_read_only(tile)  # the correlations cost far more than a copy
        args = (self._search, self._reach, self._min_height, self._mode, peaks, heights)
        if len(self._direct_which):
            _find_direct(tile, self._template, self._pos, self._direct_which, *args)
        if self._fft is not None:
            # groups of ~1 MiB of maps: cache-sized, as the FFT itself chunks
            step = max(1, 2**20 // (tile[0].size * self._dtype.itemsize))
            maps = np.empty((min(step, len(tile)), *tile.shape[1:]), self._dtype)
            for s in range(0, len(tile), step):
                part = tile[s : s + step]
                self._fft(part, maps[: len(part)])
                _find_in_maps(maps[: len(part)], s, self._pos, self._fft_which, *args)
        found[...] = np.sum(~np.isnan(heights), axis=1).reshape(found.shape)


def prepare_find(
    template: Any,
    positions: Any,
    search: int,
    refine: str,
    min_height: float,
    input_dtype: Any,
    sig_shape: tuple[int, int] | None = None,
) -> PreparedFind:
    """The CPU strategy of ``disk_sparse_find``: direct sums in fused Numba passes, or for
    windows inside the frame a full-frame FFT correlation where that is cheaper (needs
    ``sig_shape``)."""
    return PreparedFind(template, positions, search, refine, min_height, input_dtype, sig_shape)


def prepare_find_gpu(
    template: Any,
    positions: Any,
    search: int,
    refine: str,
    min_height: float,
    input_dtype: Any,
    sig_shape: tuple[int, int] | None = None,
) -> Callable[[Any, Any, Any, Any], None]:
    """The GPU strategy of ``disk_sparse_find``: window maps, then their peaks."""
    from libertem_gpu.kernels import disk_corr, disk_peaks

    half = int(search) + REACH[refine]
    corr = disk_corr.prepare_sparse_gpu(template, positions, half, input_dtype)
    find = disk_peaks.prepare_sparse_gpu(positions, search, min_height, refine)
    xp = disk_peaks._xp(True)
    m = 2 * half + 1

    def kernel(tile: Any, peaks: Any, heights: Any, found: Any) -> None:
        maps = xp.empty((len(tile), len(positions), m, m), corr.dtype)
        corr(tile, maps)
        find(maps, peaks, heights, found)

    return kernel


def prepare_find_reference(
    template: Any,
    positions: Any,
    search: int,
    refine: str,
    min_height: float,
    input_dtype: Any,
    sig_shape: tuple[int, int] | None = None,
) -> Callable[[Any, Any, Any, Any], None]:
    """The reference: full maps (:func:`~libertem_gpu.disks.peaks.correlate_sparse`), then
    their peaks as ``disk_peaks_sparse``'s reference finds them."""
    from libertem_gpu.disks.peaks import correlate_sparse
    from libertem_gpu.kernels.disk_peaks import prepare_sparse_reference

    find = prepare_sparse_reference(positions, search, min_height, refine)

    def kernel(tile: Any, peaks: Any, heights: Any, found: Any) -> None:
        maps = correlate_sparse(tile, template, positions, search, REACH[refine])
        find(maps, peaks, heights, found)

    return kernel
