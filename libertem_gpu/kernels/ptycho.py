"""One batch of iterative ptychography (:func:`~libertem_gpu.ptychography`): the exit waves
of a batch of probe positions, their Fourier amplitudes replaced by the measured ones, and the
object's rPIE update from the change, in place.

The probe has ``M`` incoherent modes ``P^m`` (``(M, N, N)``; one for a coherent probe). For
positions ``j`` with window corners ``c_j`` (whole pixels) and fractions ``f_j``:
``P^m_j = IFFT(FFT(P^m) exp(-2 pi i k . f_j))`` (each mode moved by ``f_j``), ``O_j`` the
``N x N`` window of the object at ``c_j``, ``psi^m_j = P^m_j O_j``, ``Psi^m_j =
FFT(psi^m_j)`` (orthonormal), the modes' intensities adding up:
``|Psi_j| = sqrt(sum_m |Psi^m_j|^2)``, and ``d^m_j = IFFT(a_j Psi^m_j / |Psi_j|) - psi^m_j``
with ``a_j`` the measured amplitudes. Then, over the batch's box of the object,
``O += step * S / ((1 - r) W + r max W)``, ``S = sum_j,m conj(P^m_j) d^m_j`` and
``W = sum_j,m |P^m_j|^2`` placed at the windows. Returned: the misfit
``sum (|Psi| - a)^2`` and, where asked for, the probe's terms
``sum_j unmove_j(conj(O_j) d^m_j)`` (``(M, N, N)``) and ``sum_j |O_j|^2`` (``O_j`` before
the update), which the caller turns into the probe's step, and where asked for each
position's best move (:func:`position_shifts`), with which the caller corrects the positions.

The reference is plain NumPy; the GPU implementation the same in CuPy with atomic adds; the CPU
one (:mod:`~libertem_gpu.kernels.ptycho_cpu`) fuses the element-wise work in Numba around
SciPy's FFTs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["gpu", "reference"]


def _moved_probes(xp: Any, probe: Any, fractions: Any, fft: Any) -> tuple[Any, Any]:
    """``(b, M, N, N)`` probe modes (``(M, N, N)``) moved by ``fractions`` (``(b, 2)``), and
    the ``(b, 1, N, N)`` ramps that moved them."""
    n = probe.shape[-1]
    f = xp.fft.fftfreq(n)
    ramps = xp.exp(
        -2j * math.pi * (fractions[:, 0, None, None] * f[:, None] + fractions[:, 1, None, None] * f)
    )[:, None]
    return fft.ifft2(fft.fft2(probe, norm="ortho")[None] * ramps, norm="ortho"), ramps


def position_shifts(xp: Any, fft: Any, probes: Any, windows: Any, change: Any) -> Any:
    """``(b, 2)``: for each position the move ``delta`` of its probe (pixels, row and column)
    that best explains its exit waves' change, ``d ~ delta . G`` with ``G_k = -(d P / d r_k)
    O`` summed over the modes, by least squares (a 2 x 2 system per position, its diagonal
    raised by a millionth of its trace)."""
    n = probes.shape[-1]
    f = 2j * math.pi * xp.fft.fftfreq(n)
    spectrum = fft.fft2(probes, norm="ortho")
    g = [
        -fft.ifft2(spectrum * f[:, None], norm="ortho") * windows[:, None],
        -fft.ifft2(spectrum * f[None, :], norm="ortho") * windows[:, None],
    ]
    axes = (1, 2, 3)
    a = [[(xp.conj(g[k]) * g[m]).real.sum(axis=axes) for m in range(2)] for k in range(2)]
    rhs = [(xp.conj(g[k]) * change).real.sum(axis=axes) for k in range(2)]
    ridge = 1e-6 * (a[0][0] + a[1][1]) + 1e-300
    a00, a11, a01 = a[0][0] + ridge, a[1][1] + ridge, a[0][1]
    det = a00 * a11 - a01 * a01
    return xp.stack([(a11 * rhs[0] - a01 * rhs[1]) / det, (a00 * rhs[1] - a01 * rhs[0]) / det], -1)


def batch_box(obj: Any, corners: Any, n: int) -> tuple[Any, Any, tuple[int, int]]:
    """The part of ``obj`` a batch's ``N x N`` windows cover (a view: its update is the
    object's), the windows' corners in it and its shape."""
    low = corners.min(axis=0)
    local = corners - low
    box = (int(local[:, 0].max()) + n, int(local[:, 1].max()) + n)
    return obj[int(low[0]) : int(low[0]) + box[0], int(low[1]) : int(low[1]) + box[1]], local, box


def _flat(xp: Any, corners: Any, n: int, width: int) -> Any:
    ar = xp.arange(n)
    return (corners[:, 0, None, None] + ar[:, None]) * width + (corners[:, 1, None, None] + ar)


def _step(
    xp: Any,
    fft: Any,
    scatter: Any,
    obj: Any,
    probe: Any,
    amplitudes: Any,
    corners: Any,
    fractions: Any,
    object_step: float,
    regularisation: float,
    probe_terms: bool,
    position_terms: bool,
) -> tuple[float, Any, Any, Any]:
    n = probe.shape[-1]
    part, local, box = batch_box(obj, corners, n)
    flat = _flat(xp, local, n, box[1])
    windows = part.reshape(-1)[flat]
    if fractions is None:
        probes, ramps = probe[None], None  # (1, M, N, N)
    else:
        probes, ramps = _moved_probes(xp, probe, fractions, fft)  # (b, M, N, N)
    exit_waves = probes * windows[:, None]
    spectra = fft.fft2(exit_waves, norm="ortho")
    # the modes are incoherent: their intensities add
    modulus = xp.sqrt((spectra.real**2 + spectra.imag**2).sum(axis=1))
    misfit = ((modulus - amplitudes) ** 2).sum()
    scale = (amplitudes / xp.maximum(modulus, 1e-12))[:, None]
    change = fft.ifft2(spectra * scale, norm="ortho")
    change -= exit_waves
    total = xp.zeros(box, dtype=np.complex128)
    weight = xp.zeros(box, dtype=np.float64)
    scatter(total, flat, (xp.conj(probes) * change).sum(axis=1))
    power = (probes.real**2 + probes.imag**2).sum(axis=1)
    scatter(weight, flat, xp.broadcast_to(power, flat.shape))
    top = float(weight.max())
    if top > 0:
        part += object_step * total / ((1 - regularisation) * weight + regularisation * top)
    shifts = position_shifts(xp, fft, probes, windows, change) if position_terms else None
    if not probe_terms:
        return float(misfit), None, None, shifts
    gradient = xp.conj(windows)[:, None] * change
    if ramps is not None:  # back to the unmoved probe's frame
        gradient = fft.ifft2(fft.fft2(gradient, norm="ortho") * xp.conj(ramps), norm="ortho")
    return float(misfit), gradient.sum(axis=0), (xp.abs(windows) ** 2).sum(axis=0), shifts


def _numpy_scatter(target: np.ndarray, flat: np.ndarray, values: np.ndarray) -> None:
    np.add.at(target.reshape(-1), flat.reshape(-1), np.asarray(values).reshape(-1))


def reference(
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
    """One batch in plain NumPy (see the module's description).

    Parameters
    ----------
    obj : numpy.ndarray
        ``(H, W)`` complex128, updated in place.
    probe : numpy.ndarray
        ``(M, N, N)`` complex128: the probe's modes.
    amplitudes : numpy.ndarray
        ``(b, N, N)`` float: the measured amplitudes, zero frequency at index 0.
    corners : numpy.ndarray
        ``(b, 2)`` int64: the windows' corners, inside ``obj``.
    fractions : numpy.ndarray or None
        ``(b, 2)`` float64: the probe's move per position, or None for none.
    object_step, regularisation : float
        The rPIE step and its ``r``.
    probe_terms : bool
        Return the probe's terms.
    position_terms : bool
        Return each position's best move (:func:`position_shifts`).

    Returns
    -------
    misfit : float
    numerator, weight : numpy.ndarray or None
        ``(M, N, N)`` complex128 and ``(N, N)`` float64, where ``probe_terms``.
    shifts : numpy.ndarray or None
        ``(b, 2)``, where ``position_terms`` (a NumPy array on every backend).
    """
    return _step(
        np, np.fft, _numpy_scatter, obj, probe, amplitudes, corners, fractions,
        object_step, regularisation, probe_terms, position_terms,
    )  # fmt: skip


def _cupy_scatter(target: Any, flat: Any, values: Any) -> None:
    import cupy
    import cupyx

    index = flat.reshape(-1)
    if target.dtype.kind == "c":  # atomic adds of the real and imaginary parts
        parts = target.reshape(-1).view(cupy.float64)
        cupyx.scatter_add(parts, 2 * index, values.real.reshape(-1))
        cupyx.scatter_add(parts, 2 * index + 1, values.imag.reshape(-1))
    else:
        cupyx.scatter_add(target.reshape(-1), index, cupy.ascontiguousarray(values).reshape(-1))


def gpu(
    obj: Any,
    probe: Any,
    amplitudes: Any,
    corners: Any,
    fractions: Any,
    object_step: float,
    regularisation: float,
    probe_terms: bool,
    position_terms: bool = False,
) -> tuple[float, Any, Any, Any]:
    """CuPy twin of :func:`reference` (arrays on the device; cuFFT, atomic adds); the shifts
    come back as a NumPy array (the positions stay on the host)."""
    import cupy

    misfit, numerator, weight, shifts = _step(
        cupy, cupy.fft, _cupy_scatter, obj, probe, amplitudes, cupy.asarray(corners),
        None if fractions is None else cupy.asarray(fractions),
        object_step, regularisation, probe_terms, position_terms,
    )  # fmt: skip
    return misfit, numerator, weight, None if shifts is None else cupy.asnumpy(shifts)
