"""Detector corrections on the CPU (Numba), and the sparse moments of folded corrections; the
reference and the GPU kernels are in :mod:`libertem_gpu.kernels.correct`."""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.kernels.correct import _check
from libertem_gpu.kernels.tiles import as_rows

__all__ = ["cpu"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


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
