"""Elliptical distortion: the corrected coordinates against a matrix reference, fit_ellipse on
simulated rings (clean, noisy, sloped background, excluded pixels), and RadialProfileUDF,
FEMUDF and FEMProfileUDF binning by the corrected radius, against NumPy references on every
2-D case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from libertem_gpu import FEMUDF, Context, EllipseFit, FEMProfileUDF, RadialProfileUDF, fit_ellipse
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.ellipse import elliptic_polar
from tests.udf.builtin_cases import CASES_2D_SIG, assert_nav, case_params, load_case


def undistort(ratio, angle):
    """The linear map that turns the distortion's ellipses into circles of equal area:
    shrink by sqrt(ratio) along the major axis, stretch by it across."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])  # (x, y) columns: major axis, minor axis
    return rot @ np.diag([ratio**-0.5, ratio**0.5]) @ rot.T


def reference_polar(dy, dx, ratio, angle):
    """Corrected radius and angle: the map applied to (x, y), then hypot and atan2."""
    xy = undistort(ratio, angle) @ np.stack([np.ravel(dx), np.ravel(dy)])
    return np.hypot(xy[0], xy[1]).reshape(np.shape(dy)), np.arctan2(xy[1], xy[0]).reshape(
        np.shape(dy)
    )


def ring_image(shape, center, radius, ratio, angle, width=1.5, peak=1.0):
    y, x = np.mgrid[: shape[0], : shape[1]]
    r, _ = reference_polar(y - center[0], x - center[1], ratio, angle)
    return peak * np.exp(-((r - radius) ** 2) / (2 * width**2))


@pytest.mark.parametrize(("ratio", "angle"), [(1.0, 0.0), (1.2, 0.0), (1.07, 2.2), (0.8, -0.9)])
def test_elliptic_polar_matches_the_matrix(rng, ratio, angle):
    dy, dx = rng.normal(0, 20, (2, 50))
    r, a = elliptic_polar(dy, dx, (ratio, angle))
    r_ref, a_ref = reference_polar(dy, dx, ratio, angle)
    np.testing.assert_allclose(r, r_ref, rtol=1e-12)
    np.testing.assert_allclose(np.exp(1j * a), np.exp(1j * a_ref), atol=1e-12)


def test_semi_axes_map_to_the_equal_area_radius():
    a, b, angle = 12.0, 10.0, 0.6
    c, s = math.cos(angle), math.sin(angle)
    # Along the major axis at a and across it at b: both the circle of area pi a b.
    r, turn = elliptic_polar(np.array([a * s, b * c]), np.array([a * c, -b * s]), (a / b, angle))
    np.testing.assert_allclose(r, math.sqrt(a * b), rtol=1e-12)
    # The axes keep their directions.
    np.testing.assert_allclose(turn, [angle, angle + math.pi / 2], atol=1e-12)
    plain_r, plain_a = elliptic_polar(np.array([3.0]), np.array([4.0]), None)
    assert plain_r[0] == 5.0 and plain_a[0] == math.atan2(3, 4)


FITS = [
    # shape, center, radius, ratio, angle (of the truth), noise
    ((128, 128), (60.0, 66.0), 40.0, 1.05, 0.5, False),
    ((150, 131), (77.3, 61.8), 50.0, 1.1, 2.6, False),
    ((256, 240), (130.3, 118.6), 75.0, 1.08, 2.5, True),
    ((256, 256), (127.0, 129.5), 90.0, 1.02, 1.2, True),
]


@pytest.mark.parametrize(("shape", "center", "radius", "ratio", "angle", "noisy"), FITS)
def test_fit_ellipse_finds_the_ring(rng, shape, center, radius, ratio, angle, noisy):
    image = ring_image(shape, center, radius, ratio, angle)
    if noisy:  # counts on a background that slopes across the detector
        x = np.arange(shape[1])
        image = rng.poisson(300 * image + 30 + 0.1 * x).astype(np.float64)
    guess = (shape[0] / 2, shape[1] / 2)
    fit = fit_ellipse(image, rad_min=radius - 15, rad_max=radius + 15, center=guess)
    assert isinstance(fit, EllipseFit)
    np.testing.assert_allclose(fit.center, center, atol=0.03)
    assert abs(fit.radius - radius) < 0.02
    assert abs(fit.ratio - ratio) < 1e-3
    # The angle is known to about (points' scatter) / (difference of the semi-axes).
    turn = (fit.angle - angle + math.pi / 2) % math.pi - math.pi / 2
    assert abs(turn) < 0.02 / (ratio - 1)
    assert 0 <= fit.angle < math.pi and fit.ratio >= 1
    assert fit.residual < (0.2 if noisy else 0.1)
    a, b = fit.semi_axes
    assert a >= b and abs(a * b - fit.radius**2) < 1e-9 * a * b
    r, _ = reference_polar(fit.points[:, 0] - center[0], fit.points[:, 1] - center[1], ratio, angle)
    np.testing.assert_allclose(r, radius, atol=0.3)


