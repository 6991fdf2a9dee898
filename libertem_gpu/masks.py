"""Masks for :class:`~libertem_gpu.ApplyMasksUDF` and virtual detectors.

Our own helpers take the frame shape first and centres as ``(cy, cx)`` (row, column), like NumPy
indexing::

    disk(sig_shape, cy, cx, r)                 # bool, 1 where distance <= r
    ring(sig_shape, cy, cx, r, ri)             # bool, 1 where ri < distance <= r
    point(sig_shape, y, x)                     # bool, one pixel
    rectangle(sig_shape, y, x, height, width)  # bool, rows y..y+height-1, columns x..x+width-1
    to_sparse(array)                           # any mask as a SparseMask

Each takes ``sparse=True`` to return a :class:`SparseMask` (flat indices and values) instead of a
dense array. Masks are plain arrays, so they can be passed to ``ApplyMasksUDF`` directly or from
a factory: ``ApplyMasksUDF(mask_factories=[lambda: disk(sig, 64, 64, 10)])``.

LiberTEM's mask functions are here under their names and call shapes too (``circular``,
``ring`` with ``centerX=...``, ``rectangular``, ``gradient_x``, ``gradient_y``), so that
``from libertem import masks`` can become ``from libertem_gpu import masks``. They select the
same pixels as LiberTEM 0.16 (distance ``<= r``; rings exclude distance ``<= ri``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError

__all__ = [
    "SparseMask",
    "circular",
    "disk",
    "gradient_x",
    "gradient_y",
    "point",
    "rectangle",
    "rectangular",
    "ring",
    "to_sparse",
]


@dataclass(frozen=True, eq=False)
class SparseMask:
    """A mask given by its non-zero pixels.

    Attributes
    ----------
    shape : tuple of int
        The frame shape the mask applies to.
    indices : numpy.ndarray
        int64 flat (C-order) pixel indices, ascending, unique.
    values : numpy.ndarray
        The mask's value at each of those pixels.
    """

    shape: tuple[int, ...]
    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        indices = np.asarray(self.indices, dtype=np.int64).reshape(-1)
        values = np.asarray(self.values).reshape(-1)
        if indices.shape != values.shape:
            raise ShapeMismatchError(
                f"SparseMask needs one value per index, got {indices.size} indices and "
                f"{values.size} values"
            )
        size = math.prod(self.shape)
        if indices.size and (indices.min() < 0 or indices.max() >= size):
            raise ShapeMismatchError(
                f"SparseMask indices must lie in [0, {size}) for shape {self.shape}, got "
                f"{indices.min()}..{indices.max()}"
            )
        if indices.size > 1 and not np.all(np.diff(indices) > 0):
            order = np.argsort(indices, kind="stable")
            indices, values = indices[order], values[order]
            if np.any(np.diff(indices) == 0):
                raise ShapeMismatchError("SparseMask indices must be unique")
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    @property
    def dtype(self) -> np.dtype:
        """Element type of the values."""
        return self.values.dtype

    @property
    def nnz(self) -> int:
        """Number of stored pixels."""
        return int(self.indices.size)

    def toarray(self) -> np.ndarray:
        """The dense mask, shaped like a frame."""
        dense = np.zeros(math.prod(self.shape), dtype=self.values.dtype)
        dense[self.indices] = self.values
        return dense.reshape(self.shape)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        dense = self.toarray()
        return dense if dtype is None else dense.astype(dtype)

    def __repr__(self) -> str:
        return f"SparseMask(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype})"


def to_sparse(mask: Any) -> SparseMask:
    """A mask (dense array, :class:`SparseMask`, or a scipy.sparse matrix) as a
    :class:`SparseMask` holding its non-zero pixels."""
    if isinstance(mask, SparseMask):
        return mask
    if hasattr(mask, "tocoo") and hasattr(mask, "nnz"):  # scipy.sparse, without importing it
        coo = mask.tocoo()
        flat = np.ravel_multi_index((coo.row, coo.col), coo.shape)
        keep = coo.data != 0
        order = np.argsort(flat[keep], kind="stable")
        return SparseMask(coo.shape, flat[keep][order], coo.data[keep][order])
    dense = np.asarray(mask)
    flat = dense.reshape(-1)
    indices = np.flatnonzero(flat)
    return SparseMask(dense.shape, indices, flat[indices])


def _check_sig(sig_shape: Any) -> tuple[int, int]:
    try:
        sig = tuple(int(d) for d in sig_shape)
    except TypeError:
        raise InvalidParameterError(
            f"sig_shape must be a (rows, cols) tuple, got {sig_shape!r}"
        ) from None
    if len(sig) != 2 or min(sig) <= 0:
        raise InvalidParameterError(
            f"sig_shape must be two positive integers (rows, cols), got {sig_shape!r}"
        )
    return sig[0], sig[1]


def _squared_distance(sig_shape: tuple[int, int], cy: float, cx: float) -> np.ndarray:
    y = np.arange(sig_shape[0], dtype=np.float64)[:, None] - cy
    x = np.arange(sig_shape[1], dtype=np.float64)[None, :] - cx
    return y * y + x * x


def _finish(mask: np.ndarray, sparse: bool) -> np.ndarray | SparseMask:
    return to_sparse(mask) if sparse else mask


def disk(
    sig_shape: tuple[int, int], cy: float, cx: float, r: float, *, sparse: bool = False
) -> np.ndarray | SparseMask:
    """A filled circle: True where the distance from ``(cy, cx)`` is at most ``r``.

    Parameters
    ----------
    sig_shape : tuple of int
        ``(rows, cols)`` of a frame.
    cy, cx : float
        Centre as (row, column); may be fractional or outside the frame.
    r : float
        Radius in pixels (``inf`` for the whole frame).
    sparse : bool
        Return a :class:`SparseMask` instead of a bool array.

    Returns
    -------
    numpy.ndarray or SparseMask
        bool ``sig_shape``.
    """
    sig = _check_sig(sig_shape)
    if not r >= 0:
        raise InvalidParameterError(f"disk radius must be >= 0, got {r}")
    return _finish(_squared_distance(sig, cy, cx) <= r * r, sparse)


def _ring(
    sig: tuple[int, int], cy: float, cx: float, r: float, ri: float, sparse: bool
) -> np.ndarray | SparseMask:
    if not r >= 0 or not ri >= 0:
        raise InvalidParameterError(f"ring radii must be >= 0, got r={r}, ri={ri}")
    if ri >= r:
        raise InvalidParameterError(
            f"the inner radius ri={ri} of a ring must be smaller than its outer radius r={r}"
        )
    d2 = _squared_distance(sig, cy, cx)
    return _finish((d2 <= r * r) & (d2 > ri * ri), sparse)


def ring(*args: Any, **kwargs: Any) -> np.ndarray | SparseMask:
    """An annulus: True where ``ri < distance <= r`` from ``(cy, cx)``.

    Two call shapes:

    ``ring(sig_shape, cy, cx, r, ri, *, sparse=False)``
        Ours: frame shape first, centre as (row, column).
    ``ring(centerX, centerY, imageSizeX, imageSizeY, radius, radius_inner)``
        LiberTEM's (positional or with these keywords).

    Returns
    -------
    numpy.ndarray or SparseMask
        bool ``(rows, cols)``.
    """
    lt_names = ("centerX", "centerY", "imageSizeX", "imageSizeY", "radius", "radius_inner")
    if any(k in kwargs for k in lt_names) or (args and np.ndim(args[0]) == 0):
        if len(args) > len(lt_names):
            raise InvalidParameterError(f"ring() takes 6 LiberTEM-style arguments, got {args}")
        params = dict(zip(lt_names, args, strict=False))
        kwargs.pop("antialiased", None)
        sparse = bool(kwargs.pop("sparse", False))
        params.update(kwargs)
        missing = [n for n in lt_names if n not in params]
        unknown = sorted(set(params) - set(lt_names))
        if missing or unknown:
            raise InvalidParameterError(
                f"ring(): missing arguments {missing}, unknown arguments {unknown}"
            )
        sig = _check_sig((params["imageSizeY"], params["imageSizeX"]))
        return _ring(
            sig,
            params["centerY"],
            params["centerX"],
            params["radius"],
            params["radius_inner"],
            sparse,
        )
    names = ("sig_shape", "cy", "cx", "r", "ri")
    if len(args) > len(names):
        raise InvalidParameterError("ring() takes 5 arguments (sig_shape, cy, cx, r, ri)")
    params = dict(zip(names, args, strict=False))
    sparse = bool(kwargs.pop("sparse", False))
    params.update(kwargs)
    missing = [n for n in names if n not in params]
    unknown = sorted(set(params) - set(names))
    if missing or unknown:
        raise InvalidParameterError(
            f"ring(): missing arguments {missing}, unknown arguments {unknown}"
        )
    sig = _check_sig(params["sig_shape"])
    return _ring(sig, params["cy"], params["cx"], params["r"], params["ri"], sparse)


def point(sig_shape: tuple[int, int], y: int, x: int, *, sparse: bool = False) -> Any:
    """A single pixel ``(y, x)``.

    Returns
    -------
    numpy.ndarray or SparseMask
        bool ``sig_shape``.
    """
    sig = _check_sig(sig_shape)
    y, x = int(y), int(x)
    if not (0 <= y < sig[0] and 0 <= x < sig[1]):
        raise InvalidParameterError(f"point ({y}, {x}) lies outside the frame {sig}")
    if sparse:
        return SparseMask(sig, np.array([y * sig[1] + x]), np.array([True]))
    mask = np.zeros(sig, dtype=bool)
    mask[y, x] = True
    return mask


def rectangle(
    sig_shape: tuple[int, int], y: int, x: int, height: int, width: int, *, sparse: bool = False
) -> np.ndarray | SparseMask:
    """Rows ``y .. y+height-1`` and columns ``x .. x+width-1``, clipped to the frame.

    Returns
    -------
    numpy.ndarray or SparseMask
        bool ``sig_shape``.
    """
    sig = _check_sig(sig_shape)
    if height <= 0 or width <= 0:
        raise InvalidParameterError(
            f"rectangle height and width must be positive, got {height} x {width}"
        )
    mask = np.zeros(sig, dtype=bool)
    mask[
        max(0, int(y)) : max(0, int(y) + int(height)), max(0, int(x)) : max(0, int(x) + int(width))
    ] = True
    return _finish(mask, sparse)


# --- LiberTEM's call shapes ------------------------------------------------------------------


def circular(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    antialiased: bool = False,
) -> np.ndarray:
    """LiberTEM's ``masks.circular``: a bool disk of ``radius`` around ``(centerY, centerX)``
    in an ``(imageSizeY, imageSizeX)`` frame. ``antialiased`` is not supported."""
    if antialiased:
        raise InvalidParameterError("antialiased masks are not supported")
    result = disk((imageSizeY, imageSizeX), centerY, centerX, radius)
    assert isinstance(result, np.ndarray)
    return result


def rectangular(
    X: int,
    Y: int,
    Width: int,
    Height: int,
    imageSizeX: int,
    imageSizeY: int,
) -> np.ndarray:
    """LiberTEM's ``masks.rectangular``: corner ``(Y, X)``, extent ``Height`` x ``Width`` (either
    may be negative to extend up or left), both ends included, clipped to the frame."""
    mask = np.zeros((int(imageSizeY), int(imageSizeX)), dtype=bool)
    if Width == 0 or Height == 0:
        return mask
    y0, y1 = sorted((int(Y), int(Y + Height)))
    x0, x1 = sorted((int(X), int(X + Width)))
    mask[max(0, y0) : max(0, y1 + 1), max(0, x0) : max(0, x1 + 1)] = True
    return mask


def gradient_x(imageSizeX: int, imageSizeY: int, dtype: Any = np.float32) -> np.ndarray:
    """LiberTEM's ``masks.gradient_x``: each pixel holds its column index."""
    return np.broadcast_to(
        np.arange(int(imageSizeX), dtype=dtype), (int(imageSizeY), int(imageSizeX))
    ).copy()


def gradient_y(imageSizeX: int, imageSizeY: int, dtype: Any = np.float32) -> np.ndarray:
    """LiberTEM's ``masks.gradient_y``: each pixel holds its row index."""
    return np.broadcast_to(
        np.arange(int(imageSizeY), dtype=dtype)[:, None], (int(imageSizeY), int(imageSizeX))
    ).copy()
