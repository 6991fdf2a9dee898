"""Elliptical distortion of diffraction rings: measure it on one image (:func:`fit_ellipse`) and
undo it when frames are binned by radius and angle (the ``ellipse`` of
:class:`~libertem_gpu.RadialProfileUDF`, :class:`~libertem_gpu.FEMProfileUDF` and
:class:`~libertem_gpu.FEMUDF`).

Projector lenses stretch a diffraction pattern slightly more along one direction than across
it, so that a ring of constant scattering angle lands on the detector as an ellipse. Binning
by plain distance then smears a sharp ring over several bins (a ratio of 1.02 on a ring of
radius 100 spreads it over 2 pixels), which broadens FEM's and radial distribution
functions' peaks and biases strain measured from ring radii.

An ellipse is given by ``ratio``, its major over its minor semi-axis, and ``angle``, the
direction of its major axis in radians from increasing columns towards increasing rows (the
convention of ``angle_offset`` in :func:`~libertem_gpu.udf.radial_profile.polar_bins`). The
corrected radius of a pixel is that of the ellipse through it, as the radius of the circle of
equal area, ``sqrt(a * b)``: the ellipses of the distortion become circles of the same area,
and its corrected angle is the angle once the stretch is undone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf._common import check_center, check_radii

__all__ = [
    "EllipseFit",
    "check_ellipse",
    "elliptic_polar",
    "elliptic_to_detector",
    "fit_ellipse",
]


@dataclass(frozen=True)
class EllipseFit:
    """An ellipse fitted to a ring in an image by :func:`fit_ellipse`.

    Pass it as the ``ellipse`` of :class:`~libertem_gpu.RadialProfileUDF`,
    :class:`~libertem_gpu.FEMProfileUDF` or :class:`~libertem_gpu.FEMUDF` (which then take its
    ``center`` where theirs is not given).

    Attributes
    ----------
    center : tuple of float
        ``(row, column)`` of the ellipse's centre, in pixels.
    radius : float
        The ring's radius once corrected, ``sqrt(a * b)``, in pixels.
    ratio : float
        Major over minor semi-axis, ``a / b >= 1``.
    angle : float
        Direction of the major axis in radians, in ``[0, pi)``, from increasing columns towards
        increasing rows.
    residual : float
        Root mean square distance of the ring's measured points from the fitted ellipse, in
        pixels: a few hundredths for a clean ring, near a pixel for a noisy or uneven one.
    points : numpy.ndarray
        float64 ``(n, 2)``: the ``(row, column)`` points on the ring that the ellipse was fitted
        to, one per angular sector.
    """

    center: tuple[float, float]
    radius: float
    ratio: float
    angle: float
    residual: float
    points: np.ndarray

    @property
    def semi_axes(self) -> tuple[float, float]:
        """``(a, b)``, the major and minor semi-axes in pixels."""
        root = math.sqrt(self.ratio)
        return self.radius * root, self.radius / root


def check_ellipse(ellipse: Any, what: str) -> tuple[float, float] | None:
    """``ellipse`` as ``(ratio, angle)`` floats, or None for no correction.

    Parameters
    ----------
    ellipse : None, EllipseFit or sequence of two numbers
        ``(ratio, angle)``: ``ratio`` > 0 (a ratio below one means a major axis across
        ``angle``) and ``angle`` in radians, both finite.
    what : str
        The caller's name, for the error message.

    Raises
    ------
    InvalidParameterError
        For anything else.
    """
    if ellipse is None:
        return None
    if isinstance(ellipse, EllipseFit):
        return float(ellipse.ratio), float(ellipse.angle)
    try:
        ratio, angle = (float(v) for v in ellipse)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"{what}: ellipse must be an EllipseFit (from fit_ellipse) or two numbers "
            f"(ratio, angle in radians), got {ellipse!r}"
        ) from None
    if not (math.isfinite(ratio) and ratio > 0 and math.isfinite(angle)):
        raise InvalidParameterError(
            f"{what}: ellipse needs a finite ratio > 0 and a finite angle, got ratio={ratio}, "
            f"angle={angle}"
        )
    return ratio, angle


def ellipse_center(ellipse: Any, center: Any) -> Any:
    """``center``, or an :class:`EllipseFit`'s centre where ``center`` is None."""
    if center is None and isinstance(ellipse, EllipseFit):
        return ellipse.center
    return center


