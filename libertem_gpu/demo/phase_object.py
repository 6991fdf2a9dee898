"""Simulated scans of a thin phase object with a convergent probe, for phase-contrast methods
(:class:`~libertem_gpu.udf.ssb.SSBUDF`) and their tests and docs.

Units: the object's pixel is the length unit and the wavelength is 1, so a detector of
``frame`` pixels spans ``1 / frame`` radians per pixel; the probe's aperture is ``radius``
pixels (``semiconv = radius / frame``). The object is periodic, as a scan's Fourier transform
assumes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["random_phase", "scan_phase_object"]


def random_phase(
    shape: tuple[int, int], cutoff: float, strength: float, seed: int = 0
) -> np.ndarray:
    """A random, smooth, periodic phase: Fourier components up to ``cutoff`` cycles per pixel
    with random phases, scaled to a standard deviation of ``strength`` radians."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.rfftfreq(shape[1]), indexing="ij")
    keep = np.hypot(fy, fx) <= cutoff
    spectrum = (rng.standard_normal(fy.shape) + 1j * rng.standard_normal(fy.shape)) * keep
    phase = np.fft.irfft2(spectrum, s=shape)
    phase -= phase.mean()
    return phase * (strength / phase.std())


def scan_phase_object(
    phase: np.ndarray,
    step: int,
    frame: int,
    radius: float,
    defocus: float = 0.0,
    dose: float | None = None,
    seed: int = 0,
    rows: slice | None = None,
    edge: float = 0.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Diffraction patterns of the object ``exp(i phase)`` scanned every ``step`` pixels.

    Parameters
    ----------
    phase : numpy.ndarray
        ``(height, width)``, radians; both multiples of ``step`` (the object repeats).
    step : int
        Scan step, object pixels.
    frame : int
        Detector (and probe window) size, pixels.
    radius : float
        The aperture's radius on the detector, pixels.
    defocus : float
        Of the probe, object pixels (``chi = 2 pi (defocus theta^2 / 2)``, wavelength 1).
    dose : float, optional
        Mean electrons per bright-field pixel: Poisson counts. Without it, intensities scaled
        to 1 per bright-field pixel.
    seed : int
        Of the counts.
    rows : slice, optional
        Only these rows of the scan (to write a large scan in parts).
    edge : float
        Width of the aperture's edge, pixels: 0 for a hard edge; otherwise the amplitude
        falls linearly from 1 to 0 across ``radius -+ edge / 2``, as a real aperture's edge
        looks once the source's size and the detector blur it.

    Returns
    -------
    frames : numpy.ndarray
        ``(height // step, width // step, frame, frame)`` float32 (of the scan rows asked
        for, where ``rows`` is given).
        A phase object keeps the probe's intensity: each frame sums to the number of
        bright-field pixels (1 per pixel on average) before counts are drawn.
    optics : dict
        The matching :class:`~libertem_gpu.udf.ssb.SSBUDF` arguments.
    """
    height, width = phase.shape
    if height % step or width % step:
        raise ValueError(f"the object's shape {phase.shape} must be a multiple of step={step}")
    f = np.fft.fftfreq(frame)
    ky, kx = np.meshgrid(f, f, indexing="ij")
    theta2 = ky**2 + kx**2  # wavelength 1: angle = spatial frequency
    r = np.hypot(ky, kx) * frame
    if edge > 0:
        inside = np.clip((radius - r) / edge + 0.5, 0.0, 1.0)
    else:
        inside = (r <= radius).astype(np.float64)
    aperture = inside * np.exp(-1j * 2 * np.pi * defocus * theta2 / 2)
    probe = np.fft.fftshift(np.fft.ifft2(aperture))  # centred in the window
    obj = np.exp(1j * phase)
    scan_rows = range(height // step)
    if rows is not None:
        scan_rows = scan_rows[rows]
    nx = width // step
    frames = np.empty((len(scan_rows), nx, frame, frame), dtype=np.float32)
    half = frame // 2
    offs = np.arange(frame) - half
    for i, iy in enumerate(scan_rows):
        window_rows = (iy * step + offs) % height
        for ix in range(nx):
            window = obj[np.ix_(window_rows, (ix * step + offs) % width)]
            wave = np.fft.fftshift(np.fft.fft2(probe * window))
            frames[i, ix] = np.abs(wave) ** 2
    if dose is not None:
        rng = np.random.default_rng(seed)
        frames = rng.poisson(frames * dose).astype(np.float32)
    optics = {
        "wavelength": 1.0,
        "scan_step": float(step),
        "semiconv": radius / frame,
        "semiconv_pix": float(radius),
        "center": (float(half), float(half)),
        "defocus": float(defocus),
    }
    return frames, optics
