"""Simulated 4D-STEM data of a crystal lattice of diffraction disks, with a known basis and a
per-position deformation, for tests, docs and benchmarks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from libertem_gpu.disks.lattice import lattice_points
from libertem_gpu.errors import InvalidParameterError

__all__ = ["SUPERSAMPLE", "lattice_points", "strained_basis", "strained_lattice_frames"]

#: Samples per pixel and axis with which disks are drawn.
SUPERSAMPLE = 8


def strained_basis(
    a: Any,
    b: Any,
    exx: Any = 0.0,
    eyy: Any = 0.0,
    exy: Any = 0.0,
    rotation: Any = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Basis vectors ``a``, ``b`` deformed by ``F = R(rotation) @ (I + eps)``.

    The inverse of :func:`~libertem_gpu.disks.strain.strain_from_basis` with its defaults
    (polar decomposition, diffraction space): ``eps = [[exx, exy], [exy, eyy]]`` in ``(x, y)``
    components, ``rotation`` in radians from +x towards +y.

    Parameters
    ----------
    a, b : array_like, shape (2,)
        Reference basis vectors ``(y, x)``.
    exx, eyy, exy, rotation : float or array_like
        Strain components and rotation; arrays (all broadcastable) give one basis per element.

    Returns
    -------
    a, b : numpy.ndarray, shape (..., 2)
        The deformed basis vectors ``(y, x)``.
    """
    exx, eyy, exy, rot = np.broadcast_arrays(
        *(np.asarray(v, np.float64) for v in (exx, eyy, exy, rotation))
    )
    c, s = np.cos(rot), np.sin(rot)
    uxx, uyy, uxy = 1 + exx, 1 + eyy, exy
    # F = R @ U in (x, y) components
    fxx, fxy = c * uxx - s * uxy, c * uxy - s * uyy
    fyx, fyy = s * uxx + c * uxy, s * uxy + c * uyy

    def apply(v: Any) -> np.ndarray:
        vy, vx = np.asarray(v, np.float64)
        return np.stack([fyx * vx + fyy * vy, fxx * vx + fxy * vy], axis=-1)

    return apply(a), apply(b)


def strained_lattice_frames(
    nav_shape: tuple[int, ...],
    sig_shape: tuple[int, int],
    origin: Any,
    a: Any,
    b: Any,
    radius: float,
    dose: float = 1000.0,
    background: float = 0.0,
    noise: bool = True,
    rng: np.random.Generator | None = None,
    dtype: Any = np.uint16,
) -> np.ndarray:
    """Frames of uniformly bright disks on a lattice, one lattice per scan position.

    Each disk has radius ``radius`` and a sharp edge (each pixel gets the disk's area on it,
    sampled :data:`SUPERSAMPLE` squared times); it holds ``dose`` electrons on average
    (Poisson noise), on a flat background of ``background`` electrons per pixel.
    Disks whose centres lie outside the frame are left out; disks cut by the edge are cut.

    Parameters
    ----------
    nav_shape : tuple of int
        Scan shape.
    sig_shape : (int, int)
        Frame shape.
    origin, a, b : array_like, shape (2,) or (*nav_shape, 2)
        Zero-order position and basis vectors ``(y, x)`` in frame pixels: one for all positions
        or one per position.
    radius : float
        Disk radius in pixels.
    dose : float
        Mean electrons per disk.
    background : float
        Mean electrons per pixel between the disks.
    noise : bool
        Draw Poisson counts (as ``dtype``); False gives the expectation as float32.
    rng : numpy.random.Generator, optional
        Source of the Poisson noise.
    dtype : dtype
        Element type of noisy frames.

    Returns
    -------
    numpy.ndarray, shape (*nav_shape, *sig_shape)
    """
    if radius <= 0:
        raise InvalidParameterError(f"radius must be positive, got {radius}")
    nav_shape = tuple(nav_shape)
    n = math.prod(nav_shape)
    o, va, vb = (
        np.broadcast_to(np.asarray(v, np.float64), (*nav_shape, 2)).reshape(n, 2)
        for v in (origin, a, b)
    )
    # every (h, k) that lands in the frame for some position
    hks = [lattice_points(o[i], va[i], vb[i], sig_shape)[1] for i in range(n)]
    all_hk = np.unique(np.concatenate(hks), axis=0) if hks else np.zeros((0, 2), int)
    # each disk drawn on a patch around it, sampled SUPERSAMPLE x SUPERSAMPLE times per pixel
    # (its pixels get the disk's area on them; one sample per pixel would bias the centroid)
    half = math.ceil(radius) + 2
    size = 2 * half + 1
    sub = (np.arange(size * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5  # sample offsets, px
    per_sample = dose / (math.pi * radius**2) / SUPERSAMPLE**2
    frames = np.full((n, sig_shape[0] + 2 * size, sig_shape[1] + 2 * size), background)
    for h, k in all_hk:
        centre = o + h * va + k * vb
        inside = np.flatnonzero(
            (centre[:, 0] >= 0)
            & (centre[:, 0] <= sig_shape[0] - 1)
            & (centre[:, 1] >= 0)
            & (centre[:, 1] <= sig_shape[1] - 1)
        )
        corner = np.floor(centre[inside]).astype(int) - half
        dy = corner[:, 0, None] + sub[None, :] - centre[inside, 0, None]
        dx = corner[:, 1, None] + sub[None, :] - centre[inside, 1, None]
        dist = np.hypot(dy[:, :, None], dx[:, None, :])
        cover = np.clip((radius - dist) * SUPERSAMPLE + 0.5, 0.0, 1.0)
        patch = cover.reshape(len(inside), size, SUPERSAMPLE, size, SUPERSAMPLE).sum(axis=(2, 4))
        for j, f in enumerate(inside):
            y0, x0 = corner[j] + size
            frames[f, y0 : y0 + size, x0 : x0 + size] += patch[j] * per_sample
    frames = frames[:, size:-size, size:-size]
    frames = frames.reshape(*nav_shape, *sig_shape)
    if not noise:
        return frames.astype(np.float32)
    rng = np.random.default_rng() if rng is None else rng
    return rng.poisson(frames).astype(dtype)
