"""Sum over frames: ``out += tile.sum(axis=0)``."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from libertem_gpu.kernels.tiles import check_no_swap

__all__ = ["reference"]


def reference(tile: np.ndarray) -> np.ndarray:
    """Sum of a tile over its frames, in plain NumPy.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` array of any supported dtype.

    Returns
    -------
    numpy.ndarray
        float64 ``(npix,)``.
    """
    return np.asarray(tile).sum(axis=0, dtype=np.float64)


# --- GPU --------------------------------------------------------------------------------------

# ``numba.cuda`` in the kernel bodies: bound by ``bind_cuda`` when they are compiled, so that
# importing this module imports no CUDA.
cuda: Any = None

# Frames one GPU thread sums before its single atomic add: enough work per thread to hide the
# atomic, and enough blocks (pixels x frame chunks) to fill a large GPU.
_GPU_FRAMES = 32


def _colsum_kernel(a, out):
    # Numba-CUDA kernel body; compiled through _cuda_colsum().
    p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if p >= out.shape[0]:
        return
    f0 = cuda.blockIdx.y * _GPU_FRAMES
    f1 = min(f0 + _GPU_FRAMES, a.shape[0])
    s = 0.0
    for i in range(f0, f1):
        s += float(a[i, p])
    cuda.atomic.add(out, p, s)


def _cuda_colsum():
    """Numba-CUDA kernel factory: ``out[p] += sum_i a[i, p]``, converting raw integers in the
    load (one thread per pixel and chunk of frames; coalesced along pixels)."""
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_colsum_kernel)


def gpu(tile, out, swap: bool = False) -> None:
    """CUDA twin of :func:`cpu`: ``out += tile.sum(axis=0)`` on CuPy arrays.

    Parameters
    ----------
    tile : cupy.ndarray
        ``(n, npix)``, any supported dtype, any strides (raw integers are converted on load).
    out : cupy.ndarray
        float64 ``(npix,)``, updated in place on the current stream.
    swap : bool
        Must be False: the GPU backend converts byte order on the device.

    Notes
    -----
    Partial sums of 32 frames are combined with atomic adds: for integer data every partial sum
    is exact, so results equal the CPU's; for float data the order of additions may differ in
    the last bits.
    """
    from libertem_gpu.kernels import gpu_common as g

    check_no_swap(swap, tile.dtype)
    a = g.rows2d(tile)
    n, npix = a.shape
    g.check_device_out(out, (npix,))
    if n == 0 or npix == 0:
        return
    grid = ((npix + g.BLOCK - 1) // g.BLOCK, (n + _GPU_FRAMES - 1) // _GPU_FRAMES)
    g.launch(_cuda_colsum, grid, (g.BLOCK,), a, out)


# The CPU kernels (Numba) live in ``sum_frames_cpu``, so that the reference imports no Numba; their
# names stay reachable here for callers of the single module this once was.
_MOVED = frozenset({"cpu"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("libertem_gpu.kernels.sum_frames_cpu"), name)
