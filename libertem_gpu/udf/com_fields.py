"""What follows from a centre-of-mass field over a 2-D scan: its integral (iCoM, iDPC), the scan
rotation and flip that make it curl-free, and DPC signals from a four-quadrant detector.

Everything here runs once on the scan-shaped result (small next to the data), in NumPy on the
client; nothing reads frames.

Integration (:func:`integrate_field`)
-------------------------------------
The field ``(g_y, g_x)`` is taken as the gradient of a scalar ``phi`` (axis 0 is y, unit scan
step) and ``phi`` is found by least squares in Fourier space (Frankot and Chellappa):
``phi_hat = -1j * (k_y g_y_hat + k_x g_x_hat) / (k_y**2 + k_x**2)``. A plain FFT would treat the
scan as periodic and smear the jump between opposite borders into the whole image; instead the
field is first extended to twice the scan in each direction as the gradient of the *mirrored*
``phi``: the component along an axis is reflected with a change of sign (odd), the other one
without (even). The extended field is periodic and continuous across the seams, so no
wrap-around artefacts arise (the same symmetric extension as a cosine transform, Neumann
boundaries). The free constant is fixed by a zero mean over the valid positions.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from libertem_gpu.errors import ShapeMismatchError

__all__ = [
    "GuessResult",
    "ScanRotationEstimate",
    "coordinate_check",
    "dpc_signals",
    "estimate_scan_rotation",
    "guess_corrections",
    "icom",
    "idpc",
    "integrate_field",
    "quadrant_masks",
]


def _as_2d_pair(field_y: Any, field_x: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    fy = np.asarray(field_y, dtype=np.float64)
    fx = np.asarray(field_x, dtype=np.float64)
    if fy.ndim != 2 or fy.shape != fx.shape:
        raise ShapeMismatchError(
            f"{what} needs two components over a 2-D scan of the same shape, got "
            f"{fy.shape} and {fx.shape}"
        )
    return fy, fx


def integrate_field(field_y: Any, field_x: Any, valid: Any = None) -> np.ndarray:
    """The scalar ``phi`` whose gradient best matches the field ``(field_y, field_x)``.

    Parameters
    ----------
    field_y, field_x : array_like
        The components along scan axis 0 (y) and axis 1 (x), shape ``(ny, nx)``, per scan step.
    valid : array_like of bool, optional
        Positions that hold a value; default: those where both components are finite.
        Elsewhere (outside a roi, positions without data) the field counts as 0 (no gradient)
        for the integration, and the result is NaN.

    Returns
    -------
    numpy.ndarray
        ``phi``, float64 ``(ny, nx)``, zero mean over the valid positions; in the field's
        units times scan steps (detector pixels x scan steps for a CoM field).

    Notes
    -----
    Mirror-extended FFT integration, see the module's description. For a smooth ``phi``
    sampled on the scan, ``integrate_field(*numpy.gradient(phi))`` returns ``phi`` minus its
    mean, to within the discretisation of the gradient.
    """
    fy, fx = _as_2d_pair(field_y, field_x, "integrate_field")
    ok = np.isfinite(fy) & np.isfinite(fx)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape != fy.shape:
            raise ShapeMismatchError(f"valid must have the scan's shape {fy.shape}, got {v.shape}")
        ok &= v
    ny, nx = fy.shape
    out = np.full((ny, nx), np.nan)
    if not ok.any():
        return out
    gy = np.where(ok, fy, 0.0)
    gx = np.where(ok, fx, 0.0)
    # Gradient of the mirrored phi: odd along the component's own axis, even along the other.
    ey = np.concatenate([gy, -gy[::-1]], axis=0)
    ey = np.concatenate([ey, ey[:, ::-1]], axis=1)
    ex = np.concatenate([gx, gx[::-1]], axis=0)
    ex = np.concatenate([ex, -ex[:, ::-1]], axis=1)
    ky = 2 * np.pi * np.fft.fftfreq(2 * ny)[:, None]
    kx = 2 * np.pi * np.fft.rfftfreq(2 * nx)[None, :]
    k2 = ky**2 + kx**2
    k2[0, 0] = 1.0  # the mean is free; set to 0 below
    numerator = ky * np.fft.rfft2(ey) + kx * np.fft.rfft2(ex)
    phi_hat = -1j * numerator / k2
    phi_hat[0, 0] = 0.0
    phi = np.fft.irfft2(phi_hat, s=(2 * ny, 2 * nx))[:ny, :nx]
    out[ok] = phi[ok] - phi[ok].mean()
    return out


def icom(field_y: Any, field_x: Any, valid: Any = None) -> np.ndarray:
    """Integrated centre of mass: :func:`integrate_field` of a (rotation- and flip-corrected)
    CoM field, e.g. ``CoMUDF``'s ``field_y`` and ``field_x`` results. Proportional to the
    projected potential (phase) of a thin specimen."""
    return integrate_field(field_y, field_x, valid)


def idpc(dpc_y: Any, dpc_x: Any, valid: Any = None) -> np.ndarray:
    """Integrated differential phase contrast (Lazić et al., Ultramicroscopy 160 (2016)):
    :func:`integrate_field` of the DPC difference signals of a segmented detector (see
    :func:`quadrant_masks` and :func:`dpc_signals`). To first order in the beam's shift the
    DPC signals are proportional to the CoM, so iDPC is a scaled iCoM."""
    return integrate_field(dpc_y, dpc_x, valid)


def quadrant_masks(
    sig_shape: tuple[int, int], cy: float, cx: float, r: float = float("inf")
) -> np.ndarray:
    """The four segments of a quadrant detector, ``(4, rows, cols)`` float64, for
    :class:`~libertem_gpu.ApplyMasksUDF`: top-left, top-right, bottom-right, bottom-left of
    ``(cy, cx)`` (row, column), within radius ``r``. Pixels on a dividing line count half to
    each side, so that a centred symmetric pattern gives equal segments."""
    rows, cols = sig_shape
    y, x = np.mgrid[:rows, :cols].astype(np.float64)
    inside = ((y - cy) ** 2 + (x - cx) ** 2 <= r * r).astype(np.float64)
    top = np.where(y < cy, 1.0, np.where(y == cy, 0.5, 0.0))
    left = np.where(x < cx, 1.0, np.where(x == cx, 0.5, 0.0))
    bottom, right = 1.0 - top, 1.0 - left
    return np.stack([top * left, top * right, bottom * right, bottom * left]) * inside


def dpc_signals(quadrants: Any) -> tuple[np.ndarray, np.ndarray]:
    """Normalised DPC difference signals from the four segment intensities.

    Parameters
    ----------
    quadrants : array_like, shape ``(..., 4)``
        Top-left, top-right, bottom-right, bottom-left (the order of :func:`quadrant_masks`).

    Returns
    -------
    dpc_y, dpc_x : numpy.ndarray
        ``(bottom - top) / total`` and ``(right - left) / total`` (0 where the total is 0).
    """
    q = np.asarray(quadrants, dtype=np.float64)
    if q.shape[-1:] != (4,):
        raise ShapeMismatchError(f"quadrants must have a last axis of 4, got shape {q.shape}")
    tl, tr, br, bl = np.moveaxis(q, -1, 0)
    total = tl + tr + br + bl
    safe = np.where(total == 0, 1.0, total)
    dy = np.where(total == 0, 0.0, ((bl + br) - (tl + tr)) / safe)
    dx = np.where(total == 0, 0.0, ((tr + br) - (tl + bl)) / safe)
    return dy, dx


# --- scan rotation and flip from the curl --------------------------------------------------------


class ScanRotationEstimate(NamedTuple):
    """Result of :func:`estimate_scan_rotation`.

    ``scan_rotation`` (degrees) and ``flip_y`` are what :meth:`CoMUDF.with_params
    <libertem_gpu.CoMUDF.with_params>` takes; ``cy, cx`` the mean of the inputs (the centre,
    if the inputs were ``raw_com``); ``rms_curl`` the RMS curl left at that setting.
    """

    scan_rotation: float
    flip_y: bool
    cy: float
    cx: float
    rms_curl: float

    def params(self) -> dict[str, Any]:
        """The keyword arguments for ``CoMUDF.with_params``."""
        return {k: getattr(self, k) for k in ("scan_rotation", "flip_y", "cy", "cx")}


class GuessResult(NamedTuple):
    """Result of :func:`guess_corrections` (LiberTEM's type): pass ``_asdict()`` to
    ``CoMUDF.with_params``."""

    scan_rotation: int
    flip_y: bool
    cy: float
    cx: float


def _default_roi(roi: Any) -> Any:
    # The last row and column carry one-sided differences: left out by default, as LiberTEM.
    return (slice(0, -1), slice(0, -1)) if roi is None else roi


def _curl_forms(fy: np.ndarray, fx: np.ndarray, roi: Any) -> dict[bool, np.ndarray]:
    """For each flip, the 2x2 matrix ``Q`` with ``mean(curl**2) = v @ Q @ v``,
    ``v = (cos a, sin a)`` for a rotation by ``a``.

    The curl is linear in the transformation ``T = R(a) F`` of the field, so with the four
    derivative maps ``d = (dfy/dx, dfx/dx, dfy/dy, dfx/dy)`` it is ``w . d`` with
    ``w = (T00, T01, -T10, -T11) = M_f v``: one Gram matrix of ``d`` gives every angle."""
    maps = [np.gradient(fy, axis=1), np.gradient(fx, axis=1)]
    maps += [np.gradient(fy, axis=0), np.gradient(fx, axis=0)]
    d = np.stack([m[roi].reshape(-1) for m in maps])
    n = max(d.shape[1], 1)
    gram = d @ d.T / n
    forms = {}
    for flip in (False, True):
        f = -1.0 if flip else 1.0
        m = np.array([[f, 0.0], [0.0, 1.0], [0.0, f], [-1.0, 0.0]])
        forms[flip] = m.T @ gram @ m
    return forms


def _rms_curl(form: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    a = np.radians(degrees)
    v = np.stack([np.cos(a), np.sin(a)])
    return np.sqrt(np.maximum(np.einsum("in,ij,jn->n", v, form, v), 0.0))


def coordinate_check(y_centers: Any, x_centers: Any, roi: Any = None) -> tuple[Any, Any]:
    """RMS curl of the corrected field for ``scan_rotation`` 0..359 degrees, without and with
    ``flip_y`` (LiberTEM's ``coordinate_check``): ``(straight, flipped)``, 360 values each.
    ``roi`` selects the positions (default: all but the last row and column)."""
    fy, fx = _as_2d_pair(y_centers, x_centers, "coordinate_check")
    forms = _curl_forms(fy, fx, _default_roi(roi))
    degrees = np.arange(360.0)
    return _rms_curl(forms[False], degrees), _rms_curl(forms[True], degrees)


def _polarity(fy: np.ndarray, fx: np.ndarray, angle: float, flip: bool, roi: Any) -> bool:
    """Whether ``angle`` is off by 180 degrees: electrons are deflected towards the nuclei, so
    the divergence of the right field has its longer tail at negative values (as LiberTEM)."""
    from libertem_gpu.udf.com import apply_correction

    cy, cx = apply_correction(fy, fx, angle, flip)
    div = (np.gradient(cy, axis=0) + np.gradient(cx, axis=1))[roi]
    span = max(-np.min(div), np.max(div)) if div.size else 0.0
    hist, _ = np.histogram(div, range=(-span, span), bins=5)
    return bool(hist[0] < hist[-1])


def wrap_degrees(angle: float) -> float:
    """``angle`` (degrees) turned by whole turns into (-180, 180]."""
    wrapped = math.fmod(angle, 360.0)
    if wrapped <= -180.0:
        wrapped += 360.0
    elif wrapped > 180.0:
        wrapped -= 360.0
    return wrapped


def estimate_scan_rotation(field_y: Any, field_x: Any, roi: Any = None) -> ScanRotationEstimate:
    """The scan rotation and flip that minimise the RMS curl of a CoM field, to any angle.

    A field from an electrostatic potential is curl-free, so the setting under which the
    measured shifts have the least curl is the one that maps detector axes onto scan axes.
    The mean square curl is a quadratic form in ``(cos a, sin a)``: its minimum is found in
    closed form (the eigenvector of the smaller eigenvalue), for each flip; the smaller wins.
    The two angles 180 degrees apart are told apart as in :func:`guess_corrections`.

    Parameters
    ----------
    field_y, field_x : array_like
        Shifts over a 2-D scan, uncorrected (``CoMUDF``'s ``raw_com`` or ``raw_shifts``
        components); NaN positions must be left out with ``roi``.
    roi : bool array or tuple of slices, optional
        Positions to use; default: all but the last row and column.

    Returns
    -------
    ScanRotationEstimate
        ``scan_rotation`` in degrees within (-180, 180], ``flip_y``, ``cy, cx``, ``rms_curl``.
    """
    fy, fx = _as_2d_pair(field_y, field_x, "estimate_scan_rotation")
    roi = _default_roi(roi)
    forms = _curl_forms(fy, fx, roi)
    best: tuple[float, bool, float] | None = None
    for flip in (False, True):
        values, vectors = np.linalg.eigh(forms[flip])
        angle = float(np.degrees(np.arctan2(vectors[1, 0], vectors[0, 0])))
        rms = float(np.sqrt(max(values[0], 0.0)))
        if best is None or rms < best[2]:
            best = (angle % 360.0, flip, rms)
    assert best is not None
    angle, flip, rms = best
    if _polarity(fy, fx, angle, flip, roi):
        angle = (angle + 180.0) % 360.0
    return ScanRotationEstimate(
        wrap_degrees(angle), flip, float(np.mean(fy[roi])), float(np.mean(fx[roi])), rms
    )


def guess_corrections(y_centers: Any, x_centers: Any, roi: Any = None) -> GuessResult:
    """LiberTEM's ``guess_corrections``: scan rotation (whole degrees), flip and centre from
    CoM data, the rotation that minimises the RMS curl over 0..359 degrees in steps of 1,
    then the 180-degree ambiguity resolved by the sign of the divergence's tail.

    Parameters
    ----------
    y_centers, x_centers : array_like
        2-D maps of the CoM (or its shifts) over the scan.
    roi : bool array or tuple of slices, optional
        Positions to use; default: all but the last row and column.

    Returns
    -------
    GuessResult
        ``scan_rotation`` (int, -179..180), ``flip_y``, and ``cy, cx``: the means of the
        inputs over ``roi``. See :func:`estimate_scan_rotation` for any angle.
    """
    fy, fx = _as_2d_pair(y_centers, x_centers, "guess_corrections")
    roi = _default_roi(roi)
    straight, flipped = coordinate_check(fy, fx, roi)
    flip = bool(np.min(flipped) < np.min(straight))
    angle = float(np.argmin(flipped if flip else straight))
    if _polarity(fy, fx, angle, flip, roi):
        angle += 180.0
    return GuessResult(
        int(wrap_degrees(angle)), flip, float(np.mean(fy[roi])), float(np.mean(fx[roi]))
    )
