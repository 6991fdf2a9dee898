"""Per-pixel maximum and minimum over frames on the CPU (Numba); the references and the GPU
kernels are in :mod:`libertem_gpu.kernels.extrema`."""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.bswap import load, per_byte_order
from libertem_gpu.kernels.tiles import as_rows, check_no_swap

__all__ = ["cpu_max", "cpu_min"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


# ``x != x`` is true only for NaN: taking x then makes NaN stick, and once out holds NaN every
# comparison is false so it stays. For integers the test folds away. Written as selects so that
# LLVM vectorises the pixel loop.
def _make_extremum(largest, swap):  # type: ignore[no-untyped-def]
    @_jit
    def extremum(a, npix, out):
        for i in range(a.shape[0]):
            row = a[i, :npix]
            for p in range(npix):
                x = load(row[p], swap)
                o = out[p]
                better = x > o if largest else x < o
                out[p] = x if (better or x != x) else o

    return extremum


_max = per_byte_order(lambda swap: _make_extremum(True, swap))
_min = per_byte_order(lambda swap: _make_extremum(False, swap))


def _prepare(tile: np.ndarray, out: np.ndarray, swap: bool) -> tuple[np.ndarray, int, np.ndarray]:
    if tile.dtype == np.bool_ and out.dtype == np.bool_:
        out = out.view(np.uint8)
    a, npix = as_rows(tile)
    if a.dtype.kind != "u":
        check_no_swap(swap, a.dtype)
    if out.shape != (npix,):
        raise ShapeMismatchError(f"out must have shape ({npix},), got {out.shape}")
    if not np.can_cast(a.dtype, out.dtype, casting="safe"):
        raise TypeError(f"out dtype {out.dtype} cannot hold tile dtype {tile.dtype} exactly")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return a, npix, out


def cpu_max(tile: np.ndarray, out: np.ndarray, swap: bool = False) -> None:
    """Update a running maximum: ``out[:] = np.maximum(out, tile.max(axis=0))``.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    out : numpy.ndarray
        ``(npix,)`` of a dtype that holds the tile's values exactly (``np.can_cast(...,
        'safe')``), e.g. the tile's dtype, or float64 for float32 tiles; initialise with the
        dtype's minimum (or ``-inf``) or with the first frame.
    swap : bool
        The tile holds unsigned integers in reversed byte order; swapped as they are read.
    """
    a, npix, o = _prepare(tile, out, swap)
    if a.shape[0] and npix:
        _max[swap](a, npix, o)


def cpu_min(tile: np.ndarray, out: np.ndarray, swap: bool = False) -> None:
    """Update a running minimum: ``out[:] = np.minimum(out, tile.min(axis=0))``.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    out : numpy.ndarray
        ``(npix,)``, see :func:`cpu_max`; initialise with the dtype's maximum (or ``inf``).
    swap : bool
        The tile holds unsigned integers in reversed byte order; swapped as they are read.
    """
    a, npix, o = _prepare(tile, out, swap)
    if a.shape[0] and npix:
        _min[swap](a, npix, o)
