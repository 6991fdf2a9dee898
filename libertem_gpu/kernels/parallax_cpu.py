"""Shift-and-add of bright-field pixels on the CPU (Numba); the reference and the GPU
implementation are in :mod:`libertem_gpu.kernels.parallax`."""

from __future__ import annotations

import math

import numba
import numpy as np

from libertem_gpu.kernels.tiles import as_rows

__all__ = ["cpu"]


@numba.njit(nogil=True, cache=True)
def _splat(a, pixels, scale, positions, offsets, total, weight):
    rows, cols = total.shape
    for i in range(a.shape[0]):
        frame = a[i]
        py = positions[i, 0]
        px = positions[i, 1]
        for j in range(pixels.shape[0]):
            value = np.float64(frame[pixels[j]]) * scale[j]
            y = py + offsets[j, 0]
            x = px + offsets[j, 1]
            fy0 = math.floor(y)
            fx0 = math.floor(x)
            fy = y - fy0
            fx = x - fx0
            y0 = np.int64(fy0)
            x0 = np.int64(fx0)
            for dy in range(2):
                yy = y0 + dy
                if yy < 0 or yy >= rows:
                    continue
                wy = fy if dy else 1.0 - fy
                for dx in range(2):
                    xx = x0 + dx
                    if xx < 0 or xx >= cols:
                        continue
                    w = wy * (fx if dx else 1.0 - fx)
                    total[yy, xx] += w * value
                    weight[yy, xx] += w


def cpu(
    tile: np.ndarray,
    pixels: np.ndarray,
    scale: np.ndarray,
    positions: np.ndarray,
    offsets: np.ndarray,
    total: np.ndarray,
    weight: np.ndarray,
) -> None:
    """``total``, ``weight`` (float64 images) += the tile's shares (see the module
    :mod:`libertem_gpu.kernels.parallax`); one thread: partitions run side by side."""
    a, _ = as_rows(tile)
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    _splat(a, pixels, scale, positions, offsets, total, weight)
