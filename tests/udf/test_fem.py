"""FEMUDF and FEMProfileUDF against NumPy references written from their definitions: random
data, odd shapes, rois, sync offsets, several partitions, row slabs, every executor; known
answers and parameter errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import FEMUDF, Context, FEMProfileUDF
from libertem_gpu.errors import InvalidParameterError, UnsupportedDTypeError
from libertem_gpu.io.tiles import TilingScheme
from libertem_gpu.udf import fem
from tests.udf.builtin_cases import CASES_2D_SIG, assert_nav, case_params, load_case


def ring(shape, cy, cx, rad_in, rad_out):
    """LiberTEM's ring: integer pixel coordinates, ``rad_in < distance <= rad_out``."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    d2 = (y - cy) ** 2.0 + (x - cx) ** 2.0
    return (d2 <= rad_out**2) & ~(d2 <= rad_in**2)


def fem_reference(frames, center, rad_in, rad_out):
    mask = ring(frames.shape[1:], *center, rad_in, rad_out)
    return frames.astype(np.float64)[:, mask].std(axis=1)


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG))
def test_fem_matches_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    center, ri, ro = (6.0, 7.5), 1.5, 5.0
    res = loaded.run(ctx, FEMUDF(center=center, rad_in=ri, rad_out=ro))["intensity"]
    assert res.data.dtype == np.float64
    assert_nav(res, fem_reference(loaded.selected, center, ri, ro), loaded, rtol=1e-10)


def test_fem_large_mean(inline_ctx: Context, rng):
    """Moments about the mean, combined over row slabs: std 1 at mean 1e7 keeps its digits."""
    data = 1e7 + rng.standard_normal((4, 5, 15, 13))
    ds = inline_ctx.load("memory", data=data, num_partitions=3)
    udf = FEMUDF(center=(7, 6), rad_in=2, rad_out=6.5)
    res = inline_ctx.run_udf(ds, udf, tiling=TilingScheme(depth=3, sig_rows=4))
    want = fem_reference(data.reshape(-1, 15, 13), (7, 6), 2, 6.5).reshape(4, 5)
    np.testing.assert_allclose(res["intensity"].data, want, rtol=1e-8)


def test_fem_known_answer(inline_ctx: Context):
    """A ring of alternating 0 / 2 has standard deviation 1; a flat one 0."""
    frame = np.zeros((21, 21), np.float32)
    mask = ring(frame.shape, 10, 10, 4, 8)
    values = np.tile([0.0, 2.0], mask.sum() // 2 + 1)[: mask.sum()]
    if mask.sum() % 2:
        values[-1] = 1.0  # the odd one at the mean
    frame[mask] = values
    data = np.stack([frame, np.where(mask, 5.0, 0.0).astype(np.float32)])[None]
    res = inline_ctx.run_udf(inline_ctx.load("memory", data=data), FEMUDF((10, 10), 4, 8))
    expected = np.sqrt((values.size - values.size % 2) / values.size)
    np.testing.assert_allclose(res["intensity"].data[0], [expected, 0.0], atol=1e-12)


def profile_reference(frames, center, n_bins, rad_max, rad_min=0.0):
    """Annular means per frame and V(k) = <I^2> / <I>^2 - 1 over the frames."""
    ny, nx = frames.shape[1:]
    y, x = np.mgrid[:ny, :nx]
    d = np.hypot(y - center[0], x - center[1])
    w = (rad_max - rad_min) / n_bins
    means = []
    for b in range(n_bins):
        lo, hi = rad_min + b * w, rad_min + (b + 1) * w
        sel = (d > lo) & (d <= hi) | ((d == rad_min) if b == 0 else False)
        means.append(frames.astype(np.float64)[:, sel].mean(axis=1))
    i = np.stack(means, axis=1)
    return i, (i**2).mean(axis=0) / i.mean(axis=0) ** 2 - 1


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG[::2]))
def test_profile_matches_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    params = dict(center=(6, 8), n_bins=3, rad_max=6.0, rad_min=0.5)
    res = loaded.run(ctx, FEMProfileUDF(**params))
    means, v = profile_reference(loaded.selected, **params)
    assert_nav(res["annular_mean"], means, loaded, rtol=1e-10)
    np.testing.assert_allclose(res["mean"].data, means.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(res["normalized_variance"].data, v, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(res["variance"].data, means.var(axis=0), rtol=1e-8)
    np.testing.assert_allclose(res["radius"].data, 0.5 + (np.arange(3) + 0.5) * 11 / 6)


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG[1::3]))
def test_profile_follows_the_beam(ctx, rng, tmp_path, case):
    """``shifts``: each frame's rings around its moved centre, means over their pixels on the
    frame; a ring moved off the frame is NaN there and left out of the statistics."""
    loaded = load_case(ctx, case, rng, tmp_path)
    sig = case.sig
    shifts = rng.integers(-2, 3, (*case.nav, 2))
    shifts.reshape(-1, 2)[1] = (sig[0] + 20, 0)  # every ring off the frame
    shifts.reshape(-1, 2)[2] = (0, sig[1] - 5)  # the outer rings partly off
    params = dict(center=(6, 8), n_bins=3, rad_max=6.0, rad_min=0.5)
    res = loaded.run(ctx, FEMProfileUDF(**params, shifts=shifts))
    flat = shifts.reshape(-1, 2)[loaded.processed]
    means = np.empty((len(flat), 3))
    y, x = np.mgrid[: sig[0], : sig[1]]
    w = 5.5 / 3
    for i, (dy, dx) in enumerate(flat):
        d = np.hypot(y - 6 - dy, x - 8 - dx)
        for b in range(3):
            sel = (d > 0.5 + b * w) & (d <= 0.5 + (b + 1) * w)
            frame = loaded.selected[i]
            means[i, b] = frame[sel].mean() if sel.any() else np.nan
    assert_nav(res["annular_mean"], means, loaded, rtol=1e-10)
    np.testing.assert_allclose(res["mean"].data, np.nanmean(means, axis=0), rtol=1e-10)
    np.testing.assert_allclose(res["variance"].data, np.nanvar(means, axis=0), rtol=1e-8)
    if loaded.processed[1]:
        assert np.isnan(res["annular_mean"].data.reshape(-1, 3)[1]).all()


