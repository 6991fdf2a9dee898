"""Per-pixel maximum and minimum over frames on the CPU (Numba); the references and the GPU
kernels are in :mod:`libertem_gpu.kernels.extrema`."""

from __future__ import annotations

import numba
import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.bswap import load, per_byte_order
from libertem_gpu.kernels.frame_rows import rows4
from libertem_gpu.kernels.tiles import as_rows, check_no_swap

__all__ = ["cpu_max", "cpu_min"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


# ``x != x`` is true only for NaN. ``_later_*(earlier, later)`` keeps the earlier value on a
# tie and takes a NaN: frames folded in order, the result is the first extreme value, or the
# last NaN (NaN sticks). The operation is associative, so four frames can be combined pairwise
# before they meet ``out``, with the same bits as one frame at a time. For integers the NaN
# test folds away; written as selects so that LLVM vectorises the pixel loop. Module globals,
# not closure variables: a dispatcher among a closure's variables keys Numba's file cache
# differently in every process.
@numba.njit(inline="always")
def _later_max(earlier, later):  # type: ignore[no-untyped-def]
    return later if (later > earlier or later != later) else earlier


@numba.njit(inline="always")
def _later_min(earlier, later):  # type: ignore[no-untyped-def]
    return later if (later < earlier or later != later) else earlier


# Four frames per pass over ``out``: one read and one write of it per four frames instead of
# per frame. Zen 3, one thread, in memory: uint16 10.9 -> 16.5 GB/s, float32 5.7 -> 13.0.
def _make_extremum(largest, swap):  # type: ignore[no-untyped-def]
    @_jit
    def extremum(a, npix, out):
        n = a.shape[0]
        n4 = n - n % 4
        for i in range(0, n4, 4):
            r0, r1, r2, r3 = rows4(a, i, 0, npix)
            for p in range(npix):
                x0 = load(r0[p], swap)
                x1 = load(r1[p], swap)
                x2 = load(r2[p], swap)
                x3 = load(r3[p], swap)
                if largest:
                    out[p] = _later_max(out[p], _later_max(_later_max(x0, x1), _later_max(x2, x3)))
                else:
                    out[p] = _later_min(out[p], _later_min(_later_min(x0, x1), _later_min(x2, x3)))
        for i in range(n4, n):
            row = a[i, :npix]
            for p in range(npix):
                x = load(row[p], swap)
                out[p] = _later_max(out[p], x) if largest else _later_min(out[p], x)

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
