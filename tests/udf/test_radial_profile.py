"""RadialProfileUDF against a NumPy reference written from its definition: random data, odd
shapes, rois, sync offsets, several partitions, row slabs, every executor, sparse and dense
bins; known answers, defaults and parameter errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context, FEMProfileUDF, RadialProfileUDF
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.io.tiles import TilingScheme
from libertem_gpu.udf import radial_profile
from tests.udf.builtin_cases import CASES_2D_SIG, assert_nav, case_params, load_case


def profile_reference(
    frames, center, n_bins, rad_max, rad_min=0.0, n_sectors=1, offset=0.0, mode="mean", exclude=None
):
    """Each bin's pixels chosen by comparisons with its edges, then their mean or sum."""
    ny, nx = frames.shape[1:]
    y, x = np.mgrid[:ny, :nx]
    d = np.hypot(y - center[0], x - center[1])
    a = np.mod(np.arctan2(y - center[0], x - center[1]) - offset, 2 * np.pi)
    w, step = (rad_max - rad_min) / n_bins, 2 * np.pi / n_sectors
    f = frames.astype(np.result_type(frames.dtype, np.float64))
    out = np.empty((len(frames), n_bins, n_sectors), f.dtype)
    for b in range(n_bins):
        lo, hi = rad_min + b * w, rad_min + (b + 1) * w
        ring = (d > lo) & (d <= hi) | ((d == rad_min) if b == 0 else False)
        if exclude is not None:
            ring &= ~exclude
        for s in range(n_sectors):
            sel = ring & (a >= s * step) & ((a < (s + 1) * step) | (s == n_sectors - 1))
            v = f[:, sel]
            out[:, b, s] = v.sum(axis=1) if mode == "sum" else v.mean(axis=1)
    return out if n_sectors > 1 else out[..., 0]


# The second geometry puts pixel centres exactly on ring edges (distances 0, 2, 4, 5, 6, 8).
GEOMETRIES = [
    dict(center=(6.3, 7.9), n_bins=4, rad_max=7.5, rad_min=0.5),
    dict(center=(6, 8), n_bins=4, rad_max=8.0, rad_min=0.0),
]


# Every case with the first geometry; a third of them with the edges too.
PROFILE_CASES = [
    pytest.param(case, params, id=f"{case.id}-{name}")
    for (params, name, cases) in (
        (GEOMETRIES[0], "odd", CASES_2D_SIG),
        (GEOMETRIES[1], "edges", CASES_2D_SIG[::3]),
    )
    for case in cases
]


@pytest.mark.parametrize(("case", "params"), PROFILE_CASES)
def test_profile_matches_numpy(ctx, rng, tmp_path, case, params):
    loaded = load_case(ctx, case, rng, tmp_path)
    res = loaded.run(ctx, RadialProfileUDF(**params))
    assert res["intensity"].data.dtype == np.float64
    assert_nav(res["intensity"], profile_reference(loaded.selected, **params), loaded, rtol=1e-10)
    lo, hi = params["rad_min"], params["rad_max"]
    np.testing.assert_allclose(res["radius"].data, lo + (np.arange(4) + 0.5) * (hi - lo) / 4)


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG[1::2]))
@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_polar_bins_match_numpy(ctx, rng, tmp_path, monkeypatch, case, sparse):
    monkeypatch.setattr(radial_profile, "PROFILE_MASKS_SPARSE", sparse)
    loaded = load_case(ctx, case, rng, tmp_path)
    params = dict(center=(5.5, 9.0), n_bins=3, rad_max=8.0, n_sectors=5, offset=0.4)
    udf = RadialProfileUDF(
        center=params["center"], n_bins=3, rad_max=8.0, n_sectors=5, angle_offset=0.4, mode="sum"
    )
    res = loaded.run(ctx, udf)
    expected = profile_reference(loaded.selected, **params, mode="sum")
    assert_nav(res["intensity"], expected, loaded, rtol=1e-10)
    np.testing.assert_allclose(res["angle"].data, 0.4 + (np.arange(5) + 0.5) * 2 * np.pi / 5)


