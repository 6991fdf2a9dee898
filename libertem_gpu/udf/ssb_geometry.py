"""The geometry of single side band ptychography: which detector pixel sees which scan
frequency, and with what weight.

A scan frequency ``Q`` (cycles per scan step) moves the probe's aperture on the detector by
``d(Q)`` pixels. Under the weak phase approximation the scan's Fourier transform of a detector
pixel's intensity, at ``Q``, is ``i Phi(Q)`` times the pixel's mean intensity times
``B(Q, k) = A*(k) A(k - d) - A(k) A*(k + d)``, where ``A`` is the aperture (1 inside the disk,
times ``exp(-i chi)`` with aberrations) and ``Phi`` the Fourier transform of the specimen's
phase. ``B`` is non-zero only where the disk and one of its copies moved by ``+-d`` overlap (the
"trotters"); :func:`trotters` gives ``conj(B)`` and ``sum |B|^2`` per frequency, the weights of
the estimate ``Phi(Q) = sum_k conj(B) G / (i I sum_k |B|^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.com import transform_matrix
from libertem_gpu.udf.parallax import bright_field_pixels

__all__ = ["Optics", "aperture_pixels", "electron_wavelength", "scan_frequencies", "trotters"]

#: Entries (pixels x frequencies) of one block of the trotter computation.
_BLOCK_ENTRIES = 2**22


def electron_wavelength(volts: float) -> float:
    """The relativistic wavelength of electrons accelerated through ``volts``, in ångström.

    Examples
    --------
    >>> round(electron_wavelength(300e3), 5)
    0.01969
    """
    if not (isinstance(volts, (int, float, np.number)) and float(volts) > 0):
        raise InvalidParameterError(f"electron_wavelength: volts must be > 0, got {volts!r}")
    h, m0, e, c = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0
    energy = e * float(volts)
    momentum = math.sqrt(2 * m0 * energy * (1 + energy / (2 * m0 * c * c)))
    return h / momentum * 1e10


class Optics(NamedTuple):
    """What SSB needs to know of the microscope, in consistent units.

    Attributes
    ----------
    wavelength : float
        The electrons' wavelength (e.g. ångström; :func:`electron_wavelength`).
    scan_step : tuple of float
        Scan step (row, column), in the unit of ``wavelength``.
    semiconv : float
        The probe's semi-convergence angle, radians.
    semiconv_pix : float
        The bright-field disk's radius on the detector, pixels.
    scan_rotation : float
        Degrees, as :class:`~libertem_gpu.CoMUDF`'s: detector shifts, flipped first where
        ``flip_y``, then rotated by it, are shifts in the scan's frame.
    flip_y : bool
        The detector's y axis is flipped against the scan's.
    defocus : float
        In the unit of ``wavelength``; the aberration function is
        ``chi = 2 pi / wavelength * (defocus theta^2 / 2 + cs theta^4 / 4)``.
    cs : float
        Spherical aberration, in the unit of ``wavelength``.
    """

    wavelength: float
    scan_step: tuple[float, float]
    semiconv: float
    semiconv_pix: float
    scan_rotation: float = 0.0
    flip_y: bool = False
    defocus: float = 0.0
    cs: float = 0.0

    @property
    def radians_per_pixel(self) -> float:
        """The angle one detector pixel spans."""
        return self.semiconv / self.semiconv_pix

    def aberrated(self) -> bool:
        """Whether the aperture carries a phase (defocus or spherical aberration)."""
        return self.defocus != 0.0 or self.cs != 0.0

    def chi(self, k: np.ndarray) -> np.ndarray:
        """The aberration phase at detector offsets ``k`` (``(..., 2)`` pixels from the centre)."""
        theta2 = (k[..., 0] ** 2 + k[..., 1] ** 2) * self.radians_per_pixel**2
        return (2 * np.pi / self.wavelength) * (
            self.defocus * theta2 / 2 + self.cs * theta2 * theta2 / 4
        )


def check_optics(
    wavelength: Any,
    scan_step: Any,
    semiconv: Any,
    semiconv_pix: Any,
    scan_rotation: Any,
    flip_y: Any,
    defocus: Any,
    cs: Any,
    what: str,
) -> Optics:
    """:class:`Optics` from user input, or an :class:`InvalidParameterError` naming ``what``."""

    def positive(name: str, value: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"{what}: {name} must be a number, got {value!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise InvalidParameterError(f"{what}: {name} must be finite and > 0, got {value!r}")
        return v

    def finite(name: str, value: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"{what}: {name} must be a number, got {value!r}") from None
        if not math.isfinite(v):
            raise InvalidParameterError(f"{what}: {name} must be finite, got {value!r}")
        return v

    steps = np.ravel(np.asarray(scan_step, dtype=object))
    if steps.size not in (1, 2):
        raise InvalidParameterError(
            f"{what}: scan_step must be one number or (row, column), got {scan_step!r}"
        )
    step = tuple(positive("scan_step", s) for s in steps)
    return Optics(
        wavelength=positive("wavelength", wavelength),
        scan_step=(step[0], step[-1]),
        semiconv=positive("semiconv", semiconv),
        semiconv_pix=positive("semiconv_pix", semiconv_pix),
        scan_rotation=finite("scan_rotation", scan_rotation),
        flip_y=bool(flip_y),
        defocus=finite("defocus", defocus),
        cs=finite("cs", cs),
    )


def scan_frequencies(
    nav_shape: Sequence[int], optics: Optics
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scan frequencies of the real transform's half plane whose trotters may hold a pixel
    (the aperture moves by more than nothing and less than its diameter plus a pixel), and the
    aperture's shift on the detector for each.

    Returns
    -------
    index : numpy.ndarray
        ``(f,)`` int64: each frequency's flat index into ``numpy.fft.rfft2``'s output of the
        scan, ``(rows, columns // 2 + 1)``.
    freqs : numpy.ndarray
        ``(f, 2)``: cycles per scan step (row, column).
    offsets : numpy.ndarray
        ``(f, 2)``: detector pixels (row, column) the aperture moves for each.
    """
    rows, cols = (int(s) for s in nav_shape)
    fy, fx = np.meshgrid(np.fft.fftfreq(rows), np.fft.rfftfreq(cols), indexing="ij")
    freqs = np.stack([fy.ravel(), fx.ravel()], axis=-1)
    # cycles per step -> per length -> scattering angle -> detector pixels, in the scan's frame
    scale = optics.wavelength / optics.radians_per_pixel / np.asarray(optics.scan_step)
    to_detector = np.linalg.inv(transform_matrix(optics.scan_rotation, optics.flip_y))
    offsets = (freqs * scale) @ to_detector.T
    shift = np.hypot(offsets[:, 0], offsets[:, 1])
    index = np.flatnonzero((shift > 0) & (shift < 2 * optics.semiconv_pix + 1))
    return index, freqs[index], offsets[index]


