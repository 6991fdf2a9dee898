"""The centre-of-mass operation: per frame, the weighted total ``sum w*f`` and the first
moments ``sum w*f*row`` and ``sum w*f*col``, where ``w`` are weights over the whole frame (e.g.
1 inside a disk). Tiles may hold a horizontal slab of rows (``row_offset``); slabs of one frame
add up. :func:`finalize` divides. Coordinates are absolute pixel indices ``(row, col)`` of the
frame, not shifts relative to a reference centre.

This module owns the choice of strategy: a binary disk or annulus is a few runs per row, which
the CPU sums reading only those pixels (:func:`libertem_gpu.kernels.spans_cpu.com_cpu`); other
weights go to the dense kernels (:mod:`.com_cpu`, :mod:`.com_gpu`). :func:`prepare` chooses
once per partition. A light module: no Numba, no CuPy until a strategy is prepared.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from libertem_gpu.kernels.registry import get_kernel

__all__ = [
    "AppliedCoM",
    "disk_weights",
    "finalize",
    "prepare",
    "prepare_reference",
    "reference",
    "reference_spans",
]


def disk_weights(
    sig_shape: tuple[int, int], cy: float, cx: float, r: float | None, ri: float = 0.0
) -> np.ndarray:
    """Weights that are 1 where ``ri <= distance <= r`` from ``(cy, cx)`` and 0 elsewhere.

    Parameters
    ----------
    sig_shape : tuple of int
        ``(rows, cols)`` of a frame.
    cy, cx : float
        Centre, in pixel indices (row, column).
    r : float or None
        Outer radius; ``None`` means no outer limit (the whole frame beyond ``ri``).
    ri : float
        Inner radius (annulus); 0 for a full disk.

    Returns
    -------
    numpy.ndarray
        float64 ``sig_shape``.
    """
    rows, cols = sig_shape
    y = np.arange(rows, dtype=np.float64)[:, None] - cy
    x = np.arange(cols, dtype=np.float64)[None, :] - cx
    d = np.hypot(y, x)
    inside = d >= ri
    if r is not None:
        inside &= d <= r
    return inside.astype(np.float64)


def reference(
    frames3d: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted total and first moments of whole frames, in plain NumPy.

    Parameters
    ----------
    frames3d : numpy.ndarray
        ``(n, rows, cols)``.
    weights : numpy.ndarray
        ``(rows, cols)``.

    Returns
    -------
    total, y, x : numpy.ndarray
        float64 ``(n,)``: ``sum w*f``, ``sum w*f*row``, ``sum w*f*col``.
    """
    f = np.asarray(frames3d, dtype=np.float64)
    wf = f * np.asarray(weights, dtype=np.float64)
    rows, cols = wf.shape[1:]
    total = wf.sum(axis=(1, 2))
    y = (wf.sum(axis=2) * np.arange(rows)).sum(axis=1)
    x = (wf.sum(axis=1) * np.arange(cols)).sum(axis=1)
    return total, y, x