def test_equals_fem_profile_annular_means(inline_ctx: Context, rng):
    data = rng.integers(0, 4000, (3, 4, 21, 19)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    params = dict(center=(9.5, 8.0), n_bins=5, rad_max=9.0, rad_min=1.0)
    ours = inline_ctx.run_udf(ds, RadialProfileUDF(**params))["intensity"].data
    fem = inline_ctx.run_udf(ds, FEMProfileUDF(**params))["annular_mean"].data
    np.testing.assert_allclose(ours, fem, rtol=1e-12)


def test_known_answer_and_defaults(inline_ctx: Context):
    """A frame that holds its ring index plus its sector times 100: the means give them back,
    whatever row slabs the frames come in; by default every pixel counts once."""
    ny, nx = 31, 28
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    y, x = np.mgrid[:ny, :nx]
    d = np.hypot(y - cy, x - cx)
    ring = np.maximum(np.ceil(d / 2.0) - 1, 0)  # width 2 around the default centre
    sector = np.floor(np.mod(np.arctan2(y - cy, x - cx), 2 * np.pi) / (np.pi / 2))
    frame = (ring + 100 * np.minimum(sector, 3)).astype(np.float32)
    data = np.stack([frame, 2 * frame])[None]
    ds = inline_ctx.load("memory", data=data)
    rad_max = 2.0 * np.ceil(d.max() / 2.0)
    udf = RadialProfileUDF(n_bins=int(rad_max / 2), rad_max=rad_max, n_sectors=4)
    res = inline_ctx.run_udf(ds, udf, tiling=TilingScheme(depth=1, sig_rows=7))
    got = res["intensity"].data[0]
    want = np.arange(got.shape[1])[:, None] + 100 * np.arange(4)[None, :]
    pixels = res["pixels"].data
    np.testing.assert_allclose(got[0][pixels > 0], want[pixels > 0], atol=1e-12)
    np.testing.assert_allclose(got[1][pixels > 0], 2 * want[pixels > 0], atol=1e-12)
    assert np.isnan(got[0][pixels == 0]).all()
    whole = inline_ctx.run_udf(ds, RadialProfileUDF(mode="sum"))
    assert whole["pixels"].data.sum() == ny * nx
    assert whole["intensity"].data.shape == (1, 2, whole["pixels"].data.shape[0])
    np.testing.assert_allclose(whole["intensity"].data.sum(axis=-1), data.sum(axis=(-1, -2)))


def test_empty_bins_are_nan_means_and_zero_sums(inline_ctx: Context, rng):
    """Sixteen sectors of rings one pixel wide: the innermost bins hold no pixel centre."""
    data = rng.integers(1, 100, (2, 3, 15, 15)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data)
    means = inline_ctx.run_udf(ds, RadialProfileUDF(n_sectors=16))
    sums = inline_ctx.run_udf(ds, RadialProfileUDF(n_sectors=16, mode="sum"))
    empty = means["pixels"].data == 0
    assert empty[0].sum() > 8 and not empty.all()
    assert np.isnan(means["intensity"].data[..., empty]).all()
    assert not np.isnan(means["intensity"].data[..., ~empty]).any()
    assert (sums["intensity"].data[..., empty] == 0).all()
    np.testing.assert_allclose(sums["intensity"].data.sum(axis=(-1, -2)), data.sum(axis=(-1, -2)))


@pytest.mark.parametrize("mode", ["mean", "sum"])
def test_excluded_pixels_count_in_no_bin(ctx, rng, tmp_path, mode):
    """A beam stop's shadow and a fifth of the pixels at random left out, on a case with a
    roi, row slabs and several partitions."""
    loaded = load_case(ctx, CASES_2D_SIG[1], rng, tmp_path)
    sig = loaded.case.sig
    exclude = rng.random(sig) < 0.2
    exclude[sig[0] // 2 :, sig[1] // 2 - 1 : sig[1] // 2 + 1] = True  # the beam stop's arm
    params = dict(center=(6.2, 8.1), n_bins=3, rad_max=7.0, n_sectors=2)
    udf = RadialProfileUDF(**params, exclude=exclude, mode=mode)
    res = loaded.run(ctx, udf)
    want = profile_reference(
        loaded.selected, **{**params, "offset": 0.0}, mode=mode, exclude=exclude
    )
    assert_nav(res["intensity"], want, loaded, rtol=1e-10)
    full = loaded.run(ctx, RadialProfileUDF(**params))
    assert (res["pixels"].data < full["pixels"].data).any()
    assert (res["pixels"].data <= full["pixels"].data).all()


def test_complex_frames(inline_ctx: Context, rng):
    data = rng.standard_normal((2, 3, 12, 13)) + 1j * rng.standard_normal((2, 3, 12, 13))
    ds = inline_ctx.load("memory", data=data.astype(np.complex64))
    res = inline_ctx.run_udf(ds, RadialProfileUDF(center=(5, 6), n_bins=3, rad_max=6))
    want = profile_reference(data.reshape(-1, 12, 13).astype(np.complex64), (5, 6), 3, 6.0)
    assert res["intensity"].data.dtype == np.complex128
    np.testing.assert_allclose(res["intensity"].data.reshape(6, 3), want, rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RadialProfileUDF(mode="median"), "mode"),
        (lambda: RadialProfileUDF(n_bins=0), "n_bins"),
        (lambda: RadialProfileUDF(n_sectors=2.5), "n_sectors"),
    ],
)
def test_bad_parameters_fail_at_once(make, match):
    with pytest.raises(InvalidParameterError, match=match):
        make()


@pytest.mark.parametrize(
    ("udf", "match"),
    [
        (RadialProfileUDF(rad_min=4, rad_max=3), "rad_min < rad_max"),
        (RadialProfileUDF(center=(8,)), "two numbers"),
        (RadialProfileUDF(center=(8, np.inf)), "finite"),
        (RadialProfileUDF(center=(100, 100), rad_max=5), "no pixel"),
        (RadialProfileUDF(angle_offset="north"), "angle_offset"),
        (RadialProfileUDF(exclude=np.zeros((16, 11), bool)), "exclude must be"),
        (RadialProfileUDF(exclude=np.zeros((16, 12), np.uint8)), "exclude must be"),
        (RadialProfileUDF(exclude=np.ones((16, 12), bool)), "exclude leaves in"),
    ],
)
def test_bad_geometry_fails_before_reading(inline_ctx: Context, udf, match):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 16, 12), np.float32))
    with pytest.raises(InvalidParameterError, match=match):
        inline_ctx.run_udf(ds, udf)


def test_needs_two_signal_dimensions(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((4, 5, 16), np.float32), sig_dims=1)
    with pytest.raises(InvalidParameterError, match="two signal dimensions"):
        inline_ctx.run_udf(ds, RadialProfileUDF())
