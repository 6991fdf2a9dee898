"""SSBUDF against a NumPy reference that transforms the whole scan at once (positions without
data filled with the mean frame), with the trotters written out again from their definition;
on random data, the shared built-in cases (2-D scans of 2-D frames: rois, sync offsets, row
slabs, several partitions, big-endian files) and every executor. Then the physics on simulated
scans of a weak phase object: the phase comes back, with defocus, a flipped or turned detector,
and noise; errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from libertem_gpu import SSBUDF, Context, electron_wavelength
from libertem_gpu.demo.phase_object import random_phase, scan_phase_object
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.udf import ssb as ssb_module
from tests.udf.builtin_cases import CASES, case_params, load_case

SSB_CASES = [c for c in CASES if len(c.nav) == 2 and len(c.sig) == 2]

# A disk near the middle of 13 x 17 (and 9 x 11) frames; d = f * 12 px at f cycles per step.
OPTICS = [
    {"wavelength": 1.0, "scan_step": 1.0, "semiconv": 4.3 / 12, "semiconv_pix": 4.3},
    {
        "wavelength": 0.5,
        "scan_step": (0.5, 0.7),
        "semiconv": 3.1 / 10,
        "semiconv_pix": 3.1,
        "scan_rotation": 33.0,
        "flip_y": True,
        "defocus": 2.0,
        "cs": 5.0,
    },
]


def reference_phase(frames, processed, nav, center, optics, cutoff=0.5):
    """The SSB phase from the whole scan's Fourier transform, per frequency in a loop."""
    lam = optics["wavelength"]
    sy, sx = np.broadcast_to(np.asarray(optics["scan_step"], float), (2,))
    per_pix = optics["semiconv"] / optics["semiconv_pix"]
    radius = optics["semiconv_pix"]
    a = math.radians(optics.get("scan_rotation", 0.0))
    to_scan = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    if optics.get("flip_y", False):
        to_scan = to_scan @ np.diag([-1.0, 1.0])
    to_detector = np.linalg.inv(to_scan)
    defocus, cs = optics.get("defocus", 0.0), optics.get("cs", 0.0)

    def aperture(k):  # A at detector offsets k (..., 2): 0 outside the disk
        theta2 = (k**2).sum(axis=-1) * per_pix**2
        chi = 2 * np.pi / lam * (defocus * theta2 / 2 + cs * theta2**2 / 4)
        return np.where((k**2).sum(axis=-1) <= radius**2, np.exp(-1j * chi), 0)

    sig = frames.shape[1:]
    yy, xx = np.mgrid[: sig[0], : sig[1]]
    k_all = np.stack([yy - center[0], xx - center[1]], axis=-1).reshape(-1, 2).astype(float)
    in_disk = (k_all**2).sum(axis=-1) <= radius**2
    k = k_all[in_disk]
    filled = np.array(frames, dtype=np.float64).reshape(len(frames), -1)
    mean = filled[processed].mean(axis=0)
    filled[~processed] = mean
    spectrum = np.fft.fft2(filled.reshape(*nav, -1), axes=(0, 1))[..., in_disk]
    intensity = mean[in_disk].mean()
    half = np.zeros((nav[0], nav[1] // 2 + 1), dtype=complex)
    for iy, fy in enumerate(np.fft.fftfreq(nav[0])):
        for ix, fx in enumerate(np.fft.rfftfreq(nav[1])):
            d = to_detector @ (np.array([fy / sy, fx / sx]) * lam / per_pix)
            if not 0 < np.hypot(*d) < 2 * radius + 1:
                continue
            b = np.conj(aperture(k)) * aperture(k - d) - aperture(k) * np.conj(aperture(k + d))
            norm = (np.abs(b) ** 2).sum()
            if norm >= cutoff:
                half[iy, ix] = (np.conj(b) * spectrum[iy, ix]).sum() / (1j * intensity * norm)
    return np.fft.irfft2(half, s=nav)


@pytest.mark.parametrize("case", case_params(SSB_CASES))
@pytest.mark.parametrize("which", [0, 1])
def test_ssb_matches_numpy(ctx, rng, tmp_path, case, which):
    loaded = load_case(ctx, case, rng, tmp_path)
    optics = OPTICS[which]
    center = ((case.sig[0] - 1) / 2 + 0.3, (case.sig[1] - 1) / 2 - 0.4)
    double = which == 1
    res = loaded.run(ctx, SSBUDF(**optics, center=center, double=double))
    want = reference_phase(loaded.frames, loaded.processed, case.nav, center, optics)
    scale = np.abs(want).max()
    assert scale > 0
    np.testing.assert_allclose(res["phase"].data, want, atol=(1e-10 if double else 2e-4) * scale)
    np.testing.assert_allclose(
        res["fourier"].data, np.fft.fft2(want), atol=(1e-9 if double else 2e-3) * scale
    )
    # measured frequencies: where the spectrum may be non-zero, mirrored
    assert (res["fourier"].data[~res["frequencies"].data] == 0).all()
    assert res["frequencies"].data.any()


def moved_back(frames, shifts):
    """Each frame moved by minus its shift (``out[p] = frame[p + shift]``), 0 off the frame."""
    out = np.zeros_like(frames)
    rows, cols = frames.shape[1:]
    for i, (dy, dx) in enumerate(shifts):
        ys, yd = slice(max(dy, 0), rows + min(dy, 0)), slice(max(-dy, 0), rows - max(dy, 0))
        xs, xd = slice(max(dx, 0), cols + min(dx, 0)), slice(max(-dx, 0), cols - max(dx, 0))
        out[i, yd, xd] = frames[i, ys, xs]
    return out


@pytest.mark.parametrize("case", case_params(SSB_CASES[:2]))
def test_shifts_read_each_frame_around_its_disk(ctx, rng, tmp_path, case):
    """With per-position shifts the phase is the reference's of the frames moved back."""
    loaded = load_case(ctx, case, rng, tmp_path)
    shifts = rng.integers(-3, 4, (*case.nav, 2))
    center = ((case.sig[0] - 1) / 2 + 0.3, (case.sig[1] - 1) / 2 - 0.4)
    res = loaded.run(ctx, SSBUDF(**OPTICS[0], center=center, double=True, shifts=shifts))
    frames = moved_back(loaded.frames, shifts.reshape(-1, 2))
    want = reference_phase(frames, loaded.processed, case.nav, center, OPTICS[0])
    np.testing.assert_allclose(res["phase"].data, want, atol=1e-10 * np.abs(want).max())


def test_a_constant_shift_is_a_moved_centre(rng):
    ctx = Context("inline")
    ds = ctx.load("memory", data=rng.random((5, 6, 17, 19)), num_partitions=2)
    moved = ctx.run_udf(dataset=ds, udf=SSBUDF(**OPTICS[0], center=(7, 8), shifts=(1, -2)))
    there = ctx.run_udf(dataset=ds, udf=SSBUDF(**OPTICS[0], center=(8, 6)))
    np.testing.assert_array_equal(moved["phase"].data, there["phase"].data)
    with pytest.raises(ShapeMismatchError, match="3 values per shift"):
        ctx.run_udf(dataset=ds, udf=SSBUDF(**OPTICS[0], center=(7, 8), shifts=(1, 2, 3)))


# --- physics ---------------------------------------------------------------------------------

STEP, FRAME, RADIUS = 2, 32, 8.0


@pytest.fixture(scope="module")
def weak_object():
    return random_phase((48, 56), cutoff=0.2, strength=0.05, seed=3)


def _score(frames, truth, **kwargs):
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames, num_partitions=3)
    got = ctx.run_udf(dataset=ds, udf=SSBUDF(**kwargs))["phase"].data
    truth = truth - truth.mean()
    return np.corrcoef(got.ravel(), truth.ravel())[0, 1], (got * truth).sum() / (truth**2).sum()


def test_recovers_a_weak_phase_object(weak_object):
    frames, optics = scan_phase_object(weak_object, STEP, FRAME, RADIUS)
    truth = weak_object[::STEP, ::STEP]
    corr, gain = _score(frames, truth, **optics)
    assert corr > 0.998 and 0.9 < gain < 1.05
    # the wrong half turn negates it; a quarter turn loses it
    corr, gain = _score(frames, truth, **optics, scan_rotation=180)
    assert corr < -0.998
    corr, _ = _score(frames, truth, **optics, scan_rotation=90)
    assert abs(corr) < 0.5
    # Poisson noise, 200 electrons per bright-field pixel
    noisy, optics = scan_phase_object(weak_object, STEP, FRAME, RADIUS, dose=200, seed=1)
    corr, gain = _score(noisy, truth, **optics)
    assert corr > 0.97 and 0.9 < gain < 1.1


def test_defocus_is_corrected(weak_object):
    frames, optics = scan_phase_object(weak_object, STEP, FRAME, RADIUS, defocus=30.0)
    truth = weak_object[::STEP, ::STEP]
    corr, gain = _score(frames, truth, **optics)
    assert corr > 0.995 and 0.9 < gain < 1.05
    corr, _ = _score(frames, truth, **{**optics, "defocus": 0.0})
    assert corr < 0.5


def test_detector_orientation_follows_com_conventions(weak_object):
    """A detector flipped in y takes flip_y; one turned by numpy.rot90, scan_rotation=90 (the
    transform CoMUDF applies to its shifts)."""
    frames, optics = scan_phase_object(weak_object, STEP, FRAME, RADIUS)
    truth = weak_object[::STEP, ::STEP]
    cy, cx = optics["center"]
    flipped = np.ascontiguousarray(frames[:, :, ::-1, :])
    moved = {**optics, "center": (FRAME - 1 - cy, cx)}
    assert _score(flipped, truth, **moved, flip_y=True)[0] > 0.998
    assert abs(_score(flipped, truth, **moved)[0]) < 0.5
    turned = np.ascontiguousarray(np.rot90(frames, axes=(2, 3)))
    moved = {**optics, "center": (FRAME - 1 - cx, cy)}
    assert _score(turned, truth, **moved, scan_rotation=90)[0] > 0.998
    assert _score(turned, truth, **moved, scan_rotation=-90)[0] < -0.998


def test_descan_is_followed(weak_object):
    """The disk walks 3 pixels down and 2 left across the scan: with its shifts the phase
    comes back as without the walk; ignoring them loses much of it."""
    frames, optics = scan_phase_object(weak_object, STEP, FRAME, RADIUS)
    truth = weak_object[::STEP, ::STEP]
    ny, nx = frames.shape[:2]
    y, x = np.mgrid[:ny, :nx]
    shifts = np.stack([np.rint(3 * y / (ny - 1)), np.rint(-2 * x / (nx - 1))], axis=-1)
    shifts = shifts.astype(int)
    walked = moved_back(frames.reshape(-1, FRAME, FRAME), -shifts.reshape(-1, 2))
    walked = walked.reshape(frames.shape)
    corr, gain = _score(walked, truth, **optics, shifts=shifts)
    assert corr > 0.998 and 0.9 < gain < 1.05
    assert _score(walked, truth, **optics)[0] < 0.9


def test_missing_positions_count_as_the_mean_frame(weak_object, rng):
    """A roi leaves positions out: the phase equals the reference's, which fills them with the
    mean frame, and stays close to the truth where few are missing."""
    frames, optics = scan_phase_object(weak_object, STEP, FRAME, RADIUS)
    nav = frames.shape[:2]
    roi = rng.random(nav) > 0.05
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames, num_partitions=2)
    got = ctx.run_udf(dataset=ds, udf=SSBUDF(**optics, double=True), roi=roi)["phase"].data
    flat = frames.reshape(-1, FRAME, FRAME)
    want = reference_phase(flat, roi.reshape(-1), nav, optics["center"], optics)
    np.testing.assert_allclose(got, want, atol=1e-10 * np.abs(want).max())
    truth = weak_object[::STEP, ::STEP]
    assert np.corrcoef(got[roi], truth[roi])[0, 1] > 0.9


