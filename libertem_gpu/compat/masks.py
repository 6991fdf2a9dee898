"""LiberTEM's ``libertem.masks``: mask factories with LiberTEM's names and arguments.

Centres are ``centerX, centerY`` and frame sizes ``imageSizeX, imageSizeY``, as in LiberTEM.
``circular``, ``ring`` (without antialiasing), ``rectangular``, ``gradient_x`` and ``gradient_y``
are :mod:`libertem_gpu.masks`'; the rest are written here. Where LiberTEM returns a
``sparse.COO`` array, these return one too if the ``sparse`` package is installed, else a dense
NumPy array (``ApplyMasksUDF`` takes either).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu import masks as _masks
from libertem_gpu.masks import gradient_x, gradient_y, rectangular

__all__ = [
    "background_subtraction",
    "balance",
    "bounding_radius",
    "circular",
    "gradient_x",
    "gradient_y",
    "is_sparse",
    "polar_map",
    "radial_bins",
    "radial_gradient",
    "radial_gradient_background_subtraction",
    "rectangular",
    "ring",
    "sparse_circular_multi_stack",
    "sparse_template_multi_stack",
    "to_dense",
    "to_sparse",
]


def _offsets(centerX: float, centerY: float, imageSizeX: int, imageSizeY: int) -> tuple:
    """Row and column offsets of every pixel from the centre, as broadcastable grids."""
    dy = np.arange(int(imageSizeY), dtype=np.float64)[:, None] - centerY
    dx = np.arange(int(imageSizeX), dtype=np.float64)[None, :] - centerX
    return dy, dx


def circular(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    antialiased: bool = False,
) -> np.ndarray:
    """A disk: True where the distance from the centre is ``<= radius``; with
    ``antialiased``, float weights that fall off over one pixel at the edge."""
    if antialiased:
        bins = radial_bins(
            centerX, centerY, imageSizeX, imageSizeY, radius, n_bins=1, use_sparse=False
        )
        return np.asarray(bins[0])
    return _masks.circular(centerX, centerY, imageSizeX, imageSizeY, radius)


def ring(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    radius_inner: float,
    antialiased: bool = False,
) -> np.ndarray:
    """An annulus: True where ``radius_inner < distance <= radius``; with ``antialiased``,
    float weights that fall off over one pixel at both edges."""
    if antialiased:
        bins = radial_bins(
            centerX,
            centerY,
            imageSizeX,
            imageSizeY,
            radius=radius,
            radius_inner=radius_inner,
            n_bins=1,
            use_sparse=False,
        )
        return np.asarray(bins[0])
    return np.asarray(
        _masks.ring(
            centerX=centerX,
            centerY=centerY,
            imageSizeX=imageSizeX,
            imageSizeY=imageSizeY,
            radius=radius,
            radius_inner=radius_inner,
        )
    )


def radial_gradient_background_subtraction(
    r: np.ndarray, r0: float, r_outer: float, delta: float = 1
) -> np.ndarray:
    """A template over distances ``r``: ``r / r0`` inside ``r0``, falling linearly to -1 over
    ``delta`` around ``r0``, -1 out to ``r_outer``, 0 beyond."""
    r = np.asarray(r, dtype=np.float64)
    half = delta / 2
    out = np.zeros_like(r)
    inside = r < r0 - half
    edge = (r >= r0 - half) & (r < r0 + half)
    shell = (r >= r0 + half) & (r <= r_outer)
    out[inside] = r[inside] / r0
    out[edge] = (r0 - r[edge]) / half
    out[shell] = -1.0
    return out


def radial_gradient(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    antialiased: bool = False,
) -> np.ndarray:
    """Distance from the centre divided by ``radius`` inside the disk, 0 outside."""
    dy, dx = _offsets(centerX, centerY, imageSizeX, imageSizeY)
    distance = np.hypot(dy, dx)
    if antialiased:
        return radial_gradient_background_subtraction(distance, radius, 0)
    return np.where(distance * distance <= radius * radius, distance / radius, 0.0)


def polar_map(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    stretchY: float = 1.0,
    angle: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance and angle (``arctan2(dy, dx)``, radians) of every pixel from the centre, after
    rotating by ``angle`` and dividing the rotated y offset by ``stretchY``."""
    dy, dx = _offsets(centerX, centerY, imageSizeX, imageSizeY)
    dy, dx = np.broadcast_arrays(dy, dx)
    if stretchY != 1.0 or angle != 0.0:
        c, s = np.cos(angle), np.sin(angle)
        dy, dx = (dy * c - dx * s) / stretchY, dx * c + dy * s
    return np.hypot(dy, dx), np.arctan2(dy, dx)


def balance(template: np.ndarray) -> np.ndarray:
    """A copy of ``template`` with its negative part scaled so that the whole sums to 0."""
    out = np.array(template, copy=True)
    positive = out[out > 0].sum()
    negative = out[out < 0].sum()
    out[out < 0] *= -positive / negative
    return out


def bounding_radius(centerX: float, centerY: float, imageSizeX: int, imageSizeY: int) -> int:
    """A radius around the centre that reaches past every corner of the frame."""
    dy = max(centerY, imageSizeY - centerY)
    dx = max(centerX, imageSizeX - centerX)
    return int(np.ceil(np.hypot(dy, dx))) + 1


