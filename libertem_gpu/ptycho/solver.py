"""The iterations of ptychography: a complex object and probe whose far-field diffraction
patterns match the measured amplitudes, on NumPy or CuPy arrays.

The model: at scan position ``j`` the exit wave is ``psi_j = P_j * O_j``, ``O_j`` the
``N x N`` window of the object whose corner is at ``corners[j]`` (whole pixels) and ``P_j``
the probe moved by the corner's fraction of a pixel (a phase ramp in Fourier space); its
diffraction pattern is ``|FFT(psi_j)|^2`` (orthonormal FFT, zero frequency at index 0).

Each iteration visits the positions in batches of neighbours in the scan (consecutive
positions), the batches in a random order: a batch's windows cover a small part of the object,
which its update touches alone. For a batch, the exit waves' Fourier amplitudes are replaced
by the measured ones, and the change ``d_j`` of each exit wave updates the object and, after
``probe_after`` iterations, the probe by the regularised steps of rPIE (Maiden, Johnson and
Li 2017), summed over the batch:
``O += a * sum conj(P_j) d_j / ((1 - r) sum |P_j|^2 + r max sum |P_j|^2)`` and the same for
the probe with the object windows. The probe keeps the measured patterns' mean total
intensity (a phase object transmits everything).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

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


def _fft2(xp: Any, a: Any, inverse: bool = False) -> Any:
    if xp is np:
        import scipy.fft

        fn = scipy.fft.ifft2 if inverse else scipy.fft.fft2
        return fn(a, norm="ortho", workers=-1)
    return (xp.fft.ifft2 if inverse else xp.fft.fft2)(a, norm="ortho")


def _ramps(xp: Any, fractions: Any, n: int) -> Any:
    """``(b, N, N)`` Fourier phase ramps that move a window's content by ``fractions`` pixels
    (``(b, 2)``)."""
    f = xp.fft.fftfreq(n)
    return xp.exp(
        -2j
        * math.pi
        * (fractions[:, 0, None, None] * f[None, :, None] + fractions[:, 1, None, None] * f)
    )


def _flat_windows(xp: Any, corners: np.ndarray, n: int, width: int) -> Any:
    """``(b, N, N)`` flat indices of the windows at ``corners`` in a 2-D array ``width`` wide."""
    ar = xp.arange(n)
    c = xp.asarray(corners)
    return (c[:, 0, None, None] + ar[:, None]) * width + (c[:, 1, None, None] + ar[None, :])


def _scatter_add(xp: Any, target: Any, corners: np.ndarray, values: Any) -> None:
    """``target[window at corner b] += values[b]`` for every ``b``; overlapping windows add."""
    n = values.shape[-1]
    if xp is np:
        for (y, x), v in zip(corners, values, strict=True):
            target[y : y + n, x : x + n] += v
        return
    import cupyx

    flat = _flat_windows(xp, corners, n, target.shape[1]).reshape(-1)
    if target.dtype.kind == "c":  # atomic adds of the real and imaginary parts
        parts = target.reshape(-1).view(xp.float64)
        cupyx.scatter_add(parts, 2 * flat, values.real.reshape(-1))
        cupyx.scatter_add(parts, 2 * flat + 1, values.imag.reshape(-1))
    else:
        cupyx.scatter_add(target.reshape(-1), flat, values.reshape(-1))


def _windows(xp: Any, source: Any, corners: np.ndarray, n: int) -> Any:
    """``(b, N, N)``: the windows of ``source`` at ``corners``."""
    if xp is np:
        return np.stack([source[y : y + n, x : x + n] for y, x in corners])
    return source.reshape(-1)[_flat_windows(xp, corners, n, source.shape[1])]


def _centred(xp: Any, probe: Any) -> Any:
    """The probe moved (by a Fourier phase ramp) so that its intensity's centre of mass is at
    index ``N // 2``: without it, probe and object may drift apart together, the object
    coming out shifted."""
    n = probe.shape[-1]
    weight = xp.abs(probe) ** 2
    total = float(weight.sum())
    ar = xp.arange(n, dtype=np.float64)
    rows, cols = weight.sum(axis=1), weight.sum(axis=0)
    centre = np.array([float((rows * ar).sum()), float((cols * ar).sum())])
    off = centre / total - n // 2
    if np.abs(off).max() < 1e-3:
        return probe
    ramp = _ramps(xp, xp.asarray(off[None, :]), n)[0]
    return _fft2(xp, _fft2(xp, probe) * xp.conj(ramp), inverse=True)


def _normalised_step(numerator: Any, weight: Any, regularisation: float, xp: Any) -> Any:
    top = float(weight.max())
    if top <= 0:
        return xp.zeros_like(numerator)
    return numerator / ((1 - regularisation) * weight + regularisation * top)


def solve(
    amplitudes: Any,
    corners: np.ndarray,
    object_shape: tuple[int, int],
    probe: Any,
    settings: SolverSettings,
    xp: Any = np,
    callback: Callable[[int, float], None] | None = None,
) -> tuple[Any, Any, list[float]]:
    """Run the iterations.

    Parameters
    ----------
    amplitudes : array
        ``(n, N, N)`` float: the measured patterns' square roots, zero frequency at index 0.
    corners : numpy.ndarray
        ``(n, 2)`` float: each window's corner in the object, pixels, at least 0 and within
        ``object_shape`` less ``N + 1``.
    object_shape : tuple of int
        Of the object array.
    probe : array
        ``(N, N)`` complex: the starting probe in real space.
    settings : SolverSettings
    xp : module
        ``numpy`` or ``cupy``; ``amplitudes`` and ``probe`` are its arrays.
    callback : callable, optional
        Called after each iteration with its number (from 1) and its error.

    Returns
    -------
    object, probe : array
        Complex, of ``xp``.
    errors : list of float
        Per iteration: ``sum (|FFT(psi)| - amplitude)^2 / sum amplitude^2`` over the positions
        as they were visited.
    """
    n_pos, n = int(amplitudes.shape[0]), int(amplitudes.shape[-1])
    whole = np.floor(corners).astype(np.int64)
    fractions = corners - whole
    moved = bool(np.any(fractions != 0))
    obj = xp.ones(object_shape, dtype=np.complex128)
    probe = xp.asarray(probe, dtype=np.complex128)
    power = float(xp.sum(amplitudes * amplitudes, dtype=np.float64)) / n_pos
    total = power * n_pos
    probe *= math.sqrt(power / float((abs(probe) ** 2).sum()))
    rng = np.random.default_rng(settings.seed)
    errors: list[float] = []
    r = settings.regularisation
    for iteration in range(1, settings.iterations + 1):
        update_probe = iteration > settings.probe_after and settings.probe_step > 0
        misfit = xp.zeros((), dtype=np.float64)  # summed where the arrays are, read once
        for start in rng.permutation(np.arange(0, n_pos, settings.batch_size)):
            chosen = np.arange(start, min(start + settings.batch_size, n_pos))
            at = whole[chosen]
            windows = _windows(xp, obj, at, n)
            if moved:
                ramp = _ramps(xp, xp.asarray(fractions[chosen]), n)
                probes = _fft2(xp, _fft2(xp, probe) * ramp, inverse=True)
            else:
                probes = xp.broadcast_to(probe, windows.shape)
            exit_waves = probes * windows
            spectra = _fft2(xp, exit_waves)
            measured = amplitudes[chosen if xp is np else xp.asarray(chosen)]
            modulus = xp.abs(spectra)
            misfit += ((modulus - measured) ** 2).sum()
            fixed = spectra * (measured / xp.maximum(modulus, 1e-12))
            change = _fft2(xp, fixed, inverse=True) - exit_waves
            # the batch's part of the object: the box around its windows
            low = at.min(axis=0)
            box = tuple(int(v) for v in at.max(axis=0) - low + n)
            local = at - low
            object_sum = xp.zeros(box, dtype=np.complex128)
            object_weight = xp.zeros(box, dtype=np.float64)
            _scatter_add(xp, object_sum, local, xp.conj(probes) * change)
            _scatter_add(xp, object_weight, local, xp.abs(probes) ** 2)
            part = obj[low[0] : low[0] + box[0], low[1] : low[1] + box[1]]
            part += settings.object_step * _normalised_step(object_sum, object_weight, r, xp)
            if update_probe:
                gradient = xp.conj(windows) * change
                if moved:  # back to the unmoved probe's frame
                    gradient = _fft2(xp, _fft2(xp, gradient) * xp.conj(ramp), inverse=True)
                weight = (xp.abs(windows) ** 2).sum(axis=0)
                step = _normalised_step(gradient.sum(axis=0), weight, r, xp)
                probe = _centred(xp, probe + settings.probe_step * step)
                probe *= math.sqrt(power / float((abs(probe) ** 2).sum()))
        errors.append(float(misfit) / total)
        if callback is not None:
            callback(iteration, errors[-1])
    return obj, probe, errors
