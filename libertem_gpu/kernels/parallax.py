"""Shift-and-add of bright-field pixels (parallax imaging): each frame's chosen detector pixels,
scaled, are added to an image at the frame's scan position moved by each pixel's own offset,
shared between the four nearest image pixels by bilinear weights.

For frame ``i`` at image position ``positions[i]`` and pixel ``j`` (flat index ``pixels[j]`` of
the tile's pixels) with offset ``offsets[j]``, the value ``tile[i, pixels[j]] * scale[j]`` goes
to the point ``positions[i] + offsets[j]`` (row, column, in image pixels): its bilinear weights
``w`` on the four image pixels around the point are added to ``weight`` and ``w * value`` to
``total``; corners off the image are left out. ``total / weight`` is then the image.

The reference sums with ``numpy.bincount``; the plain and the GPU implementations are the same
array code (NumPy or CuPy); the CPU one (Numba, :mod:`~libertem_gpu.kernels.parallax_cpu`)
loops.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

__all__ = ["gpu", "plain", "reference"]

#: Frames per step of the array implementations: their temporaries hold four entries per
#: frame and pixel.
_STEP_ENTRIES = 2**21


def _corners(xp: Any, points_y: Any, points_x: Any, shape: tuple[int, int]) -> tuple[Any, Any]:
    """Flat image indices and bilinear weights of the four pixels around each point (points
    whose corner is off the image get weight 0 on it and index 0)."""
    rows, cols = shape
    y0 = xp.floor(points_y)
    x0 = xp.floor(points_x)
    fy = points_y - y0
    fx = points_x - x0
    y0 = y0.astype(np.int64)
    x0 = x0.astype(np.int64)
    indices, weights = [], []
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            y, x = y0 + dy, x0 + dx
            inside = (y >= 0) & (y < rows) & (x >= 0) & (x < cols)
            indices.append(xp.where(inside, y * cols + x, 0))
            weights.append(xp.where(inside, wy * wx, 0.0))
    return xp.stack(indices), xp.stack(weights)


def reference(
    tile: np.ndarray,
    pixels: np.ndarray,
    scale: np.ndarray,
    positions: np.ndarray,
    offsets: np.ndarray,
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """``(total, weight)`` of ``shape`` for a whole tile, in float64 (module docstring).

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` frames (or row slabs of them).
    pixels : numpy.ndarray
        int64 ``(m,)``: the tile's pixels that count.
    scale : numpy.ndarray
        float64 ``(m,)``: each pixel's factor.
    positions : numpy.ndarray
        float64 ``(n, 2)``: each frame's point on the image (row, column).
    offsets : numpy.ndarray
        float64 ``(m, 2)``: each pixel's offset from it.
    shape : tuple of int
        The image's ``(rows, columns)``.
    """
    values = np.asarray(tile, dtype=np.float64)[:, pixels] * scale
    points = positions[:, None, :] + offsets[None, :, :]
    index, w = _corners(np, points[..., 0], points[..., 1], shape)
    size = shape[0] * shape[1]
    total = np.bincount(index.reshape(-1), (w * values).reshape(-1), minlength=size)
    weight = np.bincount(index.reshape(-1), w.reshape(-1), minlength=size)
    return total.reshape(shape), weight.reshape(shape)


def _splat(
    xp: Any,
    tile: Any,
    pixels: Any,
    scale: Any,
    positions: Any,
    offsets: Any,
    total: Any,
    weight: Any,
) -> None:
    """``total``, ``weight`` += the tile's shares, a block of frames at a time (NumPy or CuPy)."""
    shape = (int(total.shape[0]), int(total.shape[1]))
    size = shape[0] * shape[1]
    n, m = int(tile.shape[0]), int(pixels.shape[0])
    if n == 0 or m == 0:
        return
    step = max(1, _STEP_ENTRIES // (4 * m))
    flat_total = total.reshape(-1)
    flat_weight = weight.reshape(-1)
    for a in range(0, n, step):
        b = min(n, a + step)
        values = tile[a:b][:, pixels].astype(np.float64) * scale
        points_y = positions[a:b, 0][:, None] + offsets[None, :, 0]
        points_x = positions[a:b, 1][:, None] + offsets[None, :, 1]
        index, w = _corners(xp, points_y, points_x, shape)
        index = index.reshape(-1)
        flat_total += xp.bincount(index, (w * values).reshape(-1), minlength=size)
        flat_weight += xp.bincount(index, w.reshape(-1), minlength=size)


def plain(
    tile: np.ndarray,
    pixels: np.ndarray,
    scale: np.ndarray,
    positions: np.ndarray,
    offsets: np.ndarray,
    total: np.ndarray,
    weight: np.ndarray,
) -> None:
    """NumPy: ``total``, ``weight`` (float64 images) += the tile's shares."""
    _splat(np, tile, pixels, scale, positions, offsets, total, weight)


def gpu(
    tile: Any, pixels: Any, scale: Any, positions: Any, offsets: Any, total: Any, weight: Any
) -> None:
    """CuPy twin of :func:`plain` (arguments on the device)."""
    from libertem_gpu.kernels import gpu_common as g

    _splat(g.cupy(), tile, pixels, scale, positions, offsets, total, weight)


# The CPU kernel (Numba) lives in ``parallax_cpu``, so that the reference imports no Numba.
_MOVED = frozenset({"cpu"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("libertem_gpu.kernels.parallax_cpu"), name)
