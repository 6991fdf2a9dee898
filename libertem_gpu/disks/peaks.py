"""Disk finding on a NumPy stack of frames: the reference path, written plainly from the
definitions, which the operations of :mod:`libertem_gpu.kernels.disk_corr` (CPU and GPU) and
the UDFs are tested against.

Definitions
-----------
Correlation (full frame, circular)
    ``C[p] = sum_q f[(p + q - c) mod (rows, cols)] t[q]`` for a template ``t`` with centre pixel
    ``c = (t_rows // 2, t_cols // 2)``: a disk centred at ``p`` gives a peak at ``p``. Frames
    wrap around (as an FFT correlation does): a disk nearer an edge than the template's half
    size also sees the opposite edge.
Sparse correlation
    Around each expected position ``P_k`` (rounded to the nearest pixel) the same sum for
    shifts ``d`` of ``-(search + reach) .. search + reach`` in each axis (``reach``: what the
    refinement reads around a peak, 3 for ``"com"``, else 1), frame pixels outside the frame
    counting as zero: maps ``2 (search + reach) + 1`` square per position.
Peaks (full frame)
    Pixels at least as high as their 8 neighbours (circular) and above ``min_height``, taken in
    descending height (ties: lower flat index first), each kept if it lies at least ``min_dist``
    pixels (Euclidean) from every peak kept before, until ``n_peaks`` are kept.
Peaks (sparse)
    The highest pixel of each map within ``search`` of the expected position (per axis; ties:
    the first in row-major order); kept if it is above ``min_height`` and at least as high as
    its 8 neighbours (a local maximum, not a slope rising out of the window).
Refinement (subpixel)
    ``"com"``: centre of mass of the 7x7 neighbourhood weighted by its excess over the highest
    value on that square's rim; ``"parabolic"``: the vertex of a parabola through the peak and
    its two neighbours, per axis; ``"upsampled"``: the maximum, on a grid of step
    ``1 / upsample`` within 0.75 pixels of the peak, of the band-limited (DFT) interpolation of
    the correlation of a frame crop (the template's size plus one pixel per side) with the
    template (see :func:`upsampled_offset`). Offsets are added to the peak pixel.
Heights are the correlation at the peak pixel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError

__all__ = [
    "REFINE_METHODS",
    "check_peak_params",
    "correlate",
    "correlate_sparse",
    "find_peaks",
    "find_peaks_sparse",
    "refine_peak",
    "select_peaks",
    "sparse_maps_peaks",
]

#: Subpixel refinement methods.
REFINE_METHODS = ("com", "parabolic", "upsampled")


def check_peak_params(
    refine: str, upsample: Any, min_height: Any, n_peaks: Any = 1, min_dist: Any = 0.0
) -> tuple[str, int, float, int, float]:
    """The peak parameters checked and converted; clear errors before any data is read."""
    if refine not in REFINE_METHODS:
        raise InvalidParameterError(f"refine must be one of {REFINE_METHODS}, got {refine!r}")
    try:
        up = int(upsample)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"upsample must be an integer >= 2, got {upsample!r}") from None
    if up != upsample or up < 2:
        raise InvalidParameterError(f"upsample must be an integer >= 2, got {upsample!r}")
    try:
        h = float(min_height)
        n = int(n_peaks)
        d = float(min_dist)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            "min_height and min_dist must be numbers and n_peaks an integer, got "
            f"{min_height!r}, {min_dist!r}, {n_peaks!r}"
        ) from None
    if math.isnan(h):
        raise InvalidParameterError("min_height must be a number, got NaN")
    if n != n_peaks or n < 1:
        raise InvalidParameterError(f"n_peaks must be an integer >= 1, got {n_peaks!r}")
    if not (d >= 0 and math.isfinite(d)):
        raise InvalidParameterError(f"min_dist must be >= 0 and finite, got {min_dist!r}")
    return refine, up, h, n, d


def _centre(template: np.ndarray) -> tuple[int, int]:
    return template.shape[0] // 2, template.shape[1] // 2


def correlate(frames: Any, template: Any) -> np.ndarray:
    """Circular correlation of each frame with ``template`` (see the module), float64
    ``(n, rows, cols)``."""
    frames = np.asarray(frames, np.float64)
    t = np.asarray(template, np.float64)
    rows, cols = frames.shape[1:]
    padded = np.zeros((rows, cols))
    cy, cx = _centre(t)
    qy, qx = np.mgrid[: t.shape[0], : t.shape[1]]
    np.add.at(padded, ((qy - cy) % rows, (qx - cx) % cols), t)
    spec = np.fft.fft2(frames) * np.conj(np.fft.fft2(padded))
    return np.fft.ifft2(spec).real


def integer_positions(positions: Any) -> np.ndarray:
    """Expected positions rounded to the nearest pixel (halves up), int64 ``(P, 2)``."""
    return np.floor(np.asarray(positions, np.float64) + 0.5).astype(np.int64)


def correlate_sparse(
    frames: Any, template: Any, positions: Any, search: int, reach: int = 1
) -> np.ndarray:
    """The sparse correlation maps (see the module), float64 ``(n, P, M, M)``,
    ``M = 2 (search + reach) + 1``."""
    frames = np.asarray(frames, np.float64)
    t = np.asarray(template, np.float64)
    pos = integer_positions(positions)
    n, rows, cols = frames.shape
    th, tw = t.shape
    cy, cx = _centre(t)
    half = search + reach
    m = 2 * half + 1
    padded = np.zeros((n, rows + 2 * (th + m), cols + 2 * (tw + m)))
    oy, ox = th + m, tw + m
    padded[:, oy : oy + rows, ox : ox + cols] = frames
    out = np.zeros((n, len(pos), m, m))
    for k, (py, px) in enumerate(pos):
        for a in range(m):
            for b in range(m):
                y0 = py + a - half - cy + oy
                x0 = px + b - half - cx + ox
                if not (0 <= y0 <= padded.shape[1] - th and 0 <= x0 <= padded.shape[2] - tw):
                    continue  # entirely outside the frame: zero
                window = padded[:, y0 : y0 + th, x0 : x0 + tw]
                out[:, k, a, b] = np.tensordot(window, t, axes=([1, 2], [0, 1]))
    return out


#: How far each refinement reads around the peak pixel (pixels per axis).
REACH = {"com": 3, "parabolic": 1, "upsampled": 1}


def _upsampled_offset(values: np.ndarray, py: int, px: int, upsample: int) -> tuple[float, float]:
    """The offset from pixel ``(py, px)`` of the maximum of the band-limited interpolation of
    the periodic 2-D ``values``, on a grid of step ``1 / upsample`` within 0.75 pixels."""
    rows, cols = values.shape
    spec = np.fft.fft2(values)
    half = math.ceil(0.75 * upsample)
    steps = np.arange(-half, half + 1) / upsample
    ky = np.fft.fftfreq(rows) * rows
    kx = np.fft.fftfreq(cols) * cols
    ey = np.exp(2j * np.pi * np.outer(py + steps, ky) / rows)
    ex = np.exp(2j * np.pi * np.outer(kx, px + steps) / cols)
    grid = (ey @ spec @ ex).real
    a, b = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return float(steps[a]), float(steps[b])


def upsampled_offset(
    frame: np.ndarray, template: np.ndarray, py: int, px: int, upsample: int, wrap: bool
) -> tuple[float, float]:
    """``"upsampled"`` refinement of the peak at pixel ``(py, px)``: the frame's crop of the
    template's size plus one pixel on each side, centred there (circular with ``wrap``, else
    zero outside the frame), correlated circularly with the template; its 3x3 centre equals
    the correlation around the peak, and the rest of the crop's correlation supplies the
    spectrum that is interpolated (as blobfinder's fast correlation does)."""
    th, tw = template.shape
    cy, cx = _centre(template)
    rows, cols = frame.shape
    ys = py - cy - 1 + np.arange(th + 2)
    xs = px - cx - 1 + np.arange(tw + 2)
    if wrap:
        crop = frame[np.ix_(ys % rows, xs % cols)].astype(np.float64)
    else:
        inside = (ys[:, None] >= 0) & (ys[:, None] < rows) & (xs >= 0) & (xs < cols)
        crop = np.where(
            inside, frame[np.ix_(np.clip(ys, 0, rows - 1), np.clip(xs, 0, cols - 1))], 0.0
        )
    padded = np.zeros(crop.shape)
    padded[:th, :tw] = template
    corr = np.fft.ifft2(np.fft.fft2(crop) * np.conj(np.fft.fft2(padded))).real
    return _upsampled_offset(corr, 1, 1, upsample)


def refine_peak(corr: np.ndarray, py: int, px: int, refine: str) -> tuple[float, float]:
    """``"com"`` or ``"parabolic"`` subpixel offset of the peak at pixel ``(py, px)`` of the
    periodic map ``corr``: com weighs the 7x7 neighbourhood by its excess over the highest
    value on that square's rim (so that the weighted region is whole and symmetric about the
    true peak); parabolic fits each axis through the peak and its two neighbours."""
    rows, cols = corr.shape
    r = REACH[refine]
    d = np.arange(-r, r + 1)
    hood = corr[np.ix_((py + d) % rows, (px + d) % cols)].astype(np.float64)
    if refine == "com":
        rim = max(hood[0].max(), hood[-1].max(), hood[:, 0].max(), hood[:, -1].max())
        w = np.clip(hood - rim, 0.0, None)
        total = w.sum()
        if total <= 0:
            return 0.0, 0.0
        return float((w.sum(axis=1) * d).sum() / total), float((w.sum(axis=0) * d).sum() / total)
    out = []
    for lo, mid, hi in ((hood[0, 1], hood[1, 1], hood[2, 1]), (hood[1, 0], hood[1, 1], hood[1, 2])):
        den = lo - 2 * mid + hi
        out.append(0.0 if den >= 0 else float(0.5 * (lo - hi) / den))
    return out[0], out[1]


def select_peaks(
    corr: np.ndarray, n_peaks: int, min_dist: float, min_height: float
) -> list[tuple[int, int]]:
    """The peaks of one full-frame correlation map (see the module), strongest first."""
    cols = corr.shape[1]
    local = np.ones(corr.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                local &= corr >= np.roll(corr, (dy, dx), axis=(0, 1))
    local &= corr > min_height
    flat = np.flatnonzero(local)
    values = corr.reshape(-1)[flat]
    order = flat[np.lexsort((flat, -values))]
    kept: list[tuple[int, int]] = []
    for index in order:
        y, x = divmod(int(index), cols)
        if all((y - ky) ** 2 + (x - kx) ** 2 >= min_dist**2 for ky, kx in kept):
            kept.append((y, x))
            if len(kept) == n_peaks:
                break
    return kept


def find_peaks(
    frames: Any,
    template: Any,
    n_peaks: int,
    min_dist: float | None = None,
    refine: str = "com",
    upsample: int = 20,
    min_height: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``n_peaks`` strongest correlation peaks of each frame, refined to subpixel positions.

    Parameters
    ----------
    frames : array_like
        ``(n, rows, cols)`` (or one ``(rows, cols)`` frame).
    template : array_like
        A template (e.g. :func:`~libertem_gpu.disks.disk_template`); normalised here.
    n_peaks : int
        Peaks per frame.
    min_dist : float, optional
        Least distance between two peaks in pixels; by default half the template's smaller side.
    refine : {"com", "parabolic", "upsampled"}
        Subpixel refinement (see the module).
    upsample : int
        Upsampling factor of ``"upsampled"`` (its grid step is ``1 / upsample`` pixels).
    min_height : float
        Peaks must be higher than this (in frame units times the normalised template).

    Returns
    -------
    peaks : numpy.ndarray
        float32 ``(n, n_peaks, 2)`` positions ``(y, x)``, NaN where fewer peaks were found.
    heights : numpy.ndarray
        float32 ``(n, n_peaks)``, descending, NaN where none.
    n_found : numpy.ndarray
        int32 ``(n,)``.
    """
    from libertem_gpu.disks.templates import user_template

    t = user_template(template)
    if min_dist is None:
        min_dist = min(t.shape) // 2
    refine, upsample, min_height, n_peaks, min_dist = check_peak_params(
        refine, upsample, min_height, n_peaks, min_dist
    )
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    corr = correlate(frames, t)
    peaks = np.full((len(frames), n_peaks, 2), np.nan, np.float32)
    heights = np.full((len(frames), n_peaks), np.nan, np.float32)
    found = np.zeros(len(frames), np.int32)
    for i, c in enumerate(corr):
        kept = select_peaks(c, n_peaks, min_dist, min_height)
        found[i] = len(kept)
        for j, (y, x) in enumerate(kept):
            if refine == "upsampled":
                oy, ox = upsampled_offset(frames[i], t, y, x, upsample, wrap=True)
            else:
                oy, ox = refine_peak(c, y, x, refine)
            peaks[i, j] = (y + oy, x + ox)
            heights[i, j] = c[y, x]
    return peaks, heights, found


def sparse_maps_peaks(
    frames: np.ndarray,
    template: np.ndarray,
    maps: np.ndarray,
    positions: Any,
    search: int,
    refine: str,
    upsample: int,
    min_height: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of sparse correlation maps ``(n, P, M, M)`` of ``frames`` (see the module):
    ``(peaks, heights, n_found)`` as :func:`find_peaks_sparse` returns them."""
    pos = integer_positions(positions)
    n, count, m, _ = maps.shape
    half = m // 2
    peaks = np.full((n, count, 2), np.nan, np.float32)
    heights = np.full((n, count), np.nan, np.float32)
    for i in range(n):
        for k in range(count):
            c = maps[i, k]
            a, b = sparse_peak(c, search)
            if not is_peak(c, a, b, min_height):
                continue
            y, x = pos[k, 0] + a - half, pos[k, 1] + b - half
            if refine == "upsampled":
                oy, ox = upsampled_offset(frames[i], template, y, x, upsample, wrap=False)
            else:
                oy, ox = refine_peak(c, a, b, refine)
            peaks[i, k] = (y + oy, x + ox)
            heights[i, k] = c[a, b]
    return peaks, heights, np.sum(~np.isnan(heights), axis=1).astype(np.int32)


def sparse_peak(c: np.ndarray, search: int) -> tuple[int, int]:
    """The highest pixel of the map ``c`` within ``search`` of its centre."""
    half = c.shape[0] // 2
    core = c[half - search : half + search + 1, half - search : half + search + 1]
    a, b = np.unravel_index(int(np.argmax(core)), core.shape)
    return int(a) + half - search, int(b) + half - search


def is_peak(c: np.ndarray, a: int, b: int, min_height: float) -> bool:
    """Whether pixel ``(a, b)`` of the map ``c`` (not on its rim) is above ``min_height`` and
    at least as high as its 8 neighbours."""
    return bool(c[a, b] > min_height and c[a, b] >= c[a - 1 : a + 2, b - 1 : b + 2].max())


def find_peaks_sparse(
    frames: Any,
    template: Any,
    positions: Any,
    search: int = 2,
    refine: str = "com",
    upsample: int = 20,
    min_height: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The correlation peak near each expected position, refined to subpixel positions.

    Parameters
    ----------
    frames : array_like
        ``(n, rows, cols)`` (or one frame).
    template : array_like
        Normalised here.
    positions : array_like
        ``(P, 2)`` expected positions ``(y, x)`` (rounded to the nearest pixel).
    search : int
        Largest shift from an expected position, in pixels, per axis.
    refine, upsample, min_height
        As in :func:`find_peaks`.

    Returns
    -------
    peaks : numpy.ndarray
        float32 ``(n, P, 2)``; row ``k`` belongs to position ``k``; NaN where the search window
        holds no maximum above ``min_height`` inside it.
    heights : numpy.ndarray
        float32 ``(n, P)``, NaN where none.
    n_found : numpy.ndarray
        int32 ``(n,)``.
    """
    from libertem_gpu.disks.templates import user_template

    t = user_template(template)
    refine, upsample, min_height, _, _ = check_peak_params(refine, upsample, min_height)
    search = check_search(search)
    pos = check_positions(positions)
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    maps = correlate_sparse(frames, t, pos, search, REACH[refine])
    return sparse_maps_peaks(frames, t, maps, pos, search, refine, upsample, min_height)


def check_search(search: Any) -> int:
    """``search`` as a non-negative integer, or a clear error."""
    try:
        s = int(search)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"search must be an integer >= 1, got {search!r}") from None
    if s != search or s < 1:
        raise InvalidParameterError(f"search must be an integer >= 1, got {search!r}")
    return s


def check_positions(positions: Any) -> np.ndarray:
    """Expected positions as float64 ``(P, 2)``, finite, at least one; or a clear error."""
    pos = np.asarray(positions, dtype=np.float64) if positions is not None else np.zeros(0)
    if pos.ndim != 2 or pos.shape[1] != 2 or len(pos) == 0 or not np.all(np.isfinite(pos)):
        raise InvalidParameterError(
            "peaks must be a finite (P, 2) array of (y, x) positions with P >= 1, got shape "
            f"{pos.shape}"
        )
    return pos
