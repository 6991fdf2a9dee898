"""Simulated diffraction patterns of disk lattices, for tests, benchmarks and examples: disks of
a given radius with a soft edge at exact subpixel positions, with Poisson noise."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["disk_frames", "lattice_positions"]


def lattice_positions(
    sig_shape: tuple[int, int],
    origin: tuple[float, float],
    a: tuple[float, float],
    b: tuple[float, float],
    margin: float = 0.0,
) -> np.ndarray:
    """The points ``origin + h a + k b`` (``(y, x)``) that lie at least ``margin`` pixels inside
    a frame of ``sig_shape``; float64 ``(P, 2)``, ordered by ``(h, k)``."""
    o, va, vb = (np.asarray(v, np.float64) for v in (origin, a, b))
    reach = int(np.ceil(2 * max(sig_shape) / max(min(np.hypot(*va), np.hypot(*vb)), 1e-9))) + 1
    hk = np.array([(h, k) for h in range(-reach, reach + 1) for k in range(-reach, reach + 1)])
    pts = o + hk[:, :1] * va + hk[:, 1:] * vb
    inside = (
        (pts[:, 0] >= margin)
        & (pts[:, 0] <= sig_shape[0] - 1 - margin)
        & (pts[:, 1] >= margin)
        & (pts[:, 1] <= sig_shape[1] - 1 - margin)
    )
    return pts[inside]


def disk_frames(
    positions: Any,
    sig_shape: tuple[int, int],
    radius: float,
    edge: float = 1.0,
    dose: float | None = None,
    background: float = 0.0,
    intensities: Any = None,
    rng: np.random.Generator | None = None,
    dtype: Any = np.float64,
) -> np.ndarray:
    """Frames of disks: 1 inside each disk, a linear ramp ``edge`` pixels wide centred on the
    radius, times the disk's intensity, plus ``background``; with ``dose`` (electrons per disk)
    the frames are scaled to it and Poisson noise drawn.

    Parameters
    ----------
    positions : array_like
        ``(P, 2)`` disk centres ``(y, x)`` shared by all frames, or ``(n, P, 2)`` per frame.
    sig_shape : (int, int)
    radius, edge : float
    dose : float, optional
        Mean electrons per disk of intensity 1 (noise-free frames when None).
    background : float
        Added to every pixel (electrons per pixel with ``dose``).
    intensities : array_like, optional
        ``(P,)`` or ``(n, P)`` relative disk intensities (1 by default).
    rng : numpy.random.Generator, optional
        For the noise (required with ``dose``).
    dtype : dtype
        Of the returned ``(n, *sig_shape)`` frames.
    """
    pos = np.asarray(positions, np.float64)
    if pos.ndim == 2:
        pos = pos[np.newaxis]
    n, count = pos.shape[:2]
    weights = np.ones((n, count)) if intensities is None else np.asarray(intensities, np.float64)
    weights = np.broadcast_to(weights, (n, count))
    rows, cols = sig_shape
    half = int(np.ceil(radius + edge)) + 1
    dy, dx = np.mgrid[-half : half + 1, -half : half + 1]
    area = np.pi * radius**2
    frames = np.empty((n, rows, cols), dtype)
    for i in range(n):
        frame = np.zeros((rows + 2 * half, cols + 2 * half))
        for (y, x), w in zip(pos[i], weights[i], strict=True):
            iy, ix = int(np.floor(y)), int(np.floor(x))
            if not (-half <= iy < rows + half and -half <= ix < cols + half):
                continue
            r = np.hypot(iy + dy - y, ix + dx - x)
            disk = np.clip((radius - r) / edge + 0.5, 0.0, 1.0) if edge > 0 else r <= radius
            frame[iy : iy + 2 * half + 1, ix : ix + 2 * half + 1] += w * disk
        clean = frame[half : half + rows, half : half + cols]
        if dose is not None:
            if rng is None:
                raise ValueError("disk_frames needs rng to draw noise for a dose")
            frames[i] = rng.poisson(clean * (dose / area) + background)
        else:
            frames[i] = clean + background
    return frames