def aperture_pixels(
    sig_shape: Sequence[int], center: tuple[float, float], radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """The flat indices (ascending) of the frame's pixels within ``radius`` of ``center`` and
    their offsets from it, ``(m, 2)`` pixels (row, column)."""
    return bright_field_pixels(sig_shape, center, radius, np.eye(2))


def trotters(
    k: np.ndarray,
    offsets: np.ndarray,
    optics: Optics,
    dtype: Any = np.complex128,
    with_weights: bool = True,
) -> tuple[np.ndarray | None, np.ndarray]:
    """The SSB weights ``conj(B)`` of the aperture's pixels for each frequency, and
    ``sum_k |B|^2`` per frequency (module docstring).

    Parameters
    ----------
    k : numpy.ndarray
        ``(m, 2)``: the aperture's pixels, offsets from its centre (:func:`aperture_pixels`).
    offsets : numpy.ndarray
        ``(f, 2)``: the aperture's shift for each frequency (:func:`scan_frequencies`).
    optics : Optics
        Radius and aberrations.
    dtype : numpy.dtype
        Of the weights (complex64 halves their memory).
    with_weights : bool
        False: only the norms (the weights are None).

    Returns
    -------
    weights : numpy.ndarray or None
        ``(m, f)`` of ``dtype``.
    norms : numpy.ndarray
        ``(f,)`` float64.
    """
    m, f = len(k), len(offsets)
    radius2 = optics.semiconv_pix**2
    weights = np.empty((m, f), dtype=dtype) if with_weights else None
    norms = np.empty(f)
    aberrated = optics.aberrated()
    if aberrated:
        a_k = np.exp(-1j * optics.chi(k))[:, None]
    step = max(1, _BLOCK_ENTRIES // max(m, 1))
    for j0 in range(0, f, step):
        d = offsets[j0 : j0 + step]
        minus = (k[:, None, 0] - d[None, :, 0], k[:, None, 1] - d[None, :, 1])  # k - d
        plus = (k[:, None, 0] + d[None, :, 0], k[:, None, 1] + d[None, :, 1])
        in_minus = minus[0] ** 2 + minus[1] ** 2 <= radius2
        in_plus = plus[0] ** 2 + plus[1] ** 2 <= radius2
        if aberrated:
            a_minus = np.where(in_minus, np.exp(-1j * optics.chi(np.stack(minus, -1))), 0)
            a_plus = np.where(in_plus, np.exp(-1j * optics.chi(np.stack(plus, -1))), 0)
            b = np.conj(a_k) * a_minus - a_k * np.conj(a_plus)
            power = (b.real**2 + b.imag**2).sum(axis=0)
        else:  # in focus: 1, -1 or 0, the trotters' pixels counted
            b = np.subtract(in_minus, in_plus, dtype=np.int8)
            power = (in_minus != in_plus).sum(axis=0).astype(np.float64)
        if weights is not None:
            weights[:, j0 : j0 + step] = np.conj(b) if aberrated else b
        norms[j0 : j0 + step] = power
    return weights, norms
