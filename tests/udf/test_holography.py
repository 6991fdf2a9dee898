"""HoloReconstructUDF: equal to LiberTEM 0.14's reconstruction written step by step in NumPy
on random data (odd shapes, odd and even output shapes, rois, nav of 1 to 3 dims, every
executor, the shared data set cases), a simulated hologram of known phase and amplitude
reconstructed within 1 %, complex results through merge, NaN filling and saving, and the
helpers."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context, HoloReconstructUDF
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels.fourier import reference_holo
from libertem_gpu.outputs import atomic_path
from libertem_gpu.udf.holography import (
    estimate_sideband_position,
    estimate_sideband_size,
    get_slice_fft,
    holo_aperture,
)
from tests.udf.builtin_cases import CASES_2D_SIG, case_params, load_case


def check(actual, expected, rtol):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("precision", [True, False])
def test_against_numpy_every_executor(ctx: Context, rng, precision):
    nav, sig = (4, 5), (15, 12)
    data = rng.integers(0, 4000, nav + sig).astype(np.uint16)
    roi = rng.random(nav) > 0.3
    ds = ctx.load("memory", data=data, num_partitions=3)
    udf = HoloReconstructUDF(
        out_shape=(9, 3), sb_position=(4, -3), sb_size=3.5, precision=precision
    )
    wave = ctx.run_udf(dataset=ds, udf=udf, roi=roi)["wave"].data
    assert wave.shape == (*nav, 9, 3)
    assert wave.dtype == (np.complex128 if precision else np.complex64)
    assert np.isnan(wave[~roi]).all()
    frames = data.reshape(-1, *sig)[roi.reshape(-1)]
    want = reference_holo(frames, (9, 3), (4, -3), holo_aperture((9, 3), 3.5))
    check(wave[roi], want, 1e-12 if precision else 2e-6)


@pytest.mark.parametrize(
    "nav, sig, out", [((7,), (9, 13), (9, 13)), ((2, 2, 3), (10, 11), (5, 6))], ids=str
)
def test_nav_dims_and_own_aperture(inline_ctx: Context, rng, nav, sig, out):
    data = rng.standard_normal(nav + sig).astype(np.float32)
    aperture = rng.random(out) * np.exp(1j * rng.random(out))
    ds = inline_ctx.load("memory", data=data, num_partitions=4)
    udf = HoloReconstructUDF(out_shape=out, sb_position=(11, 2), aperture=aperture)
    wave = inline_ctx.run_udf(dataset=ds, udf=udf)["wave"].data
    frames = data.reshape(-1, *sig)
    check(wave.reshape(-1, *out), reference_holo(frames, out, (11, 2), aperture), 1e-12)


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG))
def test_shared_cases(inline_ctx: Context, rng, tmp_path, case):
    """Every stored type, big-endian files, sync offsets, rois, partitions, forced tilings."""
    loaded = load_case(inline_ctx, case, rng, tmp_path)
    out = (case.sig[0] - 2, case.sig[1] - 3)
    udf = HoloReconstructUDF(out_shape=out, sb_position=(3, 5), sb_size=3)
    wave = loaded.run(inline_ctx, udf)["wave"].data.reshape(-1, *out)
    done = loaded.processed
    want = reference_holo(loaded.selected, out, (3, 5), holo_aperture(out, 3))
    check(wave[done], want, 1e-12)
    assert np.isnan(wave[~done & loaded.roi_flat]).all()


def simulated_hologram(shape=(96, 96), carrier=(24, 18)):
    """``|reference + object|^2`` for a unit reference wave tilted by ``carrier`` (frequency
    pixels) and an object of known amplitude and phase (smooth, inside the frame)."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    cy, cx = shape[0] / 2, shape[1] / 2
    bump = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 12.0**2))
    phase = 2.5 * bump + 0.6 * np.exp(-((y - cy + 20) ** 2 + (x - cx - 15) ** 2) / 80)
    amplitude = 0.7 + 0.2 * bump
    tilt = 2 * np.pi * (carrier[0] * y / shape[0] + carrier[1] * x / shape[1])
    obj = amplitude * np.exp(1j * phase)
    return np.abs(np.exp(1j * tilt) + obj) ** 2, amplitude, phase