def _maybe_sparse(dense: np.ndarray, use_sparse: bool) -> Any:
    if use_sparse:
        try:
            import sparse  # type: ignore[import-not-found]
        except ImportError:
            return dense
        return sparse.COO.from_numpy(dense)
    return dense


def radial_bins(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float | None = None,
    radius_inner: float = 0,
    n_bins: int | None = None,
    normalize: bool = False,
    use_sparse: bool | None = None,
    dtype: Any = None,
) -> Any:
    """Antialiased rings: ``n_bins`` bins of equal width from ``radius_inner`` to ``radius``.

    Each pixel's weight in a bin is its overlap with the bin, a pixel's width being 1 along the
    radius. With ``normalize`` each bin sums to 1. Returns ``(n_bins, imageSizeY, imageSizeX)``.
    """
    if radius is None:
        radius = bounding_radius(centerX, centerY, imageSizeX, imageSizeY)
    if n_bins is None:
        n_bins = int(np.round(radius - radius_inner))
    distance, _ = polar_map(centerX, centerY, imageSizeX, imageSizeY)
    width = (radius - radius_inner) / n_bins
    if use_sparse is None:  # sparse where a bin covers under a tenth of the frame
        area = np.pi * (radius**2 - (radius - width) ** 2)
        use_sparse = area / (imageSizeX * imageSizeY) < 0.1
    centres = radius_inner + width * (np.arange(n_bins) + 0.5)
    stack = np.clip(width / 2 + 0.5 - np.abs(distance[None] - centres[:, None, None]), 0, 1)
    if normalize:
        sums = stack.sum(axis=(1, 2))
        safe = ~np.isclose(sums, 0)
        stack[safe] /= sums[safe][:, None, None]
    if radius_inner < 0.5:  # the centre pixel belongs wholly to the innermost bin
        yy, xx = int(np.round(centerY)), int(np.round(centerX))
        if 0 <= yy < imageSizeY and 0 <= xx < imageSizeX:
            stack[0, yy, xx] = 1 - radius_inner
    if dtype is not None:
        stack = stack.astype(dtype)
    return _maybe_sparse(stack, bool(use_sparse))


def background_subtraction(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    radius_inner: float,
    antialiased: bool = False,
) -> np.ndarray:
    """A disk of ``radius_inner`` minus the ring out to ``radius``, the ring scaled so that the
    mask sums to 0 (the disk's intensity above the local background)."""
    disk = np.asarray(
        circular(centerX, centerY, imageSizeX, imageSizeY, radius_inner, antialiased),
        dtype=np.float64,
    )
    annulus = np.asarray(
        ring(centerX, centerY, imageSizeX, imageSizeY, radius, radius_inner, antialiased),
        dtype=np.float64,
    )
    return disk - annulus * (disk.sum() / annulus.sum())


def sparse_template_multi_stack(
    mask_index: Any,
    offsetX: Any,
    offsetY: Any,
    template: np.ndarray,
    imageSizeX: int,
    imageSizeY: int,
) -> Any:
    """A stack of masks, each ``template`` placed with its top left corner at
    ``(offsetY[i], offsetX[i])`` in mask ``mask_index[i]``, clipped to the frame."""
    index = np.asarray(mask_index, dtype=int)
    template = np.asarray(template)
    th, tw = template.shape
    stack = np.zeros((int(index.max()) + 1, int(imageSizeY), int(imageSizeX)), template.dtype)
    for m, oy, ox in zip(index, np.asarray(offsetY, int), np.asarray(offsetX, int), strict=True):
        y0, x0 = max(oy, 0), max(ox, 0)
        y1, x1 = min(oy + th, imageSizeY), min(ox + tw, imageSizeX)
        if y0 < y1 and x0 < x1:
            stack[m, y0:y1, x0:x1] = template[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return _maybe_sparse(stack, True)


def sparse_circular_multi_stack(
    mask_index: Any, centerX: Any, centerY: Any, imageSizeX: int, imageSizeY: int, radius: float
) -> Any:
    """A stack of disks of ``radius`` centred on ``(centerY[i], centerX[i])`` (rounded down to
    whole pixels), disk ``i`` in mask ``mask_index[i]``."""
    size = int(2 * np.ceil(radius) + 1)
    mid = (size - 1) // 2
    template = circular(mid, mid, size, size, radius)
    return sparse_template_multi_stack(
        mask_index,
        np.asarray(centerX, dtype=int) - mid,
        np.asarray(centerY, dtype=int) - mid,
        template,
        imageSizeX,
        imageSizeY,
    )


def is_sparse(a: Any) -> bool:
    """Whether ``a`` is a scipy.sparse or pydata sparse array."""
    return hasattr(a, "todense") or hasattr(a, "nnz")


def to_dense(a: Any) -> np.ndarray:
    """``a`` as a dense NumPy array."""
    if hasattr(a, "todense"):
        return np.asarray(a.todense())
    if hasattr(a, "toarray"):
        return np.asarray(a.toarray())
    return np.asarray(a)


def to_sparse(a: Any, shape: Any = None) -> Any:
    """``a`` as a ``sparse.COO`` array (the ``sparse`` package must be installed)."""
    import sparse

    if shape is not None:
        a = to_dense(a).reshape(tuple(shape))
    return a if isinstance(a, sparse.SparseArray) else sparse.COO.from_numpy(to_dense(a))
