"""Where things are in ptychography: the detector window, the object's pixel, the probe's
positions over the object and the starting probe from the optics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.com import transform_matrix
from libertem_gpu.udf.ssb_geometry import Optics

__all__ = [
    "MARGIN",
    "Window",
    "check_binning",
    "choose_window",
    "initial_modes",
    "initial_probe",
    "pixel_size",
    "probe_corners",
    "scan_image",
]


@dataclass(frozen=True)
class Window:
    """The square of each frame that the reconstruction reads: rows ``y0:y0 + size`` and
    columns ``x0:x0 + size`` of the frame, summed in ``binning x binning`` blocks into
    ``size // binning`` pixels, whose index ``size // binning // 2`` holds zero frequency in
    the model; ``axis`` is where the optical axis (the disk's centre) falls, in binned pixels
    from that index."""

    y0: int
    x0: int
    size: int
    binning: int
    axis: tuple[float, float]

    @property
    def pixels(self) -> int:
        """The window's side after binning: the model's ``N``."""
        return self.size // self.binning


def choose_window(
    sig_shape: Sequence[int], center: tuple[float, float], size: int | None, binning: int
) -> Window:
    """The window about the disk's ``center``: ``size`` frame pixels (a multiple of
    ``2 * binning``), or the largest that fits in the frame about the centre's nearest pixel."""
    rows, cols = (int(s) for s in sig_shape)
    cy, cx = (round(float(c)) for c in center)
    unit = 2 * binning
    fits = 2 * min(cy, rows - cy, cx, cols - cx)
    if size is None:
        size = fits - fits % unit
        if size < unit:
            raise InvalidParameterError(
                f"ptychography: the disk's centre {center} is too close to the edge of frames "
                f"{(rows, cols)} for a window about it; give center= where the disk is"
            )
    elif size < unit or size % unit:
        raise InvalidParameterError(
            f"ptychography: window must be a positive multiple of 2 * binning = {unit}, got {size}"
        )
    elif size > fits:
        raise InvalidParameterError(
            f"ptychography: a window of {size} pixels about the centre {center} does not fit "
            f"in frames {(rows, cols)} (at most {fits} there)"
        )
    y0, x0 = cy - size // 2, cx - size // 2
    # the centre of binned pixel j is frame pixel y0 + j * binning + (binning - 1) / 2
    half = size // binning // 2
    axis = tuple(
        (c - start - (binning - 1) / 2) / binning - half
        for c, start in ((center[0], y0), (center[1], x0))
    )
    return Window(y0=y0, x0=x0, size=size, binning=binning, axis=(axis[0], axis[1]))


def initial_probe(window: Window, optics: Optics, vacuum: np.ndarray | None = None) -> np.ndarray:
    """The probe in real space, ``(N, N)`` complex, centred at index ``N // 2``: the aperture
    with the aberration phase ``exp(-i chi)``. The aperture is the disk's pixels about the
    optical axis, or with ``vacuum`` (the window of a frame recorded without specimen, binned:
    ``(N, N)``, zero frequency at index ``N // 2``) the square root of its intensity."""
    n = window.pixels
    per_pixel = optics.radians_per_pixel * window.binning
    k = np.fft.fftfreq(n) * n
    ky, kx = np.meshgrid(k - window.axis[0], k - window.axis[1], indexing="ij")
    theta2 = (ky**2 + kx**2) * per_pixel**2
    if vacuum is None:
        aperture = (theta2 <= optics.semiconv**2).astype(np.float64)
    else:
        aperture = np.sqrt(np.maximum(np.fft.ifftshift(vacuum), 0.0))
    chi = (2 * np.pi / optics.wavelength) * (
        optics.defocus * theta2 / 2 + optics.cs * theta2 * theta2 / 4
    )
    return np.fft.fftshift(np.fft.ifft2(aperture * np.exp(-1j * chi)))


def initial_modes(probe: np.ndarray, modes: int) -> np.ndarray:
    """``(modes, N, N)``: the probe, and for a partly coherent beam more modes, each the probe
    tilted by one Fourier pixel in its own direction with a tenth of its power; the
    iterations make them orthogonal and give them the power the data asks for."""
    n = probe.shape[-1]
    yy, xx = np.mgrid[:n, :n] / n
    out = [probe]
    for k in range(1, modes):
        a = 2 * np.pi * (k - 1) / max(modes - 1, 1)
        tilt = np.exp(2j * np.pi * (np.cos(a) * yy + np.sin(a) * xx))
        out.append(probe * tilt * np.sqrt(0.1))
    return np.array(out)


def pixel_size(window: Window, optics: Optics) -> float:
    """The object's pixel, in the unit of the wavelength: ``wavelength / (N * angle per
    binned pixel)``."""
    return optics.wavelength / (window.pixels * optics.radians_per_pixel * window.binning)


#: Object pixels around the scanned field on every side: room for corrected positions.
MARGIN = 2


def probe_corners(
    nav_shape: Sequence[int], optics: Optics, window: Window
) -> tuple[np.ndarray, tuple[int, int]]:
    """Each scan position's window corner in the object (``(rows * columns, 2)``, pixels, the
    smallest :data:`MARGIN`) and the object's shape, with a pixel to spare for the fractions
    and :data:`MARGIN` on every side, where corrected positions may go.

    The scan's steps are turned into the detector's frame (``scan_rotation``, ``flip_y`` as
    :class:`~libertem_gpu.SSBUDF` takes them): the object comes out aligned with the
    detector."""
    rows, cols = (int(s) for s in nav_shape)
    iy, ix = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    steps = np.stack([iy.ravel() * optics.scan_step[0], ix.ravel() * optics.scan_step[1]], -1)
    to_detector = np.linalg.inv(transform_matrix(optics.scan_rotation, optics.flip_y))
    centres = steps @ to_detector.T / pixel_size(window, optics)
    corners = centres - window.pixels // 2
    corners -= corners.min(axis=0) - MARGIN
    extent = np.ceil(corners.max(axis=0)).astype(int) + window.pixels + 1 + MARGIN
    return corners, (int(extent[0]), int(extent[1]))


def scan_image(obj: np.ndarray, corners: np.ndarray, n: int) -> np.ndarray:
    """The object at each probe centre (``corners + N // 2``), bilinearly interpolated:
    ``(positions,)`` complex."""
    centres = corners + n // 2
    base = np.floor(centres).astype(int)
    f = centres - base
    y, x = base[:, 0], base[:, 1]
    return (
        obj[y, x] * (1 - f[:, 0]) * (1 - f[:, 1])
        + obj[y + 1, x] * f[:, 0] * (1 - f[:, 1])
        + obj[y, x + 1] * (1 - f[:, 0]) * f[:, 1]
        + obj[y + 1, x + 1] * f[:, 0] * f[:, 1]
    )


def check_binning(binning: object) -> int:
    """A whole number of at least 1, or an error."""
    if isinstance(binning, bool) or not isinstance(binning, (int, np.integer)) or binning < 1:
        raise InvalidParameterError(
            f"ptychography: binning must be a whole number >= 1, got {binning!r}"
        )
    return int(binning)