def test_profile_without_shifts_equals_zero_shifts(inline_ctx: Context, rng):
    data = rng.poisson(7, (3, 4, 15, 16))
    ds = inline_ctx.load("memory", data=data)
    params = dict(center=(7, 8), n_bins=4, rad_max=7.0)
    plain = inline_ctx.run_udf(dataset=ds, udf=FEMProfileUDF(**params))
    zero = FEMProfileUDF(**params, shifts=np.zeros((3, 4, 2), int))
    moved = inline_ctx.run_udf(dataset=ds, udf=zero)
    for key in ("annular_mean", "normalized_variance", "variance"):
        np.testing.assert_allclose(moved[key].data, plain[key].data, rtol=1e-12)


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_profile_known_answer(inline_ctx: Context, rng, monkeypatch, sparse):
    """Frames scaled by factors with V = 0.25 in every ring: intensity a * s, a ~ {0.5, 1.5};
    with the rings as a sparse stack (as laid out) and as a dense one."""
    monkeypatch.setattr(fem, "PROFILE_MASKS_SPARSE", sparse)
    ny = nx = 24
    base = rng.integers(10, 1000, (ny, nx))
    scale = np.array([0.5, 1.5] * 6)
    data = (scale[:, None, None] * base * 2).astype(np.uint16).reshape(3, 4, ny, nx)
    udf = FEMProfileUDF(center=(12, 12), n_bins=4, rad_max=10)
    res = inline_ctx.run_udf(inline_ctx.load("memory", data=data, num_partitions=3), udf)
    np.testing.assert_allclose(res["normalized_variance"].data, 0.25, rtol=1e-12)


@pytest.mark.parametrize(
    ("udf", "match"),
    [
        (lambda: FEMUDF((8, 8), 5, 3), "rad_in < rad_out"),
        (lambda: FEMUDF((8, 8), -1, 3), "rad_in < rad_out"),
        (lambda: FEMUDF((30, 8), 1, 3), "outside"),
        (lambda: FEMUDF((8,), 1, 3), "two numbers"),
        (lambda: FEMUDF((8.5, 8.5), 0.1, 0.6), "holds no pixel"),
        (lambda: FEMProfileUDF((8, 8), 0, 5), "n_bins"),
        (lambda: FEMProfileUDF((8, 8), 40, 5), "hold no pixel"),
        (lambda: FEMProfileUDF((8, -1), 4, 5), "outside"),
        (lambda: FEMProfileUDF((8, 8), 4, 5, rad_min=6), "rad_min < rad_max"),
    ],
)
def test_bad_parameters_fail_before_reading(inline_ctx: Context, udf, match):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 16, 12), np.float32))
    with pytest.raises(InvalidParameterError, match=match):
        inline_ctx.run_udf(ds, udf())


def test_needs_two_signal_dimensions(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((4, 5, 16), np.float32), sig_dims=1)
    for udf in (FEMUDF((1, 1), 0, 3), FEMProfileUDF((1, 1), 2, 3)):
        with pytest.raises(InvalidParameterError, match="two signal dimensions"):
            inline_ctx.run_udf(ds, udf)


def test_profile_refuses_complex_data(inline_ctx: Context):
    data = np.ones((2, 3, 16, 16), np.complex64)
    ds = inline_ctx.load("memory", data=data)
    with pytest.raises(UnsupportedDTypeError, match="FEMProfileUDF is not defined for complex"):
        inline_ctx.run_udf(ds, FEMProfileUDF(center=(8, 8), n_bins=3, rad_max=7))
