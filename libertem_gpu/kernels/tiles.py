"""Tile plumbing shared by the CPU kernels: accepted dtypes, normalising a tile to contiguous
rows without copying, and cheap checks of output buffers."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from libertem_gpu.errors import ShapeMismatchError

__all__ = [
    "SUPPORTED_DTYPES",
    "as_rows",
    "check_no_swap",
    "check_out",
    "contiguous_read_only",
    "read_only",
]

#: Tile dtypes the CPU kernels accept (native byte order only).
SUPPORTED_DTYPES = frozenset(
    np.dtype(t)
    for t in (
        np.int8,
        np.uint8,
        np.uint16,
        np.uint32,
        np.int16,
        np.int32,
        np.int64,
        np.uint64,
        np.float32,
        np.float64,
        np.bool_,
    )
)


def as_rows(tile: np.ndarray) -> tuple[np.ndarray, int]:
    """Normalise a tile to a C-contiguous 2-D array whose rows start at the frames.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` array; the last axis must be contiguous or it is copied. The first axis may
        be strided by any multiple of the item size (per-frame headers).

    Returns
    -------
    rows : numpy.ndarray
        ``(n, row_len)`` C-contiguous read-only array with ``row_len >= npix``; frame ``i`` is
        ``rows[i, :npix]``. Bool tiles are reinterpreted as uint8. For strided tiles the
        columns beyond ``npix`` alias whatever lies between frames (headers, or, in the last row,
        memory past the tile): kernels must never read them.
    npix : int
        Number of valid pixels per row.
    """
    if tile.ndim != 2:
        raise ShapeMismatchError(f"a tile must be 2-D (n, npix), got shape {tile.shape}")
    if tile.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"unsupported tile dtype {tile.dtype}; supported: "
            f"{sorted(str(d) for d in SUPPORTED_DTYPES)} in native byte order"
        )
    if tile.dtype == np.bool_:
        tile = tile.view(np.uint8)
    n, npix = tile.shape
    if tile.flags.c_contiguous:
        return read_only(tile), npix
    isz = tile.itemsize
    s0, s1 = tile.strides
    if (s1 == isz or npix == 1) and s0 % isz == 0 and s0 >= npix * isz:
        # Rows of length s0 // isz: a C-contiguous view over the frames *and* the gaps between
        # them. Kernels only touch the first npix columns of each row.
        row_len = s0 // isz
        return read_only(as_strided(tile, shape=(n, row_len), strides=(s0, isz))), npix
    # Rare layouts (transposed, negative or odd strides): one copy in the native dtype.
    return read_only(np.ascontiguousarray(tile)), npix


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (itself where it is read-only already).

    Numba compiles a kernel once per argument type, and whether an array is writable is part
    of its type: tiles of mapped files are read-only, tiles in memory are not. Handing kernels
    their inputs read-only compiles one variant per dtype instead of two (and no kernel may
    write to its input).
    """
    if not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


def contiguous_read_only(array: np.ndarray) -> np.ndarray:
    """``array`` C-contiguous (a copy only where it is strided) and read-only: for
    compute-bound kernels, where a copy costs little against the work per pixel, so that Numba
    compiles one variant per dtype instead of four (contiguous or strided, writable or not)."""
    return read_only(np.ascontiguousarray(array))


def check_out(
    out: np.ndarray, shape: tuple[int, ...], name: str = "out", writable: bool = True
) -> None:
    """Raise unless ``out`` is a (writable) float64 array of ``shape`` (cheap checks only)."""
    if out.shape != shape:
        raise ShapeMismatchError(f"{name} must have shape {shape}, got {out.shape}")
    if out.dtype != np.float64:
        raise TypeError(f"{name} must be float64, got {out.dtype}")
    if writable and not out.flags.writeable:
        raise ValueError(f"{name} is read-only")


def check_no_swap(swap: bool, dtype: np.dtype) -> None:
    """Refuse ``swap=True`` for dtypes the kernels cannot swap while reading."""
    if swap:
        raise TypeError(f"kernels swap bytes only for unsigned integer tiles, not {dtype}")
