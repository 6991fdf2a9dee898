"""What to do with the disks found in every frame (Bragg vectors) besides a lattice fit: the
Bragg vector map (:func:`bragg_vector_map`, every disk of the scan in one image, sharper than
the mean frame) and dark-field images from the vectors (:func:`vector_dark_field`, the disks
within a circle at each scan position).

Both read the ``peaks`` and ``heights`` results of
:class:`~libertem_gpu.FullFrameCorrelationUDF` or :class:`~libertem_gpu.SparseCorrelationUDF`
(NaN rows where no disk) and take an optional ``origin`` per scan position, the direct beam's
centre (e.g. from :func:`~libertem_gpu.estimate_descan`), so that a beam that walks across the
detector does not blur them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["bragg_vector_map", "vector_dark_field"]


def _vectors(
    peaks: Any, heights: Any, origin: Any, weight: str, what: str
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], np.ndarray | None]:
    """``(positions, weights, nav, reference)``: every disk's position ``(*nav, N, 2)``
    moved so that each frame's origin falls on their mean, and its weight (``(*nav, N)``, 0
    where no disk)."""
    p = np.asarray(peaks, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] != 2:
        raise ShapeMismatchError(f"{what}: peaks must be (*nav, N, 2), got shape {p.shape}")
    nav = p.shape[:-2]
    found: np.ndarray = np.asarray(np.isfinite(p).all(axis=-1))
    if weight == "height":
        if heights is None:
            raise InvalidParameterError(f"{what}: weight='height' needs the heights")
        h = np.asarray(heights, dtype=np.float64)
        if h.shape != p.shape[:-1]:
            raise ShapeMismatchError(
                f"{what}: heights must be shaped like the peaks without their last axis, "
                f"{p.shape[:-1]}, got {h.shape}"
            )
        found &= np.isfinite(h)
        w: np.ndarray = np.where(found, h, 0.0)
    elif weight == "count":
        w = found.astype(np.float64)
    else:
        raise InvalidParameterError(f"{what}: weight must be 'height' or 'count', got {weight!r}")
    reference = None
    if origin is not None:
        o = np.asarray(origin, dtype=np.float64)
        if o.shape not in ((*nav, 2), (2,)):
            raise ShapeMismatchError(
                f"{what}: origin must be (2,) or (*nav, 2) = {(*nav, 2)}, got {o.shape}"
            )
        o = np.broadcast_to(o, (*nav, 2))
        seen = np.asarray(np.isfinite(o).all(axis=-1))
        if not seen.any():
            raise InvalidParameterError(f"{what}: the origin holds no finite position")
        reference = o[seen].mean(axis=0)
        p = np.asarray(p - o[..., None, :] + reference)
        found &= seen[..., None]
        w = np.where(found, w, 0.0)
    return np.where(found[..., None], p, 0.0), w, nav, reference


def bragg_vector_map(
    peaks: Any,
    heights: Any = None,
    shape: Sequence[int] | None = None,
    origin: Any = None,
    sampling: int = 1,
    weight: str = "height",
) -> np.ndarray:
    """Every disk of the scan in one image: each disk's position added to a grid of the
    detector's shape with bilinear weights (its height, or 1).

    Parameters
    ----------
    peaks : array_like
        ``(*nav, N, 2)``: the disks' ``(row, column)`` per frame, NaN rows where none.
    heights : array_like, optional
        ``(*nav, N)``: their correlation heights (needed for ``weight='height'``).
    shape : (int, int)
        The detector's shape (the image's, before ``sampling``).
    origin : array_like, optional
        ``(*nav, 2)`` or ``(2,)``: the direct beam's centre per frame; each frame's disks are
        moved so that its origin falls on the mean origin.
    sampling : int
        Grid points per detector pixel and axis: a finer map of sub-pixel positions.
    weight : {'height', 'count'}
        What each disk adds.

    Returns
    -------
    numpy.ndarray
        ``(rows * sampling, columns * sampling)`` float64; a disk at ``(y, x)`` lands at
        ``(y * sampling, x * sampling)``. Disks outside the grid are left out.

    Examples
    --------
    >>> import numpy as np
    >>> peaks = np.array([[[2.0, 3.0], [np.nan, np.nan]], [[2.5, 3.0], [1.0, 1.0]]])
    >>> heights = np.array([[1.0, np.nan], [2.0, 4.0]])
    >>> bvm = bragg_vector_map(peaks, heights, shape=(5, 5))
    >>> bvm[2, 3], bvm[3, 3], bvm[1, 1]
    (np.float64(2.0), np.float64(1.0), np.float64(4.0))
    """
    if shape is None or len(shape) != 2 or min(int(s) for s in shape) < 1:
        raise InvalidParameterError(f"bragg_vector_map: shape must be (rows, columns), got {shape}")
    if isinstance(sampling, bool) or not isinstance(sampling, (int, np.integer)) or sampling < 1:
        raise InvalidParameterError(
            f"bragg_vector_map: sampling must be a whole number >= 1, got {sampling!r}"
        )
    p, w, _, _ = _vectors(peaks, heights, origin, weight, "bragg_vector_map")
    rows, cols = int(shape[0]) * sampling, int(shape[1]) * sampling
    yx = p.reshape(-1, 2) * sampling
    w = w.reshape(-1)
    base = np.floor(yx).astype(np.int64)
    frac = yx - base
    image = np.zeros(rows * cols)
    for dy in (0, 1):
        for dx in (0, 1):
            y, x = base[:, 0] + dy, base[:, 1] + dx
            share = (frac[:, 0] if dy else 1 - frac[:, 0]) * (frac[:, 1] if dx else 1 - frac[:, 1])
            keep = (w != 0) & (y >= 0) & (y < rows) & (x >= 0) & (x < cols)
            image += np.bincount(
                y[keep] * cols + x[keep], weights=(w * share)[keep], minlength=rows * cols
            )
    return image.reshape(rows, cols)


def vector_dark_field(
    peaks: Any,
    heights: Any = None,
    center: Sequence[float] = (0.0, 0.0),
    radius: float = 1.0,
    origin: Any = None,
    weight: str = "height",
) -> np.ndarray:
    """A dark-field image from the disks: at each scan position, the sum of the heights (or
    the number) of its disks within ``radius`` of ``center``.

    Parameters
    ----------
    peaks, heights, origin, weight
        As for :func:`bragg_vector_map`; with ``origin``, ``center`` is taken relative to the
        mean origin (as the Bragg vector map shows it).
    center : (float, float)
        The circle's centre on the detector, pixels.
    radius : float
        Its radius, pixels (a disk on the circle counts).

    Returns
    -------
    numpy.ndarray
        ``nav``-shaped float64.

    Examples
    --------
    >>> import numpy as np
    >>> peaks = np.array([[[2.0, 3.0], [9.0, 9.0]], [[2.5, 3.0], [np.nan, np.nan]]])
    >>> vector_dark_field(peaks, weight="count", center=(2, 3), radius=1).tolist()
    [1.0, 1.0]
    """
    r = float(radius)
    if not (np.isfinite(r) and r >= 0):
        raise InvalidParameterError(f"vector_dark_field: radius must be >= 0, got {radius!r}")
    c = np.asarray(center, dtype=np.float64)
    if c.shape != (2,) or not np.isfinite(c).all():
        raise InvalidParameterError(
            f"vector_dark_field: center must be (row, column), got {center!r}"
        )
    p, w, nav, _ = _vectors(peaks, heights, origin, weight, "vector_dark_field")
    inside = ((p - c) ** 2).sum(axis=-1) <= r * r
    return (w * inside).sum(axis=-1).reshape(nav)
