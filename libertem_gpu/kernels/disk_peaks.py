"""Peaks of correlation maps and their subpixel refinement, as defined in
:mod:`libertem_gpu.disks.peaks` (whose plain NumPy functions are the references).

Three operations, each a ``prepare`` per backend:

- ``disk_peaks_full``: ``(maps (n, rows, cols), peaks (n, N, 2), heights (n, N), found (n,))``,
  the ``N`` strongest local maxima of each full-frame map at least ``min_dist`` apart, refined
  by ``"com"`` or ``"parabolic"`` (``"upsampled"`` leaves the peak pixel, refined by
  ``disk_refine_upsampled``). CPU: one Numba pass per frame (local maxima, a stable sort,
  greedy selection); GPU: local maxima and a segmented sort in CuPy, the greedy selection a
  Numba-CUDA thread per frame; the refinement is array code shared by both.
- ``disk_peaks_sparse``: ``(maps (n, P, M, M), peaks (n, P, 2), heights (n, P), found (n,))``,
  the highest pixel of each window map, kept within ``search`` of the window's centre; array
  code on either backend.
- ``disk_refine_upsampled``: ``(tile, frame (K,), iy (K,), ix (K,), out (K, 2))``: the
  ``"upsampled"`` offsets of peaks at integer pixels, from crops of the frames (float64, as
  the reference: a few hundred pixels per peak).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numba
import numpy as np

from libertem_gpu.disks.peaks import REACH
from libertem_gpu.kernels.fourier import _host

__all__ = [
    "prepare_full",
    "prepare_full_gpu",
    "prepare_full_reference",
    "prepare_sparse",
    "prepare_sparse_gpu",
    "prepare_sparse_reference",
    "prepare_upsampled",
    "prepare_upsampled_gpu",
    "prepare_upsampled_reference",
    "refine_offsets",
]

cuda: Any = None


def _xp(gpu: bool) -> ModuleType:
    if gpu:
        from libertem_gpu.kernels.gpu_common import cupy

        return cupy()  # type: ignore[no-any-return]
    return np


# --- refinement from maps: array code over xp ----------------------------------------------------


def refine_offsets(xp: ModuleType, maps: Any, index: Any, iy: Any, ix: Any, refine: str) -> Any:
    """``"com"`` or ``"parabolic"`` offsets ``(K, 2)`` float64 of the peaks at pixels
    ``(iy, ix)`` of maps ``maps[index]`` (maps periodic: neighbourhoods wrap)."""
    rows, cols = maps.shape[-2:]
    r = REACH[refine]
    d = xp.arange(-r, r + 1)
    ys = (iy[:, None] + d) % rows
    xs = (ix[:, None] + d) % cols
    hood = maps[index[:, None, None], ys[:, :, None], xs[:, None, :]].astype(np.float64)
    if refine == "com":
        rim = xp.maximum(
            xp.maximum(hood[:, 0].max(axis=1), hood[:, -1].max(axis=1)),
            xp.maximum(hood[:, :, 0].max(axis=1), hood[:, :, -1].max(axis=1)),
        )
        w = xp.maximum(hood - rim[:, None, None], 0.0)
        total = w.sum(axis=(1, 2))
        safe = xp.where(total > 0, total, 1.0)
        dd = d.astype(np.float64)
        oy = xp.where(total > 0, (w.sum(axis=2) * dd).sum(axis=1) / safe, 0.0)
        ox = xp.where(total > 0, (w.sum(axis=1) * dd).sum(axis=1) / safe, 0.0)
        return xp.stack([oy, ox], axis=1)
    out = []
    for lo, mid, hi in (
        (hood[:, 0, 1], hood[:, 1, 1], hood[:, 2, 1]),
        (hood[:, 1, 0], hood[:, 1, 1], hood[:, 1, 2]),
    ):
        den = lo - 2 * mid + hi
        ok = den < 0
        out.append(xp.where(ok, 0.5 * (lo - hi) / xp.where(ok, den, -1.0), 0.0))
    return xp.stack(out, axis=1)


def _write(
    xp: ModuleType,
    maps: Any,
    index: Any,
    iy: Any,
    ix: Any,
    y: Any,
    x: Any,
    refine: str,
    peaks: Any,
    heights: Any,
    slot: Any,
) -> None:
    """Refine the peaks ``(index, iy, ix)`` and write them at ``[index, slot]``, placed at
    ``(y, x)`` plus the offset (``"upsampled"``: the pixel; its offsets come later)."""
    if len(index) == 0:
        return
    if refine == "upsampled":
        off = xp.zeros((len(index), 2))
    else:
        off = refine_offsets(xp, maps, index, iy, ix, refine)
    peaks[index, slot, 0] = y + off[:, 0]
    peaks[index, slot, 1] = x + off[:, 1]
    heights[index, slot] = maps[index, iy, ix]


# --- full frame: selection -----------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _select_cpu(maps, n_peaks, min_dist2, min_height, sel):  # type: ignore[no-untyped-def]
    """Per frame the flat indices of the kept peaks (``sel[i, :count]``), strongest first;
    returns the counts."""
    n, rows, cols = maps.shape
    counts = np.zeros(n, np.int64)
    cand = np.empty(rows * cols, np.int64)
    vals = np.empty(rows * cols, np.float64)
    for i in range(n):
        c = maps[i]
        cnt = 0
        for y in range(rows):
            inner_y = 0 < y < rows - 1
            for x in range(cols):
                v = c[y, x]
                if not v > min_height:
                    continue
                ok = True
                if inner_y and 0 < x < cols - 1:  # no wrapping: no modulo
                    for dy in range(-1, 2):
                        for dx in range(-1, 2):
                            if c[y + dy, x + dx] > v:
                                ok = False
                else:
                    for dy in range(-1, 2):
                        yy = (y + dy) % rows
                        for dx in range(-1, 2):
                            if c[yy, (x + dx) % cols] > v:
                                ok = False
                if ok:
                    cand[cnt] = y * cols + x
                    vals[cnt] = -v
                    cnt += 1
        order = np.argsort(vals[:cnt], kind="mergesort")  # stable: ties by flat index
        kept = 0
        for j in range(cnt):
            p = cand[order[j]]
            y = p // cols
            x = p - y * cols
            far = True
            for q in range(kept):
                ky = sel[i, q] // cols
                kx = sel[i, q] - ky * cols
                if (y - ky) ** 2 + (x - kx) ** 2 < min_dist2:
                    far = False
                    break
            if far:
                sel[i, kept] = p
                kept += 1
                if kept == n_peaks:
                    break
        counts[i] = kept
    return counts


def _select_kernel(order, vals, n_peaks, min_dist2, cols, sel, counts):  # type: ignore[no-untyped-def]
    # Numba-CUDA kernel body, compiled through _cuda_select(): a thread per frame walks its
    # candidates, strongest first.
    i = cuda.grid(1)
    if i >= order.shape[0]:
        return
    kept = 0
    for j in range(order.shape[1]):
        p = order[i, j]
        if vals[i, p] == -math.inf or kept == n_peaks:
            break
        y = p // cols
        x = p - y * cols
        far = True
        for q in range(kept):
            ky = sel[i, q] // cols
            kx = sel[i, q] - ky * cols
            if (y - ky) ** 2 + (x - kx) ** 2 < min_dist2:
                far = False
                break
        if far:
            sel[i, kept] = p
            kept += 1
    counts[i] = kept


def _cuda_select():
    """Numba-CUDA kernel factory of the greedy peak selection."""
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_select_kernel)


def _select_gpu(
    xp: ModuleType, maps: Any, n_peaks: int, min_dist2: float, min_height: float, sel: Any
) -> Any:
    from libertem_gpu.kernels import gpu_common as g

    n, _, cols = maps.shape
    counts = xp.zeros(n, np.int64)
    if n == 0:
        return counts
    local = maps > min_height
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                local &= maps >= xp.roll(maps, (dy, dx), axis=(1, 2))
    vals = xp.where(local, maps, -math.inf).reshape(n, -1).astype(np.float64)
    order = xp.argsort(-vals, axis=1, kind="stable").astype(np.int64)
    block = 32
    g.launch(
        _cuda_select,
        ((n + block - 1) // block,),
        (block,),
        order,
        vals,
        n_peaks,
        min_dist2,
        cols,
        sel,
        counts,
    )
    return counts


def _full(
    gpu: bool, n_peaks: int, min_dist: float, min_height: float, refine: str
) -> Callable[..., None]:
    xp = _xp(gpu)

    def kernel(maps: Any, peaks: Any, heights: Any, found: Any) -> None:
        n, _, cols = maps.shape
        sel = xp.zeros((n, n_peaks), np.int64)
        args = (n_peaks, float(min_dist) ** 2, float(min_height))
        if gpu:
            counts = _select_gpu(xp, maps, *args, sel)
        else:
            counts = _select_cpu(maps, *args, sel)
        peaks[...] = np.nan
        heights[...] = np.nan
        found[...] = counts.reshape(found.shape)
        slots = xp.arange(n_peaks)
        valid = slots[None, :] < counts[:, None]
        index, slot = xp.nonzero(valid)
        flat = sel[index, slot]
        iy, ix = flat // cols, flat % cols
        _write(xp, maps, index, iy, ix, iy, ix, refine, peaks, heights, slot)

    return kernel


def prepare_full(
    n_peaks: int, min_dist: float, min_height: float, refine: str
) -> Callable[..., None]:
    """The CPU strategy of ``disk_peaks_full``."""
    return _full(False, n_peaks, min_dist, min_height, refine)


def prepare_full_gpu(
    n_peaks: int, min_dist: float, min_height: float, refine: str
) -> Callable[..., None]:
    """The GPU strategy of ``disk_peaks_full``."""
    return _full(True, n_peaks, min_dist, min_height, refine)


def prepare_full_reference(
    n_peaks: int, min_dist: float, min_height: float, refine: str
) -> Callable[..., None]:
    """:func:`~libertem_gpu.disks.peaks.select_peaks` and ``refine_peak`` frame by frame."""
    from libertem_gpu.disks.peaks import refine_peak, select_peaks

    def kernel(maps: Any, peaks: Any, heights: Any, found: Any) -> None:
        peaks[...] = np.nan
        heights[...] = np.nan
        for i, c in enumerate(np.asarray(maps)):
            kept = select_peaks(c, n_peaks, min_dist, min_height)
            found[i] = len(kept)
            for j, (y, x) in enumerate(kept):
                oy, ox = (0.0, 0.0) if refine == "upsampled" else refine_peak(c, y, x, refine)
                peaks[i, j] = (y + oy, x + ox)
                heights[i, j] = c[y, x]

    return kernel


# --- sparse: the maximum of each window map ------------------------------------------------------


def _sparse(
    gpu: bool, positions: Any, search: int, min_height: float, refine: str
) -> Callable[..., None]:
    xp = _xp(gpu)
    pos = xp.asarray(_host(positions).astype(np.int64))

    def kernel(maps: Any, peaks: Any, heights: Any, found: Any) -> None:
        n, count, m, _ = maps.shape
        half = m // 2
        reach = half - search
        side = 2 * search + 1
        core = maps[:, :, reach : reach + side, reach : reach + side].reshape(n, count, -1)
        best = core.argmax(axis=2)
        top = xp.take_along_axis(core, best[..., None], axis=2)[..., 0]
        a, b = best // side + reach, best % side + reach
        flat_maps = maps.reshape(n * count, m, m)
        index = xp.arange(n * count).reshape(n, count)
        d = xp.arange(-1, 2)
        hood = flat_maps[
            index[..., None, None],
            (a[..., None] + d)[..., :, None],
            (b[..., None] + d)[..., None, :],
        ]
        ok = (top > min_height) & (top >= hood.reshape(n, count, 9).max(axis=2))
        peaks[...] = np.nan
        heights[...] = np.nan
        i, k = xp.nonzero(ok)
        ai, bi = a[i, k], b[i, k]
        off = (
            xp.zeros((len(i), 2))
            if refine == "upsampled"
            else refine_offsets(xp, flat_maps, index[i, k], ai, bi, refine)
        )
        peaks[i, k, 0] = pos[k, 0] + ai - half + off[:, 0]
        peaks[i, k, 1] = pos[k, 1] + bi - half + off[:, 1]
        heights[i, k] = top[i, k]
        found[...] = ok.sum(axis=1).reshape(found.shape)

    return kernel


def prepare_sparse(
    positions: Any, search: int, min_height: float, refine: str
) -> Callable[..., None]:
    """The CPU strategy of ``disk_peaks_sparse`` (NumPy)."""
    return _sparse(False, positions, search, min_height, refine)


def prepare_sparse_gpu(
    positions: Any, search: int, min_height: float, refine: str
) -> Callable[..., None]:
    """The GPU strategy of ``disk_peaks_sparse`` (CuPy)."""
    return _sparse(True, positions, search, min_height, refine)


def prepare_sparse_reference(
    positions: Any, search: int, min_height: float, refine: str
) -> Callable[..., None]:
    """The maps' peaks as :func:`~libertem_gpu.disks.peaks.sparse_maps_peaks` finds them
    (``"upsampled"``: the peak pixel)."""
    from libertem_gpu.disks.peaks import integer_positions, is_peak, refine_peak, sparse_peak

    def kernel(maps: Any, peaks: Any, heights: Any, found: Any) -> None:
        pos = integer_positions(positions)
        n, count, m, _ = maps.shape
        half = m // 2
        peaks[...] = np.nan
        heights[...] = np.nan
        for i in range(n):
            for k in range(count):
                c = np.asarray(maps[i, k])
                a, b = sparse_peak(c, search)
                if not is_peak(c, a, b, min_height):
                    continue
                oy, ox = (0.0, 0.0) if refine == "upsampled" else refine_peak(c, a, b, refine)
                peaks[i, k] = (pos[k, 0] + a - half + oy, pos[k, 1] + b - half + ox)
                heights[i, k] = c[a, b]
        found[...] = np.sum(~np.isnan(np.asarray(heights)), axis=1).reshape(found.shape)

    return kernel


# --- upsampled DFT refinement from frame crops ----------------------------------------------------


def _upsampled(gpu: bool, template: Any, upsample: int, wrap: bool) -> Callable[..., None]:
    xp = _xp(gpu)
    t = _host(template).astype(np.float64)
    th, tw = t.shape
    ly, lx = th + 2, tw + 2
    padded = np.zeros((ly, lx))
    padded[:th, :tw] = t
    conj_t = xp.asarray(np.conj(np.fft.fft2(padded)))
    half = math.ceil(0.75 * upsample)
    steps = np.arange(-half, half + 1) / upsample
    ky = np.fft.fftfreq(ly) * ly
    kx = np.fft.fftfreq(lx) * lx
    # the crop's correlation at (1 + u, 1 + v): its spectrum's inverse DFT there
    ey = xp.asarray(np.exp(2j * np.pi * np.outer(1 + steps, ky) / ly))
    ex = xp.asarray(np.exp(2j * np.pi * np.outer(kx, 1 + steps) / lx))
    steps_d = xp.asarray(steps)
    dy = xp.arange(ly) - th // 2 - 1
    dx = xp.arange(lx) - tw // 2 - 1

    def kernel(tile: Any, frame: Any, iy: Any, ix: Any, out: Any) -> None:
        if len(frame) == 0:
            return
        rows, cols = tile.shape[1:]
        ys = iy[:, None] + dy
        xs = ix[:, None] + dx
        if wrap:
            crop = tile[frame[:, None, None], (ys % rows)[:, :, None], (xs % cols)[:, None, :]]
            crop = crop.astype(np.float64)
        else:
            inside = ((ys >= 0) & (ys < rows))[:, :, None] & ((xs >= 0) & (xs < cols))[:, None, :]
            crop = tile[
                frame[:, None, None],
                xp.clip(ys, 0, rows - 1)[:, :, None],
                xp.clip(xs, 0, cols - 1)[:, None, :],
            ].astype(np.float64)
            crop *= inside
        spec = xp.fft.fft2(crop, axes=(-2, -1)) * conj_t
        grid = xp.matmul(xp.matmul(ey, spec), ex).real / (ly * lx)
        best = grid.reshape(len(grid), -1).argmax(axis=1)
        out[:, 0] = steps_d[best // len(steps)]
        out[:, 1] = steps_d[best % len(steps)]

    return kernel


def prepare_upsampled(template: Any, upsample: int, wrap: bool) -> Callable[..., None]:
    """The CPU strategy of ``disk_refine_upsampled`` (NumPy)."""
    return _upsampled(False, template, upsample, wrap)


def prepare_upsampled_gpu(template: Any, upsample: int, wrap: bool) -> Callable[..., None]:
    """The GPU strategy of ``disk_refine_upsampled`` (CuPy)."""
    return _upsampled(True, template, upsample, wrap)


def prepare_upsampled_reference(template: Any, upsample: int, wrap: bool) -> Callable[..., None]:
    """:func:`~libertem_gpu.disks.peaks.upsampled_offset` peak by peak."""
    from libertem_gpu.disks.peaks import upsampled_offset

    t = np.asarray(template, np.float64)

    def kernel(tile: Any, frame: Any, iy: Any, ix: Any, out: Any) -> None:
        for j, (f, y, x) in enumerate(zip(frame, iy, ix, strict=True)):
            out[j] = upsampled_offset(np.asarray(tile[int(f)]), t, int(y), int(x), upsample, wrap)

    return kernel
