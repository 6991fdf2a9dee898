"""Detector correction fused with the conversion of stored values to a UDF's float type:
``out = (tile - dark) * gain``, then each excluded pixel set to the mean of its repair
environment (its valid neighbours, see :mod:`libertem_gpu.corrections.repair`).

Arithmetic is in ``out``'s type: each stored value is converted to it exactly as
``numpy.ndarray.astype`` does, ``dark`` and ``gain`` hold that type, so the subtraction and the
product round as NumPy's do in that type. A patched pixel is the float64 sum of its
environment's corrected values, in the order given, divided by their count and rounded to
``out``'s type (as LiberTEM's kernel does). Every implementation and the reference therefore
give the same bits.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError

__all__ = ["apply_xp", "gpu", "reference"]


#: Output types the kernels write; complex outputs go through :func:`apply_xp`.
KERNEL_OUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def reference(
    tile: np.ndarray,
    dark: np.ndarray,
    gain: np.ndarray,
    exclude: np.ndarray,
    env: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    """The corrected tile, in plain NumPy.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` stored values, any real dtype.
    dark, gain : numpy.ndarray
        ``(npix,)`` in the output type (float32 or float64).
    exclude : numpy.ndarray
        ``(k,)`` flat indices of the excluded pixels.
    env : numpy.ndarray
        ``(k, m)`` flat indices of each excluded pixel's repair environment (first ``counts``
        entries valid).
    counts : numpy.ndarray
        ``(k,)`` environment sizes; 0 leaves the pixel as dark and gain made it.

    Returns
    -------
    numpy.ndarray
        ``(n, npix)`` of ``dark.dtype``.
    """
    out = (np.asarray(tile).astype(dark.dtype) - dark) * gain
    for e, row, c in zip(exclude, env, counts, strict=True):
        if c == 0:
            continue
        acc = np.zeros(out.shape[0], dtype=np.float64)
        for q in row[:c]:  # in order, as the kernels add
            acc += out[:, q].astype(np.float64)
        out[:, e] = (acc / c).astype(out.dtype)
    return out


def apply_xp(
    xp: Any, tile: Any, dark: Any, gain: Any, exclude: Any, env: Any, counts: Any, out: Any
) -> None:
    """The correction with array operations of ``xp`` (NumPy or CuPy), for output types the
    kernels do not write (complex data): same arithmetic as :func:`reference`."""
    out[...] = (tile.astype(out.dtype) - dark) * gain
    counts_h = np.asarray(counts.get() if hasattr(counts, "get") else counts)
    for j, c in enumerate(counts_h.tolist()):
        if c == 0:
            continue
        acc = xp.zeros(out.shape[0], dtype=np.complex128 if out.dtype.kind == "c" else float)
        for q in range(c):
            acc += out[:, env[j, q]]
        out[:, exclude[j]] = acc / c


def _check(tile_shape: tuple[int, ...], dark: Any, gain: Any, out: Any) -> None:
    n, npix = tile_shape
    if tuple(out.shape) != (n, npix):
        raise ShapeMismatchError(f"out must have shape {(n, npix)}, got {tuple(out.shape)}")
    if tuple(dark.shape) != (npix,) or tuple(gain.shape) != (npix,):
        raise ShapeMismatchError(
            f"dark and gain must have shape {(npix,)}, got {tuple(dark.shape)} and "
            f"{tuple(gain.shape)}"
        )
    if out.dtype not in KERNEL_OUT_DTYPES or dark.dtype != out.dtype or gain.dtype != out.dtype:
        raise TypeError(
            f"out, dark and gain must share float32 or float64, got {out.dtype}, {dark.dtype}, "
            f"{gain.dtype}"
        )


# --- CPU ----------------------------------------------------------------------------------------
# One function per output type: the stored value is converted with that type's constructor, so
# that the arithmetic happens in it (a generic body would let Numba promote to float64).


# --- GPU ----------------------------------------------------------------------------------------

# ``numba.cuda`` in the kernel bodies: bound by ``bind_cuda`` when they are compiled, so that
# importing this module imports no CUDA.
cuda: Any = None


def _dark_gain_f32_kernel(a, dark, gain, out):
    # One thread per pixel, a grid-stride loop over frames (grids are limited in y).
    p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if p >= out.shape[1]:
        return
    for i in range(cuda.blockIdx.y, out.shape[0], cuda.gridDim.y):
        out[i, p] = (np.float32(a[i, p]) - dark[p]) * gain[p]


def _dark_gain_f64_kernel(a, dark, gain, out):
    p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if p >= out.shape[1]:
        return
    for i in range(cuda.blockIdx.y, out.shape[0], cuda.gridDim.y):
        out[i, p] = (np.float64(a[i, p]) - dark[p]) * gain[p]


def _patch_kernel(exclude, env, counts, out):
    # One thread per (excluded pixel, frame): environments hold valid pixels only, whose values
    # the dark/gain launch before this one has made final.
    j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if j >= exclude.shape[0]:
        return
    c = counts[j]
    if c == 0:
        return
    for i in range(cuda.blockIdx.y, out.shape[0], cuda.gridDim.y):
        acc = 0.0
        for q in range(c):
            acc += np.float64(out[i, env[j, q]])
        out[i, exclude[j]] = acc / c


def _cuda_dark_gain_f32():
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_dark_gain_f32_kernel)


def _cuda_dark_gain_f64():
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_dark_gain_f64_kernel)


def _cuda_patch():
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_patch_kernel)


#: Frames per launch row of blocks: at most this many blocks along y (grid limit 65535).
_MAX_GRID_Y = 1024


def gpu(tile, dark, gain, exclude, env, counts, out) -> None:
    """CUDA twin of :func:`cpu` on CuPy arrays: two launches on the current stream (dark and
    gain for every pixel, then the excluded pixels from their environments).

    Parameters
    ----------
    tile : cupy.ndarray
        ``(n, npix)``, any supported real dtype, any strides.
    dark, gain : cupy.ndarray
        ``(npix,)`` in ``out``'s type.
    exclude, env, counts : cupy.ndarray
        As for :func:`cpu`.
    out : cupy.ndarray
        ``(n, npix)`` float32 or float64; overwritten.
    """
    from libertem_gpu.kernels import gpu_common as g

    a = g.rows2d(tile)
    _check(tuple(a.shape), dark, gain, out)
    n, npix = a.shape
    if n == 0 or npix == 0:
        return
    rows = min(n, _MAX_GRID_Y)
    factory = _cuda_dark_gain_f32 if out.dtype == np.float32 else _cuda_dark_gain_f64
    g.launch(factory, ((npix + g.BLOCK - 1) // g.BLOCK, rows), (g.BLOCK,), a, dark, gain, out)
    k = exclude.shape[0]
    if k:
        grid = ((k + g.BLOCK - 1) // g.BLOCK, rows)
        g.launch(_cuda_patch, grid, (g.BLOCK,), exclude, env, counts, out)


# The CPU kernel (Numba) lives in ``correct_cpu``, so that the reference imports no Numba; its
# name stays reachable here for callers of the single module this once was.
_MOVED = frozenset({"cpu"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("libertem_gpu.kernels.correct_cpu"), name)
