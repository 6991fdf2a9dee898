"""create_radial_fourier_analysis: LiberTEM 0.16's parameters, defaults, result names, shapes
and dtypes, numbers against the NumPy reference, rois, every executor."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context
from libertem_gpu.analysis import RadialFourierResultSet
from libertem_gpu.analysis.radial_fourier import dominant_orders
from libertem_gpu.errors import InvalidParameterError
from tests.udf.test_radial_fourier import reference

RNG = np.random.default_rng(31)
NAV, SIG = (4, 5), (13, 11)


def _keys(n_bins: int, orders: int) -> list[str]:
    """LiberTEM's order: per bin dominant and absolutes, then all phases, then all complex."""
    keys = []
    for b in range(n_bins):
        keys += [f"dominant_{b}"] + [f"absolute_{b}_{n}" for n in range(orders)]
    keys += [f"phase_{b}_{n}" for b in range(n_bins) for n in range(orders)]
    keys += [f"complex_{b}_{n}" for b in range(n_bins) for n in range(orders)]
    return keys


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
@pytest.mark.parametrize("use_roi", [False, True])
def test_results_every_executor(ctx: Context, dtype, use_roi: bool):
    data = (RNG.random(NAV + SIG) * 500).astype(dtype)
    roi = RNG.random(NAV) > 0.4 if use_roi else None
    ds = ctx.load("memory", data=data, num_partitions=3)
    params = dict(cx=5.3, cy=6.1, ri=1, ro=5, n_bins=2, max_order=3)
    res = ctx.run(ctx.create_radial_fourier_analysis(dataset=ds, **params), roi=roi)
    assert isinstance(res, RadialFourierResultSet)
    assert res.keys() == _keys(2, 4)

    expected = np.moveaxis(reference(data, **params), (-2, -1), (0, 1))  # (bins, orders, *nav)
    raw = res.raw_results
    assert raw.shape == (2, 4, *NAV) and raw.dtype == np.complex64
    valid = np.ones(NAV, bool) if roi is None else roi
    assert np.isnan(raw[..., ~valid]).all()
    scale = np.abs(expected).max()
    np.testing.assert_allclose(raw[..., valid], expected[..., valid], atol=2e-6 * scale)

    for b in range(2):
        normal = np.maximum(1, np.abs(raw[b, 0]))
        assert res[f"dominant_{b}"].raw_data.dtype == np.int64
        for n in range(4):
            absolute = res[f"absolute_{b}_{n}"].raw_data
            assert absolute.dtype == np.float32 and absolute.shape == NAV
            np.testing.assert_array_equal(absolute, np.abs(raw[b, n]))
            np.testing.assert_array_equal(res[f"phase_{b}_{n}"].raw_data, np.angle(raw[b, n]))
            value = res[f"complex_{b}_{n}"].raw_data
            assert value.dtype == np.complex64
            with np.errstate(invalid="ignore"):
                np.testing.assert_allclose(value, raw[b, n] / (normal if n else 1), rtol=1e-6)
    for r in res:
        image = r.visualized
        assert image.shape == (*NAV, 3) and image.dtype == np.uint8


def test_defaults_as_libertem(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 13, 11), np.float32))
    p = inline_ctx.create_radial_fourier_analysis(dataset=ds).parameters
    assert p["cx"] == 5.5 and p["cy"] == 6.5 and p["ri"] == 0 and p["ro"] == 10
    assert p["n_bins"] == 1 and p["max_order"] == 24 and p["mask_count"] == 25
    assert p["use_sparse"] is False and p["mask_dtype"] == np.complex64
    big = inline_ctx.load("memory", data=np.ones((1, 1, 64, 64), np.uint16))
    assert (
        inline_ctx.create_radial_fourier_analysis(dataset=big, n_bins=3, max_order=8).parameters[
            "use_sparse"
        ]
        is False
    )  # bins cover much of the frame
    thin = inline_ctx.create_radial_fourier_analysis(dataset=big, n_bins=12, max_order=8)
    assert thin.parameters["use_sparse"] == "scipy.sparse" and thin.parameters["ro"] == 47
    res = inline_ctx.run(thin)
    assert res.raw_results.shape == (12, 9, 1, 1)


def test_dominant_order_of_cosine_rings(inline_ctx: Context):
    """Positions carrying cos(k*phi) rings report k; a flat frame reports 0 (below 0.2 of
    the strongest)."""
    ny = nx = 33
    y, x = np.mgrid[:ny, :nx]
    r, phi = np.hypot(y - 16.0, x - 16.0), np.arctan2(y - 16.0, x - 16.0)
    ring = (r > 6) & (r < 14)
    frames = [np.where(ring, 2 + np.cos(k * phi), 0.0) for k in (2, 5, 3)] + [ring * 2.0]
    data = np.stack(frames).astype(np.float32).reshape(2, 2, ny, nx)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run(
        inline_ctx.create_radial_fourier_analysis(
            dataset=ds, cx=16, cy=16, ri=7, ro=13, max_order=6
        )
    )
    assert res.dominant_0.raw_data.tolist() == [[2, 5], [3, 0]]


def test_dominant_orders_ignore_positions_without_values():
    absolute = np.zeros((1, 3, 2, 2))
    absolute[0, 2] = [[10, 1], [np.nan, 30]]
    absolute[0, 1, 0, 1] = 5
    valid = np.array([[True, True], [False, True]])
    # threshold 0.2 * 30 = 6: (0, 1) holds 5 and 1, below it
    assert dominant_orders(absolute, valid).tolist() == [[[2, 0], [0, 2]]]


def test_needs_two_signal_dimensions(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((4, 5, 16), np.float32), sig_dims=1)
    with pytest.raises(InvalidParameterError, match="two signal dimensions"):
        inline_ctx.create_radial_fourier_analysis(dataset=ds)


def test_through_compat(inline_ctx: Context):
    from libertem_gpu.compat.api import Context as CompatContext
    from libertem_gpu.compat.io.dataset.memory import MemoryDataSet

    data = RNG.integers(0, 1000, (3, 4, 12, 10)).astype(np.uint16)
    ctx = CompatContext.make_with("inline")
    try:
        ds = MemoryDataSet(data=data, num_partitions=2)
        res = ctx.run(
            ctx.create_radial_fourier_analysis(
                dataset=ds, cx=5, cy=6, ri=0, ro=5, n_bins=2, max_order=4
            )
        )
    finally:
        ctx.close()
    expected = reference(data, cx=5, cy=6, ri=0, ro=5, n_bins=2, max_order=4)
    np.testing.assert_allclose(
        res.complex_1_0.raw_data, expected[..., 1, 0], rtol=0, atol=1e-6 * np.abs(expected).max()
    )