# --- parameters and errors -------------------------------------------------------------------


def test_electron_wavelength():
    assert electron_wavelength(300e3) == pytest.approx(0.019687, rel=1e-4)
    assert electron_wavelength(200e3) == pytest.approx(0.025079, rel=1e-4)
    assert electron_wavelength(60e3) == pytest.approx(0.048661, rel=1e-4)
    with pytest.raises(InvalidParameterError, match="volts"):
        electron_wavelength(-1)


def test_bad_parameters_are_refused():
    good = {**OPTICS[0], "center": (6, 8)}
    for name, value, match in [
        ("wavelength", 0, "wavelength"),
        ("scan_step", (1, 2, 3), "scan_step"),
        ("scan_step", "a", "scan_step"),
        ("semiconv", -0.1, "semiconv"),
        ("semiconv_pix", float("nan"), "semiconv_pix"),
        ("center", (1,), "center"),
        ("defocus", float("inf"), "defocus"),
        ("cutoff", 0, "cutoff"),
    ]:
        with pytest.raises(InvalidParameterError, match=match):
            SSBUDF(**{**good, name: value})


def test_shapes_and_geometry_errors(monkeypatch):
    ctx = Context("inline")
    data = np.random.default_rng(0).random((4, 5, 13, 17))
    ds = ctx.load("memory", data=data)
    good = {**OPTICS[0], "center": (6, 8)}
    with pytest.raises(InvalidParameterError, match="2-D scan of 2-D frames"):
        ctx.run_udf(dataset=ctx.load("memory", data=data.reshape(20, 13, 17)), udf=SSBUDF(**good))
    with pytest.raises(InvalidParameterError, match="no detector pixel"):
        ctx.run_udf(dataset=ds, udf=SSBUDF(**{**good, "center": (-20, 8)}))
    with pytest.raises(InvalidParameterError, match="no scan frequency"):
        ctx.run_udf(dataset=ds, udf=SSBUDF(**{**good, "semiconv": 1e6}))
    monkeypatch.setattr(ssb_module, "MAX_WEIGHT_BYTES", 1000)
    with pytest.raises(InvalidParameterError, match="GiB of weights"):
        ctx.run_udf(dataset=ds, udf=SSBUDF(**good))


def test_empty_roi_gives_zero_phase():
    ctx = Context("inline")
    ds = ctx.load("memory", data=np.random.default_rng(0).random((4, 5, 13, 17)))
    roi = np.zeros((4, 5), bool)
    res = ctx.run_udf(dataset=ds, udf=SSBUDF(**OPTICS[0], center=(6, 8)), roi=roi)
    assert (res["phase"].data == 0).all() and not res["frequencies"].data.any()