def test_fit_ellipse_of_a_circle_and_around_excluded_pixels(rng):
    image = ring_image((120, 120), (58.0, 61.0), 35.0, 1.0, 0.0)
    fit = fit_ellipse(image, 20, 50)
    assert fit.ratio < 1.001 and abs(fit.radius - 35.0) < 0.03
    holed = ring_image((120, 120), (58.0, 61.0), 35.0, 1.06, 1.0)
    holed[:, 55:62] = np.nan  # a detector gap across the ring, and a beam stop's arm
    holed[58:, 58:64] = np.nan
    fit = fit_ellipse(holed, 20, 50, center=(60, 60))
    np.testing.assert_allclose(fit.center, (58.0, 61.0), atol=0.05)
    assert abs(fit.ratio - 1.06) < 2e-3 and abs(fit.angle - 1.0) < 0.05


def test_fit_ellipse_refuses_what_holds_no_ring(rng):
    y, x = np.mgrid[:64, :64]
    brightening = np.hypot(y - 32, x - 32)  # the peak runs into the annulus' edge everywhere
    with pytest.raises(InvalidParameterError, match="sectors show a ring between rad_min=5"):
        fit_ellipse(brightening, 5, 20)
    with pytest.raises(InvalidParameterError, match="sectors show a ring"):
        fit_ellipse(np.ones((64, 64)), 5, 20)
    with pytest.raises(InvalidParameterError, match="2-D real array"):
        fit_ellipse(np.ones((2, 64, 64)), 5, 20)
    with pytest.raises(InvalidParameterError, match="2-D real array"):
        fit_ellipse(np.ones((64, 64), np.complex64), 5, 20)
    with pytest.raises(InvalidParameterError, match="rad_min"):
        fit_ellipse(np.ones((64, 64)), 20, 5)
    with pytest.raises(InvalidParameterError, match="n_sectors must be an integer >= 6"):
        fit_ellipse(np.ones((64, 64)), 5, 20, n_sectors=4)
    with pytest.raises(InvalidParameterError, match="iterations"):
        fit_ellipse(np.ones((64, 64)), 5, 20, iterations=0)