@pytest.mark.parametrize("out_shape", [(96, 96), (48, 48)], ids=str)
def test_known_phase_and_amplitude(inline_ctx: Context, out_shape):
    """The object wave comes back within 1 %: the RMS phase error, away from the edges and
    after removing the mean, relative to the phase's range; the amplitude's relative RMS
    error likewise (``(96 * 96) / (out_rows * out_cols)`` times the object's, as LiberTEM
    scales it)."""
    holo, amplitude, phase = simulated_hologram()
    data = np.stack([holo, 0.5 * holo]).reshape(1, 2, 96, 96)  # and a weaker exposure
    ds = inline_ctx.load("memory", data=data.astype(np.float32))
    position = estimate_sideband_position(holo, sb="lower")
    assert position in ((24, 18), (96 - 24, 96 - 18))
    size = estimate_sideband_size(position, holo.shape, sb_size_ratio=1 / 3)
    udf = HoloReconstructUDF(out_shape=out_shape, sb_position=(24, 18), sb_size=size)
    wave = inline_ctx.run_udf(dataset=ds, udf=udf)["wave"].data[0]
    step = 96 // out_shape[0]
    inner = (slice(8 // step, -8 // step),) * 2
    want_phase = phase[::step, ::step][inner]
    want_amp = amplitude[::step, ::step][inner] * step**2
    for exposure, w in zip((1.0, 0.5), wave, strict=True):
        got = np.angle(w)[inner]
        err = (got - want_phase) - np.mean(got - want_phase)
        assert np.sqrt(np.mean(err**2)) < 0.01 * np.ptp(want_phase)
        amp = np.abs(w)[inner] / exposure
        assert np.sqrt(np.mean((amp - want_amp) ** 2)) < 0.01 * np.mean(want_amp)


def test_complex_results_merge_and_save(dask_ctx: Context, rng, tmp_path):
    """complex128 results from worker processes, merged, NaN outside the roi, saved."""
    data = rng.random((3, 5, 8, 8)).astype(np.float32)
    roi = np.ones((3, 5), bool)
    roi[1, 2] = False
    ds = dask_ctx.load("memory", data=data, num_partitions=3)
    udf = HoloReconstructUDF(out_shape=(8, 8), sb_position=(2, 2), sb_size=2)
    wave = dask_ctx.run_udf(dataset=ds, udf=udf, roi=roi)["wave"].data
    assert wave.dtype == np.complex128 and np.isnan(wave[1, 2]).all()
    assert np.abs(wave[roi].imag).max() > 0
    path = tmp_path / "wave.npz"
    with atomic_path(path) as tmp:
        np.savez(tmp, wave=wave)
    np.testing.assert_array_equal(np.load(path)["wave"], wave)


def test_helpers_as_libertem():
    assert get_slice_fft((5, 6), (13, 12)) == (slice(4, 9), slice(3, 9))
    ap = holo_aperture((16, 16), 4, 0.05)
    assert ap.shape == (16, 16) and ap[0, 0] == pytest.approx(1)
    assert ap[8, 8] == pytest.approx(0, abs=1e-12)
    assert estimate_sideband_size((24, 18), (96, 96), 0.5) == pytest.approx(15.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(out_shape=(4,), sb_position=(1, 1), sb_size=2), "out_shape"),
        (dict(out_shape=(4, 0), sb_position=(1, 1), sb_size=2), "positive"),
        (dict(out_shape=(4, 4), sb_position=(1, 1, 2), sb_size=2), "sb_position"),
        (dict(out_shape=(4, 4), sb_position=(1.5, 1), sb_size=2), "two integers"),
        (dict(out_shape=(4, 4), sb_position=(1, 1)), "sb_size"),
        (dict(out_shape=(4, 4), sb_position=(1, 1), sb_size=2, sb_smoothness=-1), "smooth"),
        (dict(out_shape=(4, 4), sb_position=(1, 1), aperture=np.ones((4, 5))), "aperture"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        HoloReconstructUDF(**kwargs)


def test_out_shape_larger_than_frame_refused_before_reading(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 6, 5), dtype=np.uint16))
    udf = HoloReconstructUDF(out_shape=(6, 6), sb_position=(1, 1), sb_size=2)
    with pytest.raises(InvalidParameterError, match=r"must not exceed the frame's shape \(6, 5\)"):
        inline_ctx.run_udf(dataset=ds, udf=udf)
