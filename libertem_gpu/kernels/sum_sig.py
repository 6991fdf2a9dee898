"""Sum over the signal: ``out[i] += tile[i].sum()``.

Accumulating, because a frame may arrive as several partial tiles.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from libertem_gpu.kernels.gpu_common import BLOCK, CHUNK
from libertem_gpu.kernels.tiles import check_no_swap

__all__ = ["reference"]


def reference(tile: np.ndarray) -> np.ndarray:
    """Per-frame sum of a tile, in plain NumPy.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` array.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)``.
    """
    return np.asarray(tile).sum(axis=1, dtype=np.float64)


# --- GPU --------------------------------------------------------------------------------------

# ``numba.cuda`` in the kernel bodies: bound by ``bind_cuda`` when they are compiled, so that
# importing this module imports no CUDA.
cuda: Any = None


def _rowsum_kernel(a, out):
    # Numba-CUDA kernel body; compiled through _cuda_rowsum().
    i = cuda.blockIdx.x
    t = cuda.threadIdx.x
    c0 = cuda.blockIdx.y * CHUNK
    c1 = min(c0 + CHUNK, a.shape[1])
    s = 0.0
    for p in range(c0 + t, c1, BLOCK):
        s += float(a[i, p])
    sm = cuda.shared.array(BLOCK, "float64")
    sm[t] = s
    cuda.syncthreads()
    step = BLOCK // 2
    while step > 0:
        if t < step:
            sm[t] += sm[t + step]
        cuda.syncthreads()
        step //= 2
    if t == 0:
        cuda.atomic.add(out, i, sm[0])


def _cuda_rowsum():
    """Numba-CUDA kernel factory: ``out[i] += sum_p a[i, p]``; block ``(i, chunk)`` sums a
    chunk of frame ``i`` with a shared-memory tree (no warp shuffles: the simulator runs it)."""
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_rowsum_kernel)


def gpu(tile, out, swap: bool = False) -> None:
    """CUDA twin of :func:`cpu`: ``out[i] += tile[i].sum()`` on CuPy arrays.

    Parameters
    ----------
    tile : cupy.ndarray
        ``(n, npix)``, any supported dtype and strides.
    out : cupy.ndarray
        float64 ``(n,)``, updated in place on the current stream.
    swap : bool
        Must be False: the GPU backend converts byte order on the device.
    """
    from libertem_gpu.kernels import gpu_common as g

    check_no_swap(swap, tile.dtype)
    a = g.rows2d(tile)
    n, npix = a.shape
    g.check_device_out(out, (n,))
    if n == 0 or npix == 0:
        return
    g.launch(_cuda_rowsum, (n, g.row_chunks(npix)), (g.BLOCK,), a, out)


# The CPU kernels (Numba) live in ``sum_sig_cpu``, so that the reference imports no Numba; their
# names stay reachable here for callers of the single module this once was.
_MOVED = frozenset({"cpu"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("libertem_gpu.kernels.sum_sig_cpu"), name)
