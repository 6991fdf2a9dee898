"""The GPU (Numba-CUDA) centre-of-mass kernel, and the GPU ``prepare`` of the
``centre_of_mass`` operation (see :mod:`libertem_gpu.kernels.com`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.com import AppliedCoM
from libertem_gpu.kernels.gpu_common import BLOCK, CHUNK
from libertem_gpu.kernels.tiles import check_no_swap

__all__ = ["gpu", "prepare"]


# ``numba.cuda`` in the kernel bodies: bound by ``bind_cuda`` when they are compiled, so that
# importing this module imports no CUDA.
cuda: Any = None


def _com_kernel(a, weights, row_offset, out_total, out_y, out_x):
    # Numba-CUDA kernel body; compiled through _cuda_com().
    i = cuda.blockIdx.x
    t = cuda.threadIdx.x
    cols = a.shape[2]
    npix = a.shape[1] * cols
    c0 = cuda.blockIdx.y * CHUNK
    c1 = min(c0 + CHUNK, npix)
    st = 0.0
    sy = 0.0
    sx = 0.0
    for p in range(c0 + t, c1, BLOCK):
        r = p // cols
        c = p - r * cols
        v = float(a[i, r, c]) * float(weights[row_offset + r, c])
        st += v
        sy += v * (row_offset + r)
        sx += v * c
    s_t = cuda.shared.array(BLOCK, "float64")
    s_y = cuda.shared.array(BLOCK, "float64")
    s_x = cuda.shared.array(BLOCK, "float64")
    s_t[t] = st
    s_y[t] = sy
    s_x[t] = sx
    cuda.syncthreads()
    step = BLOCK // 2
    while step > 0:
        if t < step:
            s_t[t] += s_t[t + step]
            s_y[t] += s_y[t + step]
            s_x[t] += s_x[t + step]
        cuda.syncthreads()
        step //= 2
    if t == 0:
        cuda.atomic.add(out_total, i, s_t[0])
        cuda.atomic.add(out_y, i, s_y[0])
        cuda.atomic.add(out_x, i, s_x[0])


def _cuda_com():
    """Numba-CUDA kernel factory: conversion, weighting and the three moment sums of a slab of
    frame rows in one pass; block ``(i, chunk)`` reduces a chunk of frame ``i`` in shared memory
    and adds it atomically."""
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_com_kernel)


def gpu(tile3d, weights, row_offset: int, out_total, out_y, out_x, swap: bool = False) -> None:
    """CUDA twin of :func:`libertem_gpu.kernels.com_cpu.cpu` on CuPy arrays (same arguments;
    ``weights`` should already be a float64 CuPy array, ``tile3d`` may be the raw integer tile
    with any strides; ``swap`` must be False: the backend converts byte order on the device)."""
    import cupy as cp

    from libertem_gpu.kernels import gpu_common as g

    check_no_swap(swap, tile3d.dtype)
    if tile3d.ndim != 3:
        raise ShapeMismatchError(f"tile3d must be 3-D (n, rows, cols), got {tile3d.shape}")
    if tile3d.dtype == np.bool_:
        tile3d = tile3d.view(np.uint8)
    n, rows, cols = tile3d.shape
    weights = cp.asarray(weights, dtype=cp.float64)
    if weights.ndim != 2 or weights.shape[1] != cols:
        raise ShapeMismatchError(
            f"weights must have shape (rows_total, {cols}), got {weights.shape}"
        )
    row_offset = int(row_offset)
    if row_offset < 0 or row_offset + rows > weights.shape[0]:
        raise ShapeMismatchError(
            f"rows {row_offset}..{row_offset + rows} outside weights with {weights.shape[0]} rows"
        )
    for o, name in ((out_total, "out_total"), (out_y, "out_y"), (out_x, "out_x")):
        g.check_device_out(o, (n,), name)
    if n == 0 or rows == 0 or cols == 0:
        return
    grid = (n, g.row_chunks(rows * cols))
    g.launch(_cuda_com, grid, (g.BLOCK,), tile3d, weights, row_offset, out_total, out_y, out_x)


def prepare(
    weights: np.ndarray, input_dtype: Any, single: bool = False, terms: Any = None
) -> AppliedCoM:
    """The weights moved to the device once per partition, for :func:`gpu` (in float64,
    ``single`` or not; pixel ``terms`` are left to the caller)."""
    import cupy as cp

    return AppliedCoM(gpu, cp.asarray(weights, dtype=cp.float64), False)
