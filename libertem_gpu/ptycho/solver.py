"""The iterations of ptychography: a complex object and probe whose far-field diffraction
patterns match the measured amplitudes, on a backend's arrays.

The model: at scan position ``j`` the exit wave is ``psi_j = P_j * O_j``, ``O_j`` the
``N x N`` window of the object whose corner is at ``corners[j]`` (whole pixels) and ``P_j``
the probe moved by the corner's fraction of a pixel (a phase ramp in Fourier space); its
diffraction pattern is ``|FFT(psi_j)|^2`` (orthonormal FFT, zero frequency at index 0).

Each iteration visits the positions in batches of neighbours in the scan (consecutive
positions), the batches in a random order: a batch's windows cover a small part of the object,
which its update touches alone. For a batch, the operation ``ptycho_step``
(:mod:`libertem_gpu.kernels.ptycho`) replaces the exit waves' Fourier amplitudes by the
measured ones and updates the object by the regularised step of rPIE (Maiden, Johnson and Li
2017) summed over the batch: ``O += a * sum conj(P_j) d_j / ((1 - r) sum |P_j|^2 + r max sum
|P_j|^2)``. After ``probe_after`` iterations the probe takes the same step with the object's
windows. The probe is then moved back to the middle of its window (its intensity's centre of
mass) and keeps the measured patterns' mean total intensity (a phase object transmits
everything).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.kernels import get_kernel

__all__ = ["SolverSettings", "solve"]


@dataclass(frozen=True)
class SolverSettings:
    """How the iterations run (see :func:`~libertem_gpu.ptychography`)."""

    iterations: int = 20
    batch_size: int = 32
    object_step: float = 1.0
    probe_step: float = 1.0
    probe_after: int = 2
    regularisation: float = 0.1
    seed: int = 0
    position_step: float = 0.0
    position_after: int = 5
    #: The most a position moves in one batch, pixels.
    position_limit: float = 0.5


def _centred(xp: Any, probe: Any) -> Any:
    """The probe's modes moved together (by a Fourier phase ramp) so that their intensity's
    centre of mass is at index ``N // 2``: without it, probe and object may drift apart
    together, the object coming out shifted."""
    n = probe.shape[-1]
    weight = (xp.abs(probe) ** 2).sum(axis=0)
    total = float(weight.sum())
    ar = xp.arange(n, dtype=np.float64)
    rows, cols = weight.sum(axis=1), weight.sum(axis=0)
    off = np.array([float((rows * ar).sum()), float((cols * ar).sum())]) / total - n // 2
    if np.abs(off).max() < 1e-3:
        return probe
    f = xp.fft.fftfreq(n)
    ramp = xp.exp(2j * math.pi * (off[0] * f[:, None] + off[1] * f[None, :]))
    return xp.fft.ifft2(xp.fft.fft2(probe) * ramp)


def orthogonal_modes(xp: Any, probe: Any) -> Any:
    """The modes' span in orthogonal modes, strongest first (a singular value decomposition):
    the same incoherent sum of intensities, each mode as distinct as it can be."""
    m, n = probe.shape[0], probe.shape[-1]
    _, s, vh = xp.linalg.svd(probe.reshape(m, n * n), full_matrices=False)
    return (s[:, None] * vh).reshape(m, n, n)


def solve(
    amplitudes: Any,
    corners: np.ndarray,
    object_shape: tuple[int, int],
    probe: Any,
    settings: SolverSettings,
    xp: Any = np,
    backend: str = "numpy",
    callback: Callable[[int, float], Any] | None = None,
    start_object: Any = None,
) -> tuple[Any, Any, list[float], np.ndarray]:
    """Run the iterations.

    Parameters
    ----------
    amplitudes : array
        ``(n, N, N)`` float: the measured patterns' square roots, zero frequency at index 0,
        in the scan's order.
    corners : numpy.ndarray
        ``(n, 2)`` float: each window's corner in the object, pixels, at least 0 and within
        ``object_shape`` less ``N + 1``.
    object_shape : tuple of int
        Of the object array.
    probe : array
        ``(M, N, N)`` complex: the starting probe's modes in real space (``M`` = 1: a
        coherent probe).
    settings : SolverSettings
    xp : module
        The backend's array module; ``amplitudes`` and ``probe`` are its arrays.
    backend : str
        The backend whose ``ptycho_step`` runs (``"numpy"``, ``"cupy"``).
    callback : callable, optional
        Called after each iteration with its number (from 1) and its error; a true return
        value stops the iterations there.
    start_object : array, optional
        ``object_shape`` complex: where the object starts (default: 1 everywhere).

    Returns
    -------
    object, probe : array
        Complex, of ``xp``; the probe's modes ``(M, N, N)``, orthogonal, strongest first.
    errors : list of float
        Per iteration: ``sum (|FFT(psi)| - amplitude)^2 / sum amplitude^2`` over the positions
        as they were visited.
    corners : numpy.ndarray
        ``(n, 2)``: the windows' corners, corrected where ``settings.position_step`` is set
        (after ``position_after`` iterations, each batch's positions move by that fraction of
        their best move, at most ``position_limit`` px, their mean kept where it was).
    """
    step = get_kernel("ptycho_step", backend)
    n_pos, n = int(amplitudes.shape[0]), int(amplitudes.shape[-1])
    at = np.array(corners, dtype=np.float64)
    centre = at.mean(axis=0)
    highest = np.array(object_shape) - n - 1.0  # a window and its fraction inside the object
    if start_object is None:
        obj = xp.ones(object_shape, dtype=np.complex128)
    else:
        obj = xp.array(start_object, dtype=np.complex128)  # a copy: the caller's stays
    probe = xp.array(probe, dtype=np.complex128)  # a copy: scaled in place below
    if probe.ndim == 2:
        probe = probe[None]
    power = float(xp.sum(amplitudes * amplitudes, dtype=np.float64)) / n_pos
    probe *= math.sqrt(power / float((abs(probe) ** 2).sum()))
    rng = np.random.default_rng(settings.seed)
    errors: list[float] = []
    r = settings.regularisation
    for iteration in range(1, settings.iterations + 1):
        update_probe = iteration > settings.probe_after and settings.probe_step > 0
        correct = iteration > settings.position_after and settings.position_step > 0
        misfit = 0.0
        for start in rng.permutation(np.arange(0, n_pos, settings.batch_size)):
            stop = min(start + settings.batch_size, n_pos)
            whole = np.floor(at[start:stop]).astype(np.int64)
            fractions = at[start:stop] - whole
            found, numerator, weight, shifts = step(
                obj, probe, amplitudes[start:stop], whole,
                fractions if fractions.any() else None, settings.object_step, r, update_probe,
                correct,
            )  # fmt: skip
            misfit += found
            if shifts is not None:
                limit = settings.position_limit
                at[start:stop] += np.clip(settings.position_step * shifts, -limit, limit)
            if numerator is None:
                continue
            top = float(weight.max())
            if top > 0:
                denominator = (1 - r) * weight + r * top
                probe = probe + settings.probe_step * numerator / denominator[None]
            probe = _centred(xp, probe)
            probe *= math.sqrt(power / float((abs(probe) ** 2).sum()))
        if update_probe and probe.shape[0] > 1:
            probe = orthogonal_modes(xp, probe)
        if correct:  # a common move of all positions is a move of the object: undone
            at = np.clip(at - (at.mean(axis=0) - centre), 0.0, highest)
        errors.append(misfit / (power * n_pos))
        if callback is not None and callback(iteration, errors[-1]):
            break
    return obj, probe, errors, at
