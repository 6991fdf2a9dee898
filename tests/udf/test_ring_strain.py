"""RingStrainUDF: the ring's radius per profile and the harmonics' fit against known answers;
the UDF against the same steps applied to RadialProfileUDF's polar means on every other 2-D
case (those test_template_match leaves), with every executor;
strain, centre shifts and reference radii on simulated strained rings; parameter errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context, RadialProfileUDF, RingStrainUDF
from libertem_gpu.errors import InvalidParameterError, UnsupportedDTypeError
from libertem_gpu.udf.radial_profile import polar_bins
from libertem_gpu.udf.ring_strain import fit_harmonics, ring_radii
from tests.udf.builtin_cases import CASES_2D_SIG, case_params, load_case


def test_ring_radii_of_gaussian_peaks(rng):
    r = np.arange(30) + 0.5
    centres = rng.uniform(10, 20, 7)
    profiles = np.exp(-((r - centres[:, None]) ** 2) / 8) + 0.3 + 0.01 * r
    got = ring_radii(profiles, r)
    np.testing.assert_allclose(got, centres, atol=5e-3)
    # A bin without pixels is left out; a peak at the band's edge is no ring.
    holed = profiles.copy()
    holed[:, 3] = np.nan
    np.testing.assert_allclose(ring_radii(holed, r), centres, atol=5e-3)
    edge = np.exp(-((r - 0.5) ** 2) / 8)
    assert np.isnan(ring_radii(edge, r))
    assert np.isnan(ring_radii(np.full(30, 2.0), r))


def test_fit_harmonics_recovers_coefficients(rng):
    angles = (np.arange(24) + 0.5) * 2 * np.pi / 24
    coef = np.array([[40.0, 0.3, -0.2, 0.4, -0.1], [55.0, -1.0, 0.5, 0.0, 0.25]])
    t = angles
    radii = (
        coef[:, :1]
        + coef[:, 1:2] * np.cos(t)
        + coef[:, 2:3] * np.sin(t)
        + coef[:, 3:4] * np.cos(2 * t)
        + coef[:, 4:5] * np.sin(2 * t)
    )
    got, residual = fit_harmonics(radii, angles)
    np.testing.assert_allclose(got, coef, atol=1e-10)
    np.testing.assert_allclose(residual, 0, atol=1e-10)
    radii[0, ::2] = np.nan  # half the sectors missing: the others still determine the fit
    radii[1, 4:] = np.nan  # four sectors only: too few
    got, residual = fit_harmonics(radii, angles)
    np.testing.assert_allclose(got[0], coef[0], atol=1e-10)
    assert np.isnan(got[1]).all() and np.isnan(residual[1])


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG[1::2]))
def test_udf_is_its_steps_on_the_polar_means(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    sig = case.sig
    center = (sig[0] / 2 - 0.4, sig[1] / 2 + 0.3)
    kw = dict(center=center, rad_max=6.0, rad_min=1.0, n_sectors=6)
    res = loaded.run(ctx, RingStrainUDF(**kw))
    # The bins' mean pixel radii and the sectors' mean angles, from the labels.
    bins = polar_bins(sig, center, 5, 6.0, 1.0, 6)
    assert bins.pixels.shape == (5, 6)  # n_bins=None: rings about a pixel wide
    polar = loaded.run(ctx, RadialProfileUDF(**kw, n_bins=5))["intensity"].raw_data
    y, x = np.mgrid[: sig[0], : sig[1]]
    d = np.hypot(y - center[0], x - center[1]).ravel()
    a = np.arctan2(y - center[0], x - center[1]).ravel()
    inside = bins.labels >= 0
    lab = bins.labels[inside]
    mean_r = np.bincount(lab, d[inside], minlength=30) / np.maximum(bins.pixels.ravel(), 1)
    mean_r = np.where(bins.pixels.ravel() > 0, mean_r, np.repeat(bins.radius, 6))
    sector = lab % 6
    angle = np.arctan2(
        np.bincount(sector, np.sin(a[inside]), minlength=6),
        np.bincount(sector, np.cos(a[inside]), minlength=6),
    )
    in_roi = loaded.processed[loaded.roi_flat]
    profiles = polar[in_roi].transpose(0, 2, 1)  # (frames, sectors, rings), NaN where empty
    radii = ring_radii(profiles, mean_r.reshape(5, 6).T)
    coef, _ = fit_harmonics(radii, angle)
    got = res["coefficients"].raw_data[in_roi]
    np.testing.assert_allclose(got, coef, rtol=1e-9, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(res["radius"].raw_data[in_roi], coef[:, 0], equal_nan=True)


def strained_ring(shape, center, strain, shift=(0.0, 0.0), radius=30.0, width=1.6):
    """A ring of ``radius`` for the unstrained specimen, seen with real-space strain ``(e_xx,
    e_yy, e_xy)``: a detector point q lies on it where ``|(I + e) q| = radius``."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    qx = x - center[1] - shift[1]
    qy = y - center[0] - shift[0]
    e_xx, e_yy, e_xy = strain
    px, py = (1 + e_xx) * qx + e_xy * qy, e_xy * qx + (1 + e_yy) * qy
    ring = 80 * np.exp(-((np.hypot(px, py) - radius) ** 2) / (2 * width**2))
    return ring + 4 + 2000 * np.exp(-(qx**2 + qy**2) / 16)


