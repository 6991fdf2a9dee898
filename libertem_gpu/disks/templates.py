"""Correlation templates for disk finding: a disk, a ring, a radial gradient, a user's array, and
a probe template cut from the average of vacuum frames.

Every template is a 2-D float64 array of odd shape whose centre pixel ``(rows // 2, cols // 2)``
is the reference point (a peak of the correlation at ``(y, x)`` means the template's centre
sits at ``(y, x)`` in the frame), normalised to zero mean and unit L2 norm: a uniform
background then correlates to zero, and heights are comparable between templates. (LiberTEM's
blobfinder uses the raw masks and log-scales the frames instead; here frames are used as they
are.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError

__all__ = [
    "disk_template",
    "normalise_template",
    "probe_template",
    "radial_gradient_template",
    "ring_template",
    "user_template",
]


def normalise_template(template: Any, name: str = "template") -> np.ndarray:
    """``template`` as float64, odd-shaped, minus its mean, divided by its L2 norm.

    Even dimensions get one zero row (column) appended, so that pixel ``(rows // 2, cols // 2)``
    stays the reference point. A 2-D, finite, not constant array is expected.

    Raises
    ------
    InvalidParameterError
        If ``template`` is not a 2-D finite array of at least two different values.
    """
    t = np.asarray(template)
    if t.ndim != 2 or t.size == 0 or t.dtype.kind not in "biuf":
        raise InvalidParameterError(
            f"{name} must be a non-empty 2-D real array, got shape {t.shape} of {t.dtype}"
        )
    t = t.astype(np.float64)
    if not np.all(np.isfinite(t)):
        raise InvalidParameterError(f"{name} must be finite, got NaN or infinite values")
    pad = [(0, 1 - s % 2) for s in t.shape]
    t = np.pad(t, pad)
    t = t - t.mean()
    norm = float(np.sqrt(np.sum(t * t)))
    if norm == 0.0:
        raise InvalidParameterError(f"{name} is constant: a correlation template needs contrast")
    return t / norm


def _radius(value: Any, name: str, positive: bool = True) -> float:
    try:
        r = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(r) or (r <= 0 if positive else r < 0):
        raise InvalidParameterError(
            f"{name} must be {'> 0' if positive else '>= 0'} and finite, got {value!r}"
        )
    return r


def _grid(half: int) -> np.ndarray:
    """Distances of the pixels of a ``2 half + 1`` square from its centre pixel."""
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    return np.hypot(y, x)


def _half(outer: float, edge: float, size: Any) -> int:
    """Half the template's side: ``size`` given (odd total), else a margin of half the outer
    radius around it (a negative rim after normalising, which penalises flat background)."""
    if size is None:
        return math.ceil(1.5 * outer + edge / 2)
    try:
        n = int(size)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"size must be an odd integer, got {size!r}") from None
    if n != size or n < 3 or n % 2 == 0:
        raise InvalidParameterError(f"size must be an odd integer >= 3, got {size!r}")
    return n // 2


def _soft_inside(r: np.ndarray, radius: float, edge: float) -> np.ndarray:
    """1 inside ``radius``, 0 outside, a linear ramp ``edge`` pixels wide centred on it."""
    if edge == 0:
        return (r <= radius).astype(np.float64)
    return np.clip((radius - r) / edge + 0.5, 0.0, 1.0)


def disk_template(radius: float, edge: float = 1.0, size: int | None = None) -> np.ndarray:
    """A disk of ``radius`` pixels with a soft edge, normalised (see the module).

    Parameters
    ----------
    radius : float
        The disk's radius in pixels (> 0).
    edge : float
        Width of the linear ramp from 1 to 0 centred on the radius (0: a hard edge).
    size : int, optional
        Odd side of the square template; by default ``2 ceil(1.5 radius + edge / 2) + 1``.

    Examples
    --------
    >>> from libertem_gpu.disks import disk_template
    >>> t = disk_template(4.0)
    >>> t.shape, abs(float(t.sum())) < 1e-12, round(float((t**2).sum()), 12)
    ((15, 15), True, 1.0)
    """
    r = _radius(radius, "radius")
    e = _radius(edge, "edge", positive=False)
    half = _half(r, e, size)
    return normalise_template(_soft_inside(_grid(half), r, e), "disk template")


def ring_template(
    radius: float, radius_inner: float, edge: float = 1.0, size: int | None = None
) -> np.ndarray:
    """A ring between ``radius_inner`` and ``radius`` with soft edges, normalised: for disks
    whose inside varies (e.g. thickness contrast) but whose rim is sharp.

    Parameters
    ----------
    radius, radius_inner : float
        Outer and inner radius in pixels, ``0 <= radius_inner < radius``.
    edge, size
        As in :func:`disk_template`.
    """
    r = _radius(radius, "radius")
    ri = _radius(radius_inner, "radius_inner", positive=False)
    if not ri < r:
        raise InvalidParameterError(
            f"radius_inner must be smaller than radius, got {radius_inner!r} >= {radius!r}"
        )
    e = _radius(edge, "edge", positive=False)
    d = _grid(_half(r, e, size))
    ring = _soft_inside(d, r, e) - _soft_inside(d, ri, e)
    return normalise_template(ring, "ring template")


def radial_gradient_template(
    radius: float, edge: float = 1.0, size: int | None = None
) -> np.ndarray:
    """A disk whose value rises from 0 at the centre to 1 at ``radius`` (soft edge), normalised:
    weights the rim, so that intensity variations inside a disk move the peak less (as
    blobfinder's ``RadialGradient``).

    Parameters
    ----------
    radius, edge, size
        As in :func:`disk_template`.
    """
    r = _radius(radius, "radius")
    e = _radius(edge, "edge", positive=False)
    d = _grid(_half(r, e, size))
    return normalise_template(_soft_inside(d, r, e) * np.minimum(d / r, 1.0), "gradient template")


def user_template(array: Any) -> np.ndarray:
    """A user's 2-D array as a template: normalised, its centre pixel ``(rows // 2, cols // 2)``
    (even sides get a zero row or column appended; see :func:`normalise_template`)."""
    return normalise_template(array, "user template")


def probe_template(
    ctx: Any,
    dataset: Any,
    roi: Any = None,
    size: int | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    """A template cut from the average of frames of vacuum (the bare probe): the frames in
    ``roi`` are summed with :class:`~libertem_gpu.SumUDF`, the brightest disk found and a
    square around its centre cut out and normalised.

    The disk is the connected region of pixels above ``threshold`` times the average's maximum
    that holds the maximum; its centre of mass, rounded, is the template's centre, and the side
    is ``size`` or ``2 ceil(1.5 r) + 1`` with ``r`` the disk's equivalent radius
    (``sqrt(area / pi)``). Pixels outside the frame count as zero. Positions found with this
    template are therefore offset by the probe's subpixel position (the same in every frame:
    distances and strain are unaffected).

    Parameters
    ----------
    ctx : Context
    dataset : DataSet
        With two signal dimensions.
    roi : array_like of bool, optional
        The vacuum scan positions (all when None).
    size : int, optional
        Odd side of the template.
    threshold : float
        Share of the maximum that delimits the disk, in ``(0, 1)``.
    """
    import scipy.ndimage

    from libertem_gpu.udf.sum import SumUDF

    sig = tuple(int(s) for s in dataset.shape.sig)
    if len(sig) != 2:
        raise InvalidParameterError(f"probe_template needs two signal dimensions, got {sig}")
    if not 0 < float(threshold) < 1:
        raise InvalidParameterError(f"threshold must lie in (0, 1), got {threshold!r}")
    if size is not None:
        _half(1.0, 0.0, size)
    total = np.asarray(ctx.run_udf(dataset, SumUDF(), roi=roi)["intensity"].data, np.float64)
    peak = np.unravel_index(int(np.argmax(total)), total.shape)
    top = float(total[peak])
    if not top > float(np.min(total)):
        raise InvalidParameterError("probe_template: the average frame is flat, no disk to cut")
    labels, _ = scipy.ndimage.label(total > float(threshold) * top)
    region = labels == labels[peak]
    cy, cx = scipy.ndimage.center_of_mass(total * region)
    half = _half(math.sqrt(region.sum() / math.pi), 0.0, size)
    cy, cx = round(cy), round(cx)
    padded = np.pad(total, half)
    crop = padded[cy : cy + 2 * half + 1, cx : cx + 2 * half + 1]
    return normalise_template(crop, "probe template")
