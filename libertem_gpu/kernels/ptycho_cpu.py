"""One batch of iterative ptychography on the CPU: SciPy's FFTs (every core) with the
element-wise work fused into Numba loops; the reference, the GPU implementation and the
description are in :mod:`libertem_gpu.kernels.ptycho`.

NumPy spends most of a batch allocating and filling temporaries (about 20 arrays of the
batch's size, each fresh memory); here three loops read and write each element once or twice:
the exit waves, the modulus replacement with the misfit, and the change scattered into the
object's sums and the probe's terms.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import scipy.fft

from libertem_gpu.kernels.ptycho import _moved_probes, batch_box, position_shifts

__all__ = ["cpu"]

_jit = numba.njit(nogil=True, cache=True)


# Each loop keeps pixels innermost (modes outside them), so that it vectorises for any
# number of modes: with the modes innermost one mode ran 1.3-4x slower.


@_jit
def _exit_waves(part, probes, corners, windows, exit_waves):  # type: ignore[no-untyped-def]
    """``windows[b] = part[window b]``, ``exit_waves[b, m] = probes[b or 0, m] * windows[b]``
    for every probe mode ``m``."""
    n = windows.shape[1]
    modes = probes.shape[1]
    one = probes.shape[0] == 1
    for b in range(windows.shape[0]):
        y, x = corners[b, 0], corners[b, 1]
        p = probes[0] if one else probes[b]
        for i in range(n):
            row = part[y + i, x : x + n]
            w = windows[b, i]
            for j in range(n):
                w[j] = row[j]
            for m in range(modes):
                e = exit_waves[b, m, i]
                pm = p[m, i]
                for j in range(n):
                    e[j] = pm[j] * w[j]


# fastmath: the square roots and divisions vectorise (0.063 -> 0.015 s per iteration of 4096
# windows of 64 x 64); rounding as NumPy's to within the last bits.
@numba.njit(nogil=True, cache=True, fastmath=True)
def _replace_modulus(spectra, amplitudes):  # type: ignore[no-untyped-def]
    """Every mode's ``spectra`` times ``a / sqrt(sum over modes |spectra|^2)`` in place (the
    modes' intensities add); returns ``sum (sqrt(...) - a)^2``."""
    modes = spectra.shape[1]
    n = spectra.shape[2]
    misfit = 0.0
    total = np.empty(n)
    for b in range(spectra.shape[0]):
        for i in range(n):
            total[:] = 0.0
            for m in range(modes):
                s = spectra[b, m, i]
                for j in range(n):
                    total[j] += s[j].real * s[j].real + s[j].imag * s[j].imag
            a = amplitudes[b, i]
            for j in range(n):
                root = math.sqrt(total[j])
                misfit += (root - a[j]) * (root - a[j])
                total[j] = a[j] / max(root, 1e-12)  # now the scale
            for m in range(modes):
                s = spectra[b, m, i]
                for j in range(n):
                    s[j] *= total[j]
    return misfit


@_jit
def _scatter_change(  # type: ignore[no-untyped-def]
    fixed, exit_waves, probes, windows, corners, total, weight, gradient, window_weight, terms
):
    """``d = fixed - exit_waves`` per mode; ``total[window] += sum_m conj(P_m) d_m``,
    ``weight[window] += sum_m |P_m|^2``; where ``terms``: ``gradient[b or 0, m] +=
    conj(O_b) d_m`` and ``window_weight += |O_b|^2``."""
    n = windows.shape[1]
    modes = probes.shape[1]
    one = probes.shape[0] == 1
    per_position = gradient.shape[0] > 1
    for b in range(windows.shape[0]):
        y, x = corners[b, 0], corners[b, 1]
        p = probes[0] if one else probes[b]
        g = gradient[b] if per_position else gradient[0]
        for i in range(n):
            t = total[y + i, x : x + n]
            wt = weight[y + i, x : x + n]
            w = windows[b, i]
            for m in range(modes):
                f = fixed[b, m, i]
                e = exit_waves[b, m, i]
                pm = p[m, i]
                gm = g[m, i]
                for j in range(n):
                    d = f[j] - e[j]
                    pv = pm[j]
                    t[j] += pv.conjugate() * d
                    wt[j] += pv.real * pv.real + pv.imag * pv.imag
                    if terms:
                        gm[j] += w[j].conjugate() * d
            if terms:
                ww = window_weight[i]
                for j in range(n):
                    ww[j] += w[j].real * w[j].real + w[j].imag * w[j].imag


@_jit
def _apply(part, total, weight, step, regularisation):  # type: ignore[no-untyped-def]
    top = weight.max()
    if top <= 0:
        return
    floor = regularisation * top
    for i in range(part.shape[0]):
        for j in range(part.shape[1]):
            part[i, j] += step * total[i, j] / ((1 - regularisation) * weight[i, j] + floor)


def _fft2(a: np.ndarray, inverse: bool = False) -> np.ndarray:
    fn = scipy.fft.ifft2 if inverse else scipy.fft.fft2
    return fn(a, norm="ortho", workers=-1, overwrite_x=True)


def cpu(
    obj: np.ndarray,
    probe: np.ndarray,
    amplitudes: np.ndarray,
    corners: np.ndarray,
    fractions: np.ndarray | None,
    object_step: float,
    regularisation: float,
    probe_terms: bool,
    position_terms: bool = False,
) -> tuple[float, Any, Any, Any]:
    """One batch (see :func:`libertem_gpu.kernels.ptycho.reference`, same arguments)."""
    b, modes, n = len(corners), probe.shape[0], probe.shape[-1]
    corners = np.asarray(corners, dtype=np.int64)
    part, local, box = batch_box(obj, corners, n)
    ramps = None
    if fractions is None:
        probes = probe[None]
    else:
        moved = np.asarray(fractions, dtype=np.float64)
        probes, ramps = _moved_probes(np, probe, moved, scipy.fft)
    windows = np.empty((b, n, n), np.complex128)
    exit_waves = np.empty((b, modes, n, n), np.complex128)
    _exit_waves(part, probes, local, windows, exit_waves)
    spectra = scipy.fft.fft2(exit_waves, norm="ortho", workers=-1)
    misfit = _replace_modulus(spectra, np.ascontiguousarray(amplitudes, dtype=np.float64))
    fixed = _fft2(spectra, inverse=True)
    total = np.zeros(box, np.complex128)
    weight = np.zeros(box, np.float64)
    gradient = np.zeros((b if ramps is not None else 1, modes, n, n), np.complex128)
    window_weight = np.zeros((n, n), np.float64)
    _scatter_change(
        fixed, exit_waves, probes, windows, local, total, weight, gradient, window_weight,
        bool(probe_terms),
    )  # fmt: skip
    _apply(part, total, weight, float(object_step), float(regularisation))
    shifts = None
    if position_terms:  # NumPy: the change is not kept by the loops
        shifts = position_shifts(np, scipy.fft, probes, windows, fixed - exit_waves)
    if not probe_terms:
        return float(misfit), None, None, shifts
    if ramps is not None:  # back to the unmoved probe's frame
        gradient = _fft2(_fft2(gradient) * np.conj(ramps), inverse=True)
    return float(misfit), gradient.sum(axis=0), window_weight, shifts