def polar_reference(frames, center, n_bins, rad_max, n_sectors, ellipse, rad_min=0.0):
    """Means per (ring, sector) with pixels binned by the matrix reference's coordinates."""
    ny, nx = frames.shape[1:]
    y, x = np.mgrid[:ny, :nx]
    d, a = reference_polar(y - center[0], x - center[1], *ellipse)
    a = np.mod(a, 2 * np.pi)
    w, step = (rad_max - rad_min) / n_bins, 2 * np.pi / n_sectors
    f = frames.astype(np.float64)
    out = np.full((len(frames), n_bins, n_sectors), np.nan)
    for b in range(n_bins):
        ring = (d > rad_min + b * w) & (d <= rad_min + (b + 1) * w)
        for s in range(n_sectors):
            sel = ring & (a >= s * step) & (a < (s + 1) * step)
            if sel.any():
                out[:, b, s] = f[:, sel].mean(axis=1)
    return out


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG[::2]))
def test_radial_profile_undoes_the_ellipse(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    center, ellipse = (6.2, 7.7), (1.3, 0.8)
    udf = RadialProfileUDF(center=center, n_bins=3, rad_max=6.0, n_sectors=4, ellipse=ellipse)
    res = loaded.run(ctx, udf)
    expected = polar_reference(loaded.selected, center, 3, 6.0, 4, ellipse)
    assert_nav(res["intensity"], expected, loaded, rtol=1e-10)
    plain = loaded.run(ctx, RadialProfileUDF(center=center, n_bins=3, rad_max=6.0, n_sectors=4))
    assert not np.allclose(res["intensity"].raw_data, plain["intensity"].raw_data, equal_nan=True)


def test_radial_profile_takes_the_fit_and_sharpens_the_ring(inline_ctx: Context, rng):
    truth = dict(center=(30.3, 36.6), radius=20.0, ratio=1.1, angle=0.7, width=1.0)
    ring = ring_image((64, 70), **truth)
    frames = rng.poisson(100 * ring * rng.uniform(0.5, 1.5, (3, 5, 1, 1)) + 5)
    ds = inline_ctx.load("memory", data=frames.astype(np.uint16))
    fit = fit_ellipse(frames.sum(axis=(0, 1)), 10, 28, center=(32, 35))
    corrected = inline_ctx.run_udf(dataset=ds, udf=RadialProfileUDF(ellipse=fit, rad_max=30))
    plain = inline_ctx.run_udf(dataset=ds, udf=RadialProfileUDF(center=fit.center, rad_max=30))
    # The fit's centre is taken: the same bins as when it is given.
    given = RadialProfileUDF(center=fit.center, rad_max=30, ellipse=(fit.ratio, fit.angle))
    np.testing.assert_array_equal(
        inline_ctx.run_udf(dataset=ds, udf=given)["intensity"].data,
        corrected["intensity"].data,
    )
    sharp = np.nanmean(corrected["intensity"].data, axis=(0, 1))
    smeared = np.nanmean(plain["intensity"].data, axis=(0, 1))
    assert np.argmax(sharp) == 19  # the ring at radius 20 falls in (19, 20]
    assert sharp.max() > 1.1 * smeared.max()

    def half_width(p):  # bins above half the peak over the background of 5
        return int(np.sum(p - 5 > (p.max() - 5) / 2))

    assert half_width(sharp) < half_width(smeared)


def test_ratio_one_changes_nothing(inline_ctx: Context, rng):
    frames = rng.poisson(5, (3, 4, 15, 17))
    ds = inline_ctx.load("memory", data=frames)
    kw = dict(center=(7.2, 8.1), n_bins=5, rad_max=7.0, n_sectors=3)
    plain = inline_ctx.run_udf(dataset=ds, udf=RadialProfileUDF(**kw))["intensity"].data
    same = RadialProfileUDF(**kw, ellipse=(1.0, 0.4))
    np.testing.assert_array_equal(inline_ctx.run_udf(dataset=ds, udf=same)["intensity"].data, plain)


def test_radial_profile_with_shifts_moves_the_ellipse(inline_ctx: Context, rng):
    frames = rng.poisson(20, (2, 3, 19, 21)).astype(np.float32)
    shifts = rng.integers(-2, 3, (2, 3, 2))
    ds = inline_ctx.load("memory", data=frames)
    center, ellipse = (9.1, 10.3), (1.25, 2.0)
    udf = RadialProfileUDF(
        center=center, n_bins=4, rad_max=8.0, n_sectors=3, ellipse=ellipse, shifts=shifts
    )
    got = inline_ctx.run_udf(dataset=ds, udf=udf)["intensity"].data
    for i, j in np.ndindex(2, 3):
        moved = (center[0] + shifts[i, j, 0], center[1] + shifts[i, j, 1])
        expected = polar_reference(frames[i, j][None], moved, 4, 8.0, 3, ellipse)[0]
        np.testing.assert_allclose(got[i, j], expected, rtol=1e-6)


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG[1::3]))
def test_fem_rings_undo_the_ellipse(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    center, ellipse = (6.0, 7.5), (1.4, 2.1)
    ny, nx = case.sig
    y, x = np.mgrid[:ny, :nx]
    d, _ = reference_polar(y - center[0], x - center[1], *ellipse)
    f = loaded.selected.astype(np.float64)
    res = loaded.run(ctx, FEMUDF(center=center, rad_in=1.5, rad_out=5.0, ellipse=ellipse))
    ring = (d > 1.5) & (d <= 5.0)
    assert_nav(res["intensity"], f[:, ring].std(axis=1), loaded, rtol=1e-10)
    profile = loaded.run(
        ctx, FEMProfileUDF(center=center, n_bins=3, rad_max=6.0, rad_min=0.5, ellipse=ellipse)
    )
    w = (6.0 - 0.5) / 3
    rings = [(d > 0.5 + w * k) & (d <= 0.5 + w * (k + 1)) for k in range(3)]
    means = np.stack([f[:, ring].mean(axis=1) for ring in rings], axis=1)
    assert_nav(profile["annular_mean"], means, loaded, rtol=1e-10)


@pytest.mark.parametrize(
    "ellipse", [(0.0, 1.0), (-1.0, 0.0), (math.nan, 0.0), (1.1, math.inf), (1.1,), "round"]
)
def test_bad_ellipses_fail_at_once(ellipse):
    for make in (
        lambda: RadialProfileUDF(ellipse=ellipse),
        lambda: FEMUDF(center=(4, 4), rad_in=1, rad_out=3, ellipse=ellipse),
        lambda: FEMProfileUDF(center=(4, 4), n_bins=2, rad_max=3, ellipse=ellipse),
    ):
        with pytest.raises(InvalidParameterError, match="ellipse"):
            make()