def finalize(total: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass ``(y / total, x / total)``.

    Returns NaN where ``total == 0`` (an empty or fully masked frame has no centre; NaN, as
    LiberTEM's 0/0 gives, keeps such frames visibly out of maps and statistics), without warnings.

    Returns
    -------
    com_y, com_x : numpy.ndarray
        float64, in absolute pixel coordinates (row, column).
    """
    total = np.asarray(total, dtype=np.float64)
    zero = total == 0
    safe = np.where(zero, 1.0, total)
    com_y = np.where(zero, np.nan, np.asarray(y, dtype=np.float64) / safe)
    com_x = np.where(zero, np.nan, np.asarray(x, dtype=np.float64) / safe)
    return com_y, com_x


def reference_spans(frames3d: np.ndarray, spans: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`reference` with the weights given as runs (one mask)."""
    weights = np.zeros(spans.rows * spans.cols)
    for q in range(len(spans.starts)):
        weights[spans.starts[q] : spans.stops[q]] = spans.values[q]
    return reference(frames3d, weights.reshape(spans.rows, spans.cols))


class PixelTerms:
    """Terms at a few pixels that a strategy may add to its three sums as it reads each row
    (cheaper there than in a second pass over the frames): ``sum_j x[index[j]] * delta[j]``.

    Parameters
    ----------
    index : numpy.ndarray
        ``(m,)`` flat pixel indices into the frame.
    delta : numpy.ndarray
        ``(m, 3)`` float64: what each pixel adds to the total, row and column sums.

    Attributes
    ----------
    index, delta : numpy.ndarray
        The same terms ordered by pixel (intp, C-contiguous float64), as the kernels read them.
    """

    __slots__ = ("delta", "index")

    def __init__(self, index: np.ndarray, delta: np.ndarray) -> None:
        if index.ndim != 1 or delta.shape != (index.shape[0], 3):
            raise ValueError(
                f"pixel terms need index (m,) and delta (m, 3), got {index.shape} and {delta.shape}"
            )
        order = np.argsort(index, kind="stable")
        self.index = np.ascontiguousarray(index[order], dtype=np.intp)
        self.delta = np.ascontiguousarray(delta[order], dtype=np.float64)


class AppliedCoM:
    """Weights laid out for one backend, the kernel chosen; call it for every tile.

    Parameters
    ----------
    kernel : callable
        ``(tile3d, weights, row_offset, out_total, out_y, out_x, swap=False)``.
    weights : object
        What ``kernel`` takes as weights (an array on the backend, or runs).
    reads_stored_order : bool
        Whether ``kernel`` swaps tiles in stored (reversed) byte order as it reads.
    adds_terms : bool
        Whether ``kernel`` adds the :class:`PixelTerms` given to ``prepare``.
    """

    __slots__ = ("adds_terms", "kernel", "reads_stored_order", "weights")

    def __init__(
        self,
        kernel: Callable[..., None],
        weights: Any,
        reads_stored_order: bool,
        adds_terms: bool = False,
    ) -> None:
        self.kernel = kernel
        self.weights = weights
        self.reads_stored_order = reads_stored_order
        self.adds_terms = adds_terms

    def __call__(
        self,
        tile3d: Any,
        row_offset: int,
        out_total: Any,
        out_y: Any,
        out_x: Any,
        swapped: bool = False,
    ) -> None:
        """Accumulate the moments of ``(n, rows, cols)`` frame rows from ``row_offset`` on;
        ``swapped``: the tile holds its integers in reversed byte order."""
        swap = swapped
        if swapped and not self.reads_stored_order:  # not expected: the plan swaps for these
            tile3d = tile3d.byteswap()
            swap = False
        self.kernel(tile3d, self.weights, row_offset, out_total, out_y, out_x, swap=swap)


def prepare(
    backend: str,
    weights: np.ndarray,
    input_dtype: Any,
    single: bool = False,
    terms: PixelTerms | None = None,
) -> AppliedCoM:
    """Choose how ``backend`` computes the moments with ``weights`` on frames of
    ``input_dtype``.

    Parameters
    ----------
    backend : str
        ``"numpy"``, ``"cupy"``, ``"reference"`` or a registered backend.
    weights : numpy.ndarray
        float64 ``(rows, cols)`` over the whole frame.
    input_dtype : numpy.dtype
        The tiles' (native) dtype.
    single : bool
        The weights are good to float32 only (detector corrections folded in): a strategy may
        use float32 arithmetic where that is faster.
    terms : PixelTerms, optional
        Pixel terms a strategy may add as it reads (``adds_terms`` says whether it does; else
        the caller adds them).

    Returns
    -------
    AppliedCoM
        Call it per tile; its ``reads_stored_order`` says whether tiles may come unswapped.
    """
    preparer = get_kernel("centre_of_mass", backend)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if single or terms is not None:
        return preparer(  # type: ignore[no-any-return]
            weights, np.dtype(input_dtype), single=single, terms=terms
        )
    return preparer(weights, np.dtype(input_dtype))  # type: ignore[no-any-return]


def prepare_reference(
    weights: np.ndarray, input_dtype: Any, single: bool = False, terms: Any = None
) -> AppliedCoM:
    """The plain NumPy strategy (what tests compare every backend's strategy with)."""

    def kernel(
        tile3d: Any, w: Any, row_offset: int, total: Any, y: Any, x: Any, swap: bool = False
    ) -> None:
        rows = tile3d.shape[1]
        padded = np.zeros((tile3d.shape[0], *w.shape))
        padded[:, row_offset : row_offset + rows] = tile3d
        t, sy, sx = reference(padded, w)
        total += t
        y += sy
        x += sx

    return AppliedCoM(kernel, weights, False)


# The CPU and GPU kernels live in their own modules (Numba, CuPy); their names stay reachable
# here for callers of the single module this once was.
_MOVED = {"cpu": "com_cpu", "gpu": "com_gpu"}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"libertem_gpu.kernels.{module}"), name)
