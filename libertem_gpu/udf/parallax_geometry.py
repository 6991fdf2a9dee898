"""The parallax shift matrix and the optics it stands for: defocus, and the detector's rotation
and flip against the scan.

With a defocused probe, the virtual image of a bright-field pixel ``q`` detector pixels from
the disk's centre moves by ``A q`` scan pixels, ``A = -(defocus x alpha / scan_step) T``:
``alpha`` the angle per detector pixel (``semiconv / semiconv_pix``) and ``T`` the turn (and
flip) from the detector's frame to the scan's (:func:`~libertem_gpu.udf.com.transform_matrix`,
as :class:`~libertem_gpu.CoMUDF`, :class:`~libertem_gpu.SSBUDF` and
:func:`~libertem_gpu.ptychography` take ``scan_rotation`` and ``flip_y``).
:func:`parallax_shift_matrix` makes ``A`` from the optics; :func:`parallax_optics` reads the
optics off a measured ``A`` (:func:`~libertem_gpu.estimate_parallax`), to start SSB or
ptychography from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.com import transform_matrix
from libertem_gpu.udf.com_fields import wrap_degrees

__all__ = ["ParallaxOptics", "parallax_optics", "parallax_shift_matrix"]


@dataclass(frozen=True)
class ParallaxOptics:
    """What a parallax shift matrix says of the optics (:func:`parallax_optics`).

    Attributes
    ----------
    defocus : float
        In the unit of ``scan_step``, with the sign of ``chi = 2 pi / wavelength (defocus
        theta^2 / 2)`` (:class:`~libertem_gpu.SSBUDF`'s).
    scan_rotation : float
        Degrees, in (-180, 180].
    flip_y : bool
        Whether the detector's y axis is flipped against the scan's.
    anisotropy : float
        The part of the matrix that a defocus, a turn and a flip cannot explain (astigmatism,
        a scan step that differs between rows and columns, a poor fit), as a fraction of it:
        ``|A - fitted| / |A|`` (Frobenius norms).
    ambiguous : bool
        True where no ``scan_rotation`` was given to choose between the two readings of the
        matrix: ``(defocus, rotation)`` and ``(-defocus, rotation + 180)`` move the images
        alike. The rotation in (-90, 90] was taken then.
    """

    defocus: float
    scan_rotation: float
    flip_y: bool
    anisotropy: float
    ambiguous: bool

    def as_params(self) -> dict[str, Any]:
        """``defocus``, ``scan_rotation`` and ``flip_y`` as SSB and ptychography take them."""
        return {
            "defocus": self.defocus,
            "scan_rotation": self.scan_rotation,
            "flip_y": self.flip_y,
        }


def _angle_per_pixel(scan_step: float, semiconv: float, semiconv_pix: float) -> float:
    """``alpha / scan_step``: scan pixels moved per detector pixel and unit of defocus."""
    for name, value in (
        ("scan_step", scan_step),
        ("semiconv", semiconv),
        ("semiconv_pix", semiconv_pix),
    ):
        if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value > 0):
            raise InvalidParameterError(f"{name} must be a positive number, got {value!r}")
    return float(semiconv) / float(semiconv_pix) / float(scan_step)


def parallax_shift_matrix(
    defocus: float,
    scan_step: float,
    semiconv: float,
    semiconv_pix: float,
    scan_rotation: float = 0.0,
    flip_y: bool = False,
) -> np.ndarray:
    """The parallax shift matrix of the optics: scan pixels a bright-field pixel's virtual
    image moves per detector pixel, for :class:`~libertem_gpu.udf.parallax.ParallaxUDF`.

    Parameters
    ----------
    defocus : float
        In the unit of ``scan_step`` (SSB's sign).
    scan_step : float
        The scan step.
    semiconv : float
        Semi-convergence angle, radians.
    semiconv_pix : float
        The bright-field disk's radius, detector pixels.
    scan_rotation : float
        Degrees, as :class:`~libertem_gpu.CoMUDF` takes it.
    flip_y : bool
        As :class:`~libertem_gpu.CoMUDF` takes it.

    Returns
    -------
    numpy.ndarray
        ``(2, 2)`` float64.
    """
    scale = -float(defocus) * _angle_per_pixel(scan_step, semiconv, semiconv_pix)
    return scale * transform_matrix(float(scan_rotation), bool(flip_y))


def parallax_optics(
    matrix: Any,
    scan_step: float,
    semiconv: float,
    semiconv_pix: float,
    scan_rotation: float | None = None,
) -> ParallaxOptics:
    """Read defocus, the detector's rotation and its flip off a parallax shift matrix: the
    nearest ``-(defocus x alpha / scan_step) T(rotation, flip)`` (as
    :func:`parallax_shift_matrix` makes it).

    Parameters
    ----------
    matrix : array_like
        ``(2, 2)``, e.g. :attr:`~libertem_gpu.udf.parallax_fit.ParallaxFit.shift_matrix`.
    scan_step, semiconv, semiconv_pix : float
        As :func:`parallax_shift_matrix` takes them.
    scan_rotation : float, optional
        The rotation as known otherwise, degrees (from
        :func:`~libertem_gpu.udf.com_fields.estimate_scan_rotation` on a centre-of-mass map,
        or the microscope's calibration): of the two readings of the matrix, the one whose
        rotation lies nearer is taken, which fixes the defocus's sign. Without it the
        rotation in (-90, 90] is taken and the result says it is ``ambiguous``.

    Returns
    -------
    ParallaxOptics
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.shape != (2, 2) or not np.isfinite(a).all():
        raise InvalidParameterError(f"the shift matrix must be 2 x 2 and finite, got {a!r}")
    per_defocus = _angle_per_pixel(scan_step, semiconv, semiconv_pix)
    flip = bool(np.linalg.det(a) < 0)
    m = a @ np.diag([-1.0, 1.0]) if flip else a  # T = R F, F its own inverse
    # the nearest scale times a turn [[c, s], [-s, c]]: the mean of the matching entries
    c = (m[0, 0] + m[1, 1]) / 2
    s = (m[0, 1] - m[1, 0]) / 2
    scale = math.hypot(c, s)
    angle = math.degrees(math.atan2(s, c))
    if scan_rotation is None:
        other = not -90.0 < wrap_degrees(angle) <= 90.0
    else:
        other = abs(wrap_degrees(angle - float(scan_rotation))) > 90.0
    if other:
        angle, scale = angle + 180.0, -scale
    fitted = scale * transform_matrix(angle, flip)
    size = float(np.linalg.norm(a))
    anisotropy = float(np.linalg.norm(a - fitted)) / size if size > 0 else 0.0
    return ParallaxOptics(
        defocus=-scale / per_defocus,
        scan_rotation=wrap_degrees(angle),
        flip_y=flip,
        anisotropy=anisotropy,
        ambiguous=scan_rotation is None,
    )
