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

from typing import Any

import numba
import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.tiles import as_rows

__all__ = ["apply_xp", "cpu", "gpu", "reference"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)

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


@_jit
def _patch(o, exclude, env, counts):
    for j in range(exclude.shape[0]):
        c = counts[j]
        if c > 0:
            acc = 0.0
            for q in range(c):
                acc += np.float64(o[env[j, q]])
            o[exclude[j]] = acc / c


@_jit
def _correct_f32(a, npix, dark, gain, exclude, env, counts, out):
    for i in range(a.shape[0]):
        r = a[i]
        o = out[i]
        for p in range(npix):
            o[p] = (np.float32(r[p]) - dark[p]) * gain[p]
        _patch(o, exclude, env, counts)


@_jit
def _correct_f64(a, npix, dark, gain, exclude, env, counts, out):
    for i in range(a.shape[0]):
        r = a[i]
        o = out[i]
        for p in range(npix):
            o[p] = (np.float64(r[p]) - dark[p]) * gain[p]
        _patch(o, exclude, env, counts)


def cpu(
    tile: np.ndarray,
    dark: np.ndarray,
    gain: np.ndarray,
    exclude: np.ndarray,
    env: np.ndarray,
    counts: np.ndarray,
    out: np.ndarray,
) -> None:
    """Write the corrected tile to ``out`` in one pass over the stored values.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)``, any supported real dtype, last axis contiguous (first may be strided).
    dark, gain : numpy.ndarray
        ``(npix,)`` in ``out``'s type.
    exclude, env, counts : numpy.ndarray
        The excluded pixels and their repair environments (intp), see :func:`reference`.
    out : numpy.ndarray
        ``(n, npix)`` float32 or float64, C-contiguous; overwritten.
    """
    a, npix = as_rows(tile)
    _check((a.shape[0], npix), dark, gain, out)
    if not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous, got strides {out.strides}")
    if a.shape[0] == 0 or npix == 0:
        return
    kernel = _correct_f32 if out.dtype == np.float32 else _correct_f64
    kernel(a, npix, dark, gain, exclude, env, counts, out)


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


# --- folded corrections: sums over a few pixels ---------------------------------------------


@_jit
def _sparse_moments(a, index, delta, total, y, x):
    for i in range(a.shape[0]):
        r = a[i]
        st = 0.0
        sy = 0.0
        sx = 0.0
        for j in range(index.shape[0]):
            v = np.float64(r[index[j]])
            st += v * delta[j, 0]
            sy += v * delta[j, 1]
            sx += v * delta[j, 2]
        total[i] += st
        y[i] += sy
        x[i] += sx


def sparse_moments(
    tile: np.ndarray,
    index: np.ndarray,
    delta: np.ndarray,
    total: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
) -> None:
    """``(total, y, x)[i] += tile[i, index] @ delta``: the part of folded centre-of-mass sums
    that the kernels' weights miss, at a few pixels (CPU; any supported tile dtype).

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` stored values, last axis contiguous.
    index : numpy.ndarray
        ``(m,)`` intp pixel indices into a row of ``tile``.
    delta : numpy.ndarray
        ``(m, 3)`` float64.
    total, y, x : numpy.ndarray
        float64 ``(n,)``, updated in place.
    """
    a, _ = as_rows(tile)
    _sparse_moments(a, index, delta, total, y, x)
