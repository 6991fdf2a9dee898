"""The plain-NumPy kernel set: each operation's NumPy reference, called as its CPU
implementation is (same signature, accumulating into ``out`` where that accumulates).

The run plan uses these for small CPU runs (setting ``small_run_bytes``): they import no Numba,
so a new process gets its first small result without Numba's start-up. They read tiles in
native byte order only (the pipeline swaps big-endian data first) and take whole tiles at a
time: fine for the few MiB a small run reads. Operations with a prepare step use their
reference ``prepare`` directly (see :mod:`libertem_gpu.kernels.catalog`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels import correct as _correct
from libertem_gpu.kernels import logsum as _logsum
from libertem_gpu.kernels import pixel_moments as _pixel_moments
from libertem_gpu.kernels.tiles import as_rows, check_no_swap, check_out

__all__ = [
    "correct",
    "logsum",
    "max",
    "min",
    "moments",
    "pixel_moments",
    "sum_frames",
    "sum_sig",
]


def _rows(tile: np.ndarray) -> tuple[np.ndarray, int]:
    """``(n, npix)`` rows of ``tile`` (bool as uint8), as the CPU kernels take them."""
    a, npix = as_rows(tile)
    return a[:, :npix], npix


def sum_frames(tile: np.ndarray, out: np.ndarray, swap: bool = False) -> None:
    """``out += tile.sum(axis=0)`` in float64 (exact for integer sums below 2**53).

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, any supported dtype, native byte order.
    out : numpy.ndarray
        float64 ``(npix,)``, updated in place.
    swap : bool
        Must be False: the plan swaps big-endian tiles for this kernel set.
    """
    check_no_swap(swap, tile.dtype)
    a, npix = _rows(tile)
    check_out(out, (npix,))
    out += a.sum(axis=0, dtype=np.float64)


def sum_sig(tile: np.ndarray, out: np.ndarray, swap: bool = False) -> None:
    """``out[i] += tile[i].sum()`` in float64 (see :func:`sum_frames` for the parameters)."""
    check_no_swap(swap, tile.dtype)
    a, _ = _rows(tile)
    check_out(out, (a.shape[0],))
    out += a.sum(axis=1, dtype=np.float64)


def _extremum(tile: np.ndarray, out: np.ndarray, swap: bool, fold: Any) -> None:
    check_no_swap(swap, tile.dtype)
    if tile.dtype == np.bool_ and out.dtype == np.bool_:
        out = out.view(np.uint8)
    a, npix = _rows(tile)
    if out.shape != (npix,):
        raise ShapeMismatchError(f"out must have shape ({npix},), got {out.shape}")
    if not np.can_cast(a.dtype, out.dtype, casting="safe"):
        raise TypeError(f"out dtype {out.dtype} cannot hold tile dtype {tile.dtype} exactly")
    if a.shape[0]:
        fold(out, fold.reduce(a, axis=0), out=out)  # NaN propagates, as in the CPU kernels


def max(tile: np.ndarray, out: np.ndarray, swap: bool = False) -> None:  # noqa: A001
    """``out = maximum(out, tile.max(axis=0))``, NaN-propagating; ``out`` holds the tile's
    values exactly (see :func:`sum_frames` for ``swap``)."""
    _extremum(tile, out, swap, np.maximum)


def min(tile: np.ndarray, out: np.ndarray, swap: bool = False) -> None:  # noqa: A001
    """``out = minimum(out, tile.min(axis=0))``, NaN-propagating (see :func:`max`)."""
    _extremum(tile, out, swap, np.minimum)


def moments(tile: np.ndarray, shift: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> None:
    """``s1 += sum_i (x_i - shift)``, ``s2 += sum_i (x_i - shift)**2`` in float64.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, any supported dtype.
    shift : numpy.ndarray
        float64 ``(npix,)``.
    s1, s2 : numpy.ndarray
        float64 ``(npix,)``, updated in place.
    """
    a, npix = _rows(tile)
    for name, o in (("shift", shift), ("s1", s1), ("s2", s2)):
        check_out(o, (npix,), name, writable=name != "shift")
    d = a.astype(np.float64) - shift
    s1 += d.sum(axis=0)
    d *= d
    s2 += d.sum(axis=0)


def logsum(tile: np.ndarray, out: np.ndarray) -> None:
    """``out += sum_i log(tile[i] - min(tile[i]) + 1)`` over whole frames ``(n, npix)``;
    ``out`` float64 ``(npix,)``."""
    a, npix = _rows(tile)
    check_out(out, (npix,))
    if a.shape[0]:
        out += _logsum.reference(a)


def pixel_moments(tile: np.ndarray, indices: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
    """Write each frame's mean and sum of squared deviations over the pixels ``indices``
    (``mean``, ``m2``: float64 ``(n,)``)."""
    a, npix = _rows(tile)
    _pixel_moments._check(npix, indices, a.shape[0], mean, m2)
    if a.shape[0]:
        mean[:], m2[:] = _pixel_moments.reference(a, indices)


def correct(
    tile: np.ndarray,
    dark: np.ndarray,
    gain: np.ndarray,
    exclude: np.ndarray,
    env: np.ndarray,
    counts: np.ndarray,
    out: np.ndarray,
) -> None:
    """Write the detector-corrected ``tile`` ``(n, npix)`` to ``out`` (see
    :func:`libertem_gpu.kernels.correct.reference`)."""
    a, _ = _rows(tile)
    _correct._check(a.shape, dark, gain, out)
    out[...] = _correct.reference(a, dark, gain, exclude, env, counts)