def elliptic_polar(
    dy: np.ndarray, dx: np.ndarray, ellipse: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The corrected radius and angle of pixels at ``(dy, dx)`` from the centre.

    Parameters
    ----------
    dy, dx : numpy.ndarray
        Row and column offsets from the centre, float64, of one shape.
    ellipse : tuple of float or None
        ``(ratio, angle)`` as :func:`check_ellipse` returns it; None for plain distance and
        angle.

    Returns
    -------
    radius, angle : numpy.ndarray
        float64: ``sqrt(u**2 / ratio + v**2 * ratio)`` for ``(u, v)`` the offset along and
        across the major axis, and ``atan2`` of the offset with the stretch undone, in
        ``(-pi, pi]``.
    """
    if ellipse is None or ellipse[0] == 1.0:
        return np.hypot(dy, dx), np.arctan2(dy, dx)
    ratio, angle = ellipse
    c, s = math.cos(angle), math.sin(angle)
    root = math.sqrt(ratio)
    u = (dx * c + dy * s) / root  # along the major axis, shrunk
    v = (dy * c - dx * s) * root  # across it, stretched
    return np.hypot(u, v), np.arctan2(u * s + v * c, u * c - v * s)


def _ring_points(
    image: np.ndarray,
    center: tuple[float, float],
    ellipse: tuple[float, float],
    radii: tuple[float, float],
    sectors: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The ring's corrected radius and angle in each sector of the current ellipse (NaN where
    a sector holds no clear peak)."""
    rows, cols = image.shape
    y, x = np.mgrid[:rows, :cols]
    r, theta = elliptic_polar(y - center[0], x - center[1], ellipse)
    lo, hi = radii
    inside = (r >= lo) & (r < hi) & np.isfinite(image)
    width = 0.5  # half-pixel radial bins: fine enough to place the centroid, full enough
    n_bins = max(3, math.ceil((hi - lo) / width))
    ring_bin = np.minimum(((r[inside] - lo) / width).astype(np.int64), n_bins - 1)
    sector = np.minimum(
        (np.mod(theta[inside], 2 * np.pi) / (2 * np.pi / sectors)).astype(np.int64), sectors - 1
    )
    label = sector * n_bins + ring_bin
    counts = np.bincount(label, minlength=sectors * n_bins).reshape(sectors, n_bins)
    sums = np.bincount(label, image[inside], minlength=sectors * n_bins).reshape(sectors, n_bins)
    radius_sums = np.bincount(label, r[inside], minlength=sectors * n_bins).reshape(sectors, n_bins)
    order = np.argsort(sector, kind="stable")
    pixel_r, pixel_value = r[inside][order], image[inside][order]
    pixel_theta = np.mod(theta[inside], 2 * np.pi)[order]
    starts = np.concatenate([[0], np.cumsum(np.bincount(sector, minlength=sectors))])
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = sums / counts
        bin_radius = radius_sums / counts
    found = np.full(sectors, np.nan)
    angles = np.full(sectors, np.nan)
    for k in range(sectors):
        p, rb = profile[k], bin_radius[k]
        good = np.isfinite(p)
        if good.sum() < 3:
            continue
        base = np.nanmin(p)
        top = np.nanargmax(p)
        height = p[top] - base
        if not height > 0:
            continue
        # The contiguous run of bins above half the peak's height, around the peak: its
        # background-subtracted centroid places a symmetric ring without bias.
        above = np.where(good, p - base > height / 2, False)
        first = top
        while first > 0 and above[first - 1]:
            first -= 1
        last = top
        while last < n_bins - 1 and above[last + 1]:
            last += 1
        if not (first > 0 and good[first - 1] and last < n_bins - 1 and good[last + 1]):
            continue  # the peak runs into the annulus' edge or a gap: no whole ring here
        here = slice(starts[k], starts[k + 1])
        found[k], angles[k] = _centroid(
            pixel_r[here],
            pixel_theta[here],
            # Over r: a ring holds more pixels further out; the profile's mean is what peaks.
            (pixel_value[here] - base) / pixel_r[here],
            float(np.sum(rb[first : last + 1] * counts[k, first : last + 1]))
            / float(np.sum(counts[k, first : last + 1])),
            max(2 * width, (last - first + 1) * width),
        )
    return found, angles


def _centroid(
    r: np.ndarray, theta: np.ndarray, weight: np.ndarray, start: float, half: float
) -> tuple[float, float]:
    """The fixed point of the centroid of ``r`` (weights ``weight``) over a window ``start
    +- half`` moved to it, the centre of a symmetric peak whatever the pixels' binning; and
    the mean angle ``theta`` of the pixels it weighs."""
    m = start
    for _ in range(30):
        # A tapered window: pixels enter and leave it gradually, so that the centroid moves
        # continuously with m and the iteration settles rather than cycling between pixel sets.
        taper = np.maximum(0.0, 1.0 - np.abs(r - m) / half)
        w = weight * taper
        total = float(np.sum(w))
        if not total > 0:
            return math.nan, math.nan
        moved = float(np.sum(w * r) / total)
        if abs(moved - m) < 1e-7:
            break
        m = moved
    return moved, float(np.sum(w * theta) / total)


def elliptic_to_detector(
    radius: np.ndarray,
    theta: np.ndarray,
    center: tuple[float, float],
    ellipse: tuple[float, float] | None,
) -> np.ndarray:
    """Corrected polar points back on the detector: the inverse of :func:`elliptic_polar`.

    Parameters
    ----------
    radius, theta : numpy.ndarray
        Corrected radius and angle, of one shape ``(n,)``.
    center : tuple of float
        ``(row, column)`` of the centre.
    ellipse : tuple of float or None
        ``(ratio, angle)``; None for plain polar coordinates.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 2)``: each point's ``(row, column)`` on the detector.
    """
    ratio, angle = (1.0, 0.0) if ellipse is None else ellipse
    c, s = math.cos(angle), math.sin(angle)
    root = math.sqrt(ratio)
    cx, cy = radius * np.cos(theta), radius * np.sin(theta)  # corrected offsets
    u = (cx * c + cy * s) * root
    v = (cy * c - cx * s) / root
    return np.stack([center[0] + u * s + v * c, center[1] + u * c - v * s], axis=1)


def _conic_fit(points: np.ndarray, origin: tuple[float, float], what: str) -> Any:
    """Least-squares ellipse through ``points``: centre, semi-axes' radius, ratio, angle."""
    y = points[:, 0] - origin[0]
    x = points[:, 1] - origin[1]
    scale = float(np.sqrt(np.mean(x * x + y * y)))
    xs, ys = x / scale, y / scale
    # A x^2 + B x y + C y^2 + D x + E y = 1, with the origin inside the ring.
    design = np.stack([xs * xs, xs * ys, ys * ys, xs, ys], axis=1)
    coef = np.linalg.lstsq(design, np.ones(len(xs)), rcond=None)[0]
    a_, b_, c_, d_, e_ = coef
    m = np.array([[a_, b_ / 2], [b_ / 2, c_]])
    if np.linalg.det(m) <= 0 or a_ <= 0:
        raise InvalidParameterError(
            f"{what}: the ring's points do not lie on an ellipse; check center, rad_min and "
            "rad_max (the annulus must hold one ring, with its centre inside)"
        )
    shift = -np.linalg.solve(m, np.array([d_, e_])) / 2
    k = 1 + shift @ m @ shift
    values, vectors = np.linalg.eigh(m / k)  # ascending: the major axis first
    major, minor = 1 / math.sqrt(values[0]), 1 / math.sqrt(values[1])
    angle = math.atan2(vectors[1, 0], vectors[0, 0]) % math.pi
    center = (origin[0] + shift[1] * scale, origin[1] + shift[0] * scale)
    return center, math.sqrt(major * minor) * scale, major / minor, angle


def fit_ellipse(
    image: Any,
    rad_min: float,
    rad_max: float,
    center: Any = None,
    n_sectors: int = 36,
    iterations: int = 4,
) -> EllipseFit:
    """Fit an ellipse to the one bright ring of ``image`` between ``rad_min`` and ``rad_max``.

    Meant for a sum or mean frame (``SumUDF``'s ``intensity``) of an amorphous or
    polycrystalline specimen. The image is split into ``n_sectors`` angular sectors; in each,
    the ring's radius is the centroid, above the sector's background, of the half-maximum run
    of its radial profile in half-pixel bins. An ellipse is fitted to these points by least
    squares (centre, axes and angle free), and the measurement is repeated in the coordinates
    the fit corrects, so that sectors and bins follow the ring, ``iterations`` times.

    Parameters
    ----------
    image : array_like
        2-D, real: the frame to measure. NaN pixels (excluded ones) are left out.
    rad_min, rad_max : float
        The annulus around ``center`` that holds the ring and some background on both sides,
        in pixels; it need not be centred on the ring exactly.
    center : tuple of float, optional
        ``(row, column)``: a first guess of the ring's centre. Default: the image's centre.
    n_sectors : int
        Angular sectors, at least 6 (default 36).
    iterations : int
        Measure-and-fit rounds, at least 1 (default 4).

    Returns
    -------
    EllipseFit

    Raises
    ------
    InvalidParameterError
        For an image that is not 2-D and real, bad radii or counts, or where fewer than six
        sectors show a peak inside the annulus (no ring there).

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu.udf.ellipse import elliptic_polar, fit_ellipse
    >>> y, x = np.mgrid[:128, :128]
    >>> r, _ = elliptic_polar(y - 60.0, x - 66.0, (1.05, 0.5))
    >>> ring = np.exp(-((r - 40) ** 2) / 8)
    >>> fit = fit_ellipse(ring, rad_min=25, rad_max=55, center=(64, 64))
    >>> round(fit.ratio, 3), round(fit.angle, 2), round(fit.radius, 1)
    (1.05, 0.5, 40.0)
    """
    what = "fit_ellipse"
    frame = np.asarray(image)
    if frame.ndim != 2 or np.iscomplexobj(frame) or frame.dtype.kind not in "uifb":
        raise InvalidParameterError(
            f"{what}: image must be a 2-D real array, got {frame.dtype} {frame.shape}"
        )
    frame = frame.astype(np.float64)
    lo, hi = check_radii(rad_min, rad_max, what, ("rad_min", "rad_max"))
    if center is None:
        guess = ((frame.shape[0] - 1) / 2, (frame.shape[1] - 1) / 2)
    else:
        guess = check_center(center, what)
    for value, name, least in ((n_sectors, "n_sectors", 6), (iterations, "iterations", 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise InvalidParameterError(
                f"{what}: {name} must be an integer >= {least}, got {value!r}"
            )
    current: tuple[float, float] = (1.0, 0.0)
    centre = guess
    radius = (lo + hi) / 2
    points = np.empty((0, 2))
    for _ in range(int(iterations)):
        found, theta = _ring_points(frame, centre, current, (lo, hi), int(n_sectors))
        ok = np.isfinite(found)
        if ok.sum() < 6:
            raise InvalidParameterError(
                f"{what}: only {int(ok.sum())} of {n_sectors} sectors show a ring between "
                f"rad_min={lo} and rad_max={hi} around (row {centre[0]:.4g}, column "
                f"{centre[1]:.4g}); widen the annulus or give the ring's centre"
            )
        points = elliptic_to_detector(found[ok], theta[ok], centre, current)
        centre, radius, ratio, angle = _conic_fit(points, centre, what)
        current = (ratio, angle)
    r, _ = elliptic_polar(points[:, 0] - centre[0], points[:, 1] - centre[1], current)
    # Radial distance of each point from the ellipse, in detector pixels, to first order.
    scale = np.hypot(points[:, 0] - centre[0], points[:, 1] - centre[1]) / np.maximum(r, 1e-12)
    residual = float(np.sqrt(np.mean(((r - radius) * scale) ** 2)))
    return EllipseFit(
        center=(float(centre[0]), float(centre[1])),
        radius=float(radius),
        ratio=float(current[0]),
        angle=float(current[1]),
        residual=residual,
        points=points,
    )