def test_strain_and_shift_of_simulated_rings(inline_ctx: Context, rng):
    strain = rng.uniform(-0.01, 0.01, (3, 4, 3))
    shift = rng.uniform(-1.2, 1.2, (3, 4, 2))
    center = (40.3, 41.6)
    frames = np.stack(
        [strained_ring((82, 84), center, strain[i], shift[i]) for i in np.ndindex(3, 4)]
    )
    data = rng.poisson(frames).reshape(3, 4, 82, 84).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data)
    udf = RingStrainUDF(rad_min=20, rad_max=40, center=center, reference_radius=30)
    res = inline_ctx.run_udf(dataset=ds, udf=udf)
    assert np.abs(res["strain"].data - strain).max() < 1.5e-3
    assert np.abs(res["shift"].data - shift).max() < 0.06
    assert (res["residual"].data < 0.2).all()
    assert res["reference_radius"].data.tolist() == [30.0]
    # Without a reference radius: the median of the radii of the frames seen (here the scan
    # runs three frames past the data, and the roi leaves two positions out).
    ds = inline_ctx.load("memory", data=data, sync_offset=3)
    roi = np.ones((3, 4), bool)
    roi[0, 1] = roi[1, 2] = False
    udf = RingStrainUDF(rad_min=20, rad_max=40, center=center)
    res = inline_ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    ref = float(res["reference_radius"].data[0])
    seen = res["radius"].data[roi & res["radius"].valid_mask]
    assert len(seen) == 7 and ref == pytest.approx(float(np.median(seen)))
    assert np.isnan(res["strain"].raw_data[~res["radius"].valid_mask[roi]]).all()
    np.testing.assert_allclose(
        res["strain"].data[..., 0],
        1 - (res["coefficients"].data[..., 0] + res["coefficients"].data[..., 3]) / ref,
    )


def test_descan_and_the_optics_ellipse(inline_ctx: Context, rng):
    """Whole-pixel descan given as shifts, and an optics distortion given as an ellipse, leave
    the specimen's strain."""
    from tests.udf.test_ellipse import reference_polar

    center, optics = (40.0, 42.0), (1.05, 0.7)
    shifts = np.array([[0, 0], [3, -2], [-2, 3], [1, 4]])
    strain = np.array([[0.004, -0.002, 0.001], [0, 0, 0], [-0.005, 0.003, 0.0], [0.0, 0.0, -0.004]])
    y, x = np.mgrid[:84, :86]
    frames = []
    for (dy, dx), e in zip(shifts, strain, strict=True):
        # The optics stretch the strained pattern: sample it where their inverse puts a pixel.
        r, a = reference_polar(y - center[0] - dy, x - center[1] - dx, *optics)
        qx, qy = r * np.cos(a), r * np.sin(a)
        px, py = (1 + e[0]) * qx + e[2] * qy, e[2] * qx + (1 + e[1]) * qy
        frames.append(80 * np.exp(-((np.hypot(px, py) - 30) ** 2) / 5) + 4)
    ds = inline_ctx.load("memory", data=np.stack(frames).reshape(2, 2, 84, 86))
    udf = RingStrainUDF(
        rad_min=20,
        rad_max=40,
        center=center,
        reference_radius=30,
        ellipse=optics,
        shifts=shifts.reshape(2, 2, 2),
    )
    res = inline_ctx.run_udf(dataset=ds, udf=udf)
    assert np.abs(res["strain"].data.reshape(4, 3) - strain).max() < 1e-3
    assert np.abs(res["shift"].data).max() < 0.06
    blind = inline_ctx.run_udf(
        dataset=ds, udf=RingStrainUDF(rad_min=20, rad_max=40, center=center, reference_radius=30)
    )
    assert np.abs(blind["strain"].data.reshape(4, 3) - strain).max() > 0.01


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(rad_min=10, rad_max=5), "rad_min"),
        (dict(rad_min=5, rad_max=20, n_sectors=4), "n_sectors must be 6 or more"),
        (dict(rad_min=5, rad_max=20, n_bins=3), "n_bins must be 4 or more"),
        (dict(rad_min=5, rad_max=20, reference_radius=0), "reference_radius must be"),
        (dict(rad_min=5, rad_max=20, ellipse=(1.0,)), "ellipse"),
    ],
)
def test_bad_parameters_fail_at_once(kw, match):
    with pytest.raises(InvalidParameterError, match=match):
        RingStrainUDF(**kw)


def test_refuses_complex_data(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 16, 16), np.complex64))
    with pytest.raises(UnsupportedDTypeError, match="RingStrainUDF"):
        inline_ctx.run_udf(dataset=ds, udf=RingStrainUDF(rad_min=2, rad_max=7))


@pytest.mark.gpu
def test_gpu_measures_what_the_cpu_measures(rng):
    """On a real GPU (``-m gpu``): the same polar means, radii and fits."""
    from libertem_gpu.backends import device

    info = device.probe()
    if not info.available:
        pytest.skip(f"no usable GPU: {info.reason}")
    strain = rng.uniform(-0.01, 0.01, (2, 3, 3))
    frames = np.stack([strained_ring((70, 72), (34.5, 35.5), strain[i]) for i in np.ndindex(2, 3)])
    data = rng.poisson(frames).astype(np.uint16).reshape(2, 3, 70, 72)
    with Context("threads") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=2)
        udf = RingStrainUDF(rad_min=20, rad_max=40, shifts=rng.integers(-1, 2, (2, 3, 2)))
        cpu = ctx.run_udf(dataset=ds, udf=udf, backends="numpy")
        gpu = ctx.run_udf(dataset=ds, udf=udf, backends="cupy")
    for key in ("coefficients", "strain", "residual"):
        np.testing.assert_allclose(gpu[key].data, cpu[key].data, rtol=1e-6, atol=1e-9)
