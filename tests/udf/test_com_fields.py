"""iCoM, iDPC and the scan rotation from the curl (``libertem_gpu.udf.com_fields``), alone and
through CoMUDF: known answers from a pure phase gradient."""

from __future__ import annotations

import numpy as np
import pytest

import libertem_gpu as lg
from libertem_gpu.compat.udf import com as compat_com
from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.udf.com import apply_correction
from libertem_gpu.udf.com_fields import (
    dpc_signals,
    estimate_scan_rotation,
    guess_corrections,
    icom,
    idpc,
    integrate_field,
    quadrant_masks,
)

SIG = (25, 27)
CENTRE = (12.0, 13.0)
SCALE = 1.5  # detector pixels of shift per unit of phase gradient (per scan step)


def phase(y, x):
    """A smooth, non-periodic phase over the scan (bumps, a wave and a ramp)."""
    return (
        np.sin(2 * np.pi * y / 13.0 + 0.4) * np.cos(2 * np.pi * x / 17.0)
        + 1.5 * np.exp(-((y - 5.0) ** 2 + (x - 14.0) ** 2) / 12.0)
        + 0.05 * x
    )


def phase_gradient(y, x, h=1e-5):
    gy = (phase(y + h, x) - phase(y - h, x)) / (2 * h)
    gx = (phase(y, x + h) - phase(y, x - h)) / (2 * h)
    return gy, gx


def probe_frames(shift_y, shift_x, sigma=2.0):
    """A Gaussian probe shifted in the detector plane by ``(shift_y, shift_x)`` per position."""
    r, c = np.mgrid[: SIG[0], : SIG[1]].astype(np.float64)
    dy = r - CENTRE[0] - shift_y[..., None, None]
    dx = c - CENTRE[1] - shift_x[..., None, None]
    return np.exp(-(dy**2 + dx**2) / (2 * sigma**2)).astype(np.float32)


def relative_rms(result, expected, where=None):
    """RMS error relative to the range of ``expected``, after removing the free constant."""
    where = np.isfinite(result) if where is None else where
    diff = (result - expected)[where]
    diff = diff - diff.mean()
    return float(np.sqrt(np.mean(diff**2)) / np.ptp(expected[where]))


