"""Sums of frames weighed per frame: ``out += weights.T @ tile``, the transpose of a mask
product (each output a frame-shaped sum of the tile's frames, ``weights[i, j]`` the weight of
frame ``i`` in sum ``j``); with ``squared``, of the frames' squares (``tile**2`` in float64),
for weighted second moments.

The reference sums in float64 from the definition; the plain kernel set (small CPU runs) and
the GPU share array code (a float64 matrix product, NumPy's BLAS or cuBLAS, the tile
converted to float64 a block of frames at a time); the CPU one (Numba,
:mod:`~libertem_gpu.kernels.weighted_sum_cpu`) converts the pixels as it reads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["gpu", "plain", "reference"]

#: Bytes of one block's float64 copy of the tile.
_BLOCK_BYTES = 16 * 2**20


def reference(tile: np.ndarray, weights: np.ndarray, squared: bool = False) -> np.ndarray:
    """``weights.T @ tile`` (``tile**2`` if ``squared``) in float64, ``(l, npix)``, frame by
    frame."""
    values = np.asarray(tile, dtype=np.float64).reshape(len(tile), -1)
    if squared:
        values = values * values
    w = np.asarray(weights, dtype=np.float64)
    out = np.zeros((w.shape[1], values.shape[1]))
    for i in range(len(values)):
        out += np.outer(w[i], values[i])
    return out


def _accumulate(xp: Any, tile: Any, weights: Any, out: Any, squared: bool) -> None:
    n = int(tile.shape[0])
    flat = tile.reshape(n, -1)
    step = max(1, _BLOCK_BYTES // max(8 * int(flat.shape[1]), 1))
    for a in range(0, n, step):
        b = min(n, a + step)
        block = flat[a:b].astype(np.float64)
        if squared:
            block *= block
        out += weights[a:b].T.astype(np.float64, copy=False) @ block


def plain(tile: np.ndarray, weights: np.ndarray, out: np.ndarray, squared: bool = False) -> None:
    """NumPy: ``out`` (float64 ``(l, npix)``) ``+= weights.T @ tile`` (``tile (n, npix)``,
    ``weights (n, l)``; ``tile**2`` if ``squared``)."""
    _accumulate(np, tile, weights, out, squared)


def gpu(tile: Any, weights: Any, out: Any, squared: bool = False) -> None:
    """CuPy twin of :func:`plain` (arguments on the device)."""
    from libertem_gpu.kernels import gpu_common as g

    _accumulate(g.cupy(), tile, weights, out, squared)