def test_integrate_field_inverts_the_gradient():
    y, x = np.mgrid[:31, :22].astype(np.float64)
    phi = phase(y, x)
    result = integrate_field(*phase_gradient(y, x))
    assert abs(np.mean(result)) < 1e-12  # the free constant: zero mean
    assert relative_rms(result, phi) < 5e-3
    # a mirror extension, not a periodic one: the borders are as good as the middle
    border = np.zeros(phi.shape, bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    assert relative_rms(result, phi, border) < 1e-2
    # from finite differences (what a measured field is) as well
    assert relative_rms(integrate_field(*np.gradient(phi)), phi) < 1e-2
    np.testing.assert_allclose(icom(*np.gradient(phi)), integrate_field(*np.gradient(phi)))


def test_periodic_integration_would_fail():
    """The test above can fail: a plain periodic FFT integration of the same field is far off."""
    y, x = np.mgrid[:31, :22].astype(np.float64)
    phi = phase(y, x)
    gy, gx = phase_gradient(y, x)
    ky = 2 * np.pi * np.fft.fftfreq(31)[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(22)[None, :]
    k2 = ky**2 + kx**2
    k2[0, 0] = 1
    periodic = np.fft.ifft2(-1j * (ky * np.fft.fft2(gy) + kx * np.fft.fft2(gx)) / k2).real
    assert relative_rms(periodic, phi) > 0.05


def test_integrate_field_missing_positions_and_errors():
    y, x = np.mgrid[:15, :18].astype(np.float64)
    gy, gx = phase_gradient(y, x)
    valid = np.ones(gy.shape, bool)
    valid[3:6, 4:9] = False
    gy[0, 0] = np.nan
    result = integrate_field(gy, gx, valid)
    assert np.isnan(result[~valid]).all() and np.isnan(result[0, 0])
    ok = valid & np.isfinite(result)
    assert ok.sum() == valid.sum() - 1
    assert abs(result[ok].mean()) < 1e-12
    assert relative_rms(result, phase(y, x), ok) < 0.03  # the hole counts as no gradient
    assert np.isnan(integrate_field(np.full((3, 4), np.nan), np.zeros((3, 4)))).all()
    with pytest.raises(ShapeMismatchError, match="same shape"):
        integrate_field(np.zeros((3, 4)), np.zeros((4, 3)))
    with pytest.raises(ShapeMismatchError, match="valid must have"):
        integrate_field(np.zeros((3, 4)), np.zeros((3, 4)), np.ones((4, 3), bool))


@pytest.mark.parametrize("with_roi", [False, True])
def test_phase_gradient_known_answer(ctx, rng, with_roi):
    """Probe shifted by SCALE * grad(phase): CoMUDF's field is that shift, its curl 0, its
    divergence SCALE * laplacian(phase), and its iCoM is SCALE * phase within 1% (RMS error
    relative to the phase's range, constant removed)."""
    nav = (19, 23)
    y, x = np.mgrid[: nav[0], : nav[1]].astype(np.float64)
    gy, gx = phase_gradient(y, x)
    data = probe_frames(SCALE * gy, SCALE * gx)
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = None
    if with_roi:
        roi = rng.random(nav) > 0.1
    udf = lg.CoMUDF.with_params(cy=CENTRE[0], cx=CENTRE[1])
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    sel = np.ones(nav, bool) if roi is None else roi
    np.testing.assert_allclose(res["field_y"].data[sel], SCALE * gy[sel], atol=2e-3)
    np.testing.assert_allclose(res["field_x"].data[sel], SCALE * gx[sel], atol=2e-3)
    if roi is None:  # (one-sided differences at a roi's holes are not curl-free)
        interior = (slice(1, -1), slice(1, -1))
        assert np.abs(res["curl"].data[interior]).max() < 0.01 * np.abs(SCALE * gy).max()
        lap = np.gradient(gy, axis=0) + np.gradient(gx, axis=1)
        np.testing.assert_allclose(res["divergence"].data, SCALE * lap, atol=5e-3)
    phi = icom(res["field_y"].data, res["field_x"].data)
    np.testing.assert_allclose(res["icom"].data, phi, equal_nan=True, atol=1e-12)
    assert np.isnan(res["icom"].data[~sel]).all()
    error = relative_rms(res["icom"].data / SCALE, phase(y, x), sel)
    assert error < (0.01 if roi is None else 0.03), error


def test_icom_only_for_2d_scans(inline_ctx, rng):
    data = probe_frames(rng.random(7), rng.random(7))
    res = inline_ctx.run_udf(dataset=inline_ctx.load("memory", data=data), udf=lg.CoMUDF())
    assert "icom" not in res and "curl" not in res


def test_idpc_from_quadrants(inline_ctx):
    """iDPC: quadrant segments through ApplyMasksUDF, normalised differences, integrated; to
    first order in the shift proportional to the phase."""
    nav = (17, 21)
    y, x = np.mgrid[: nav[0], : nav[1]].astype(np.float64)
    gy, gx = phase_gradient(y, x)
    data = probe_frames(0.3 * gy, 0.3 * gx, sigma=3.0)
    segments = quadrant_masks(SIG, *CENTRE, r=11)
    assert segments.shape == (4, *SIG)
    # a centred symmetric pattern gives equal segments (pixels on the lines count half)
    centred = probe_frames(np.zeros(1), np.zeros(1), sigma=3.0)[0]
    np.testing.assert_allclose(
        (segments * centred).sum(axis=(1, 2)), (segments * centred).sum(axis=(1, 2))[0]
    )
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run_udf(dataset=ds, udf=lg.ApplyMasksUDF(mask_factories=lambda: segments))
    dpc_y, dpc_x = dpc_signals(res["intensity"].data)
    assert np.corrcoef(dpc_y.ravel(), gy.ravel())[0, 1] > 0.99
    assert np.corrcoef(dpc_x.ravel(), gx.ravel())[0, 1] > 0.99
    result = idpc(dpc_y, dpc_x)
    assert np.corrcoef(result.ravel(), phase(y, x).ravel())[0, 1] > 0.99
    with pytest.raises(ShapeMismatchError, match="last axis of 4"):
        dpc_signals(np.ones((3, 3)))


def _atomic_field(shape=(36, 40)):
    """Shifts towards atom columns (negative divergence at atoms), as measured in the scan."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    potential = sum(
        np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 5.0)
        for cy in range(3, shape[0], 7)
        for cx in range(4, shape[1], 7)
    )
    return np.gradient(potential)


@pytest.mark.parametrize(
    "rotation, flip", [(0.0, False), (37.4, False), (-121.0, True), (170.6, True)]
)
def test_rotation_and_flip_from_the_curl(rng, rotation, flip):
    fy, fx = _atomic_field()
    # what the detector records: the inverse of the correction that gives the scan's field
    ry, rx = apply_correction(fy, fx, rotation, flip, forward=False)
    ry = ry + 0.01 * rng.standard_normal(ry.shape) + 3.0
    rx = rx + 0.01 * rng.standard_normal(rx.shape) - 2.0
    est = estimate_scan_rotation(ry, rx)
    assert est.flip_y == flip
    assert abs((est.scan_rotation - rotation + 180) % 360 - 180) < 0.5
    assert est.cy == pytest.approx(np.mean(ry[:-1, :-1])) and est.rms_curl >= 0
    guess = guess_corrections(ry, rx)
    assert guess.flip_y == flip and guess.scan_rotation == round(rotation)
    assert compat_com.guess_corrections(ry, rx) == guess
    straight, flipped = compat_com.coordinate_check(ry, rx)
    assert straight.shape == flipped.shape == (360,)
    assert (flipped if flip else straight).min() < (straight if flip else flipped).min()


def test_estimated_rotation_corrects_a_com_run(inline_ctx):
    """End to end: raw shifts rotated and flipped on the detector; the estimate from a plain
    run's raw_shifts, passed to with_params, gives back the scan's field."""
    fy, fx = _atomic_field((16, 18))
    ry, rx = apply_correction(fy, fx, 64.0, True, forward=False)
    ds = inline_ctx.load("memory", data=probe_frames(ry, rx), num_partitions=2)
    plain = inline_ctx.run_udf(dataset=ds, udf=lg.CoMUDF.with_params(cy=CENTRE[0], cx=CENTRE[1]))
    shifts = plain["raw_shifts"].data
    est = estimate_scan_rotation(shifts[..., 0], shifts[..., 1])
    assert est.flip_y and abs(est.scan_rotation - 64.0) < 0.5
    params = {**est.params(), "cy": CENTRE[0], "cx": CENTRE[1]}
    fixed = inline_ctx.run_udf(dataset=ds, udf=lg.CoMUDF.with_params(**params))
    np.testing.assert_allclose(fixed["field_y"].data, fy, atol=0.01)
    np.testing.assert_allclose(fixed["field_x"].data, fx, atol=0.01)
