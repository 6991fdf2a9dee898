"""CoM analysis against a NumPy reference of LiberTEM's definition."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context
from libertem_gpu.errors import InvalidParameterError

RNG = np.random.default_rng(5)


def _reference(data, cy, cx, r=np.inf, ri=0.0, scan_rotation=0.0, flip_y=False):
    """Shifts (y, x) of each frame's centre of mass from (cy, cx), within the disk/ring,
    flipped and rotated as LiberTEM does."""
    y, x = np.mgrid[: data.shape[-2], : data.shape[-1]]
    d2 = (y - cy) ** 2 + (x - cx) ** 2
    weights = (d2 <= r * r) & ~((d2 <= ri * ri) if ri else np.zeros_like(d2, bool))
    f = data.astype(np.float64) * weights
    total = f.sum(axis=(-1, -2))
    sy = (f * y).sum(axis=(-1, -2)) / total - cy
    sx = (f * x).sum(axis=(-1, -2)) / total - cx
    a = np.deg2rad(scan_rotation)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    flip = np.diag([-1.0, 1.0]) if flip_y else np.eye(2)
    m = rot @ flip
    return m[0, 0] * sy + m[0, 1] * sx, m[1, 0] * sy + m[1, 1] * sx


def test_com_every_executor(ctx: Context):
    data = RNG.integers(0, 500, (6, 5, 15, 17)).astype(np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run(ctx.create_com_analysis(dataset=ds))
    assert res.keys() == ["field", "magnitude", "divergence", "curl", "x", "y"]
    ey, ex = _reference(data, 15 / 2, 17 / 2)  # LiberTEM's default centre: size / 2
    np.testing.assert_allclose(res.y.raw_data, ey, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.x.raw_data, ex, rtol=1e-6, atol=1e-9)
    fx, _fy = res.field.raw_data  # LiberTEM's order: (x, y)
    np.testing.assert_allclose(fx, ex, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.magnitude.raw_data, np.hypot(ey, ex), rtol=1e-6, atol=1e-9)
    div = np.gradient(ey, axis=0) + np.gradient(ex, axis=1)
    curl = np.gradient(ey, axis=1) - np.gradient(ex, axis=0)
    np.testing.assert_allclose(res.divergence.raw_data, div, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.curl.raw_data, curl, rtol=1e-6, atol=1e-9)
    assert res.field.visualized.shape == (6, 5, 3) and not res.field.include_in_download
    assert res.x.visualized.dtype == np.uint8


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_annular_rotated_flipped(inline_ctx: Context, dtype):
    data = RNG.integers(1, 100, (4, 7, 16, 16)).astype(dtype)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    analysis = inline_ctx.create_com_analysis(
        dataset=ds,
        cx=7.5,
        cy=8.0,
        mask_radius=6,
        mask_radius_inner=2,
        scan_rotation=33.0,
        flip_y=True,
    )
    res = inline_ctx.run(analysis)
    ey, ex = _reference(data, 8.0, 7.5, r=6, ri=2, scan_rotation=33.0, flip_y=True)
    np.testing.assert_allclose(res.y.raw_data, ey, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.x.raw_data, ex, rtol=1e-6, atol=1e-9)


def test_roi_leaves_nan_outside(inline_ctx: Context):
    data = RNG.integers(1, 100, (5, 6, 9, 9)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data)
    roi = RNG.random((5, 6)) > 0.3
    res = inline_ctx.run(inline_ctx.create_com_analysis(dataset=ds, mask_radius=3), roi=roi)
    ey, _ = _reference(data, 4.5, 4.5, r=3)
    np.testing.assert_allclose(res.y.raw_data[roi], ey[roi], rtol=1e-6)
    assert np.isnan(res.y.raw_data[~roi]).all()


def test_thin_scan_has_no_derivatives(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=RNG.random((1, 5, 8, 8)))
    res = inline_ctx.run(inline_ctx.create_com_analysis(dataset=ds))
    assert res.keys() == ["field", "magnitude", "x", "y"]


def test_errors(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=RNG.random((6, 8, 8)))
    with pytest.raises(InvalidParameterError, match="navigation dimensions"):
        inline_ctx.create_com_analysis(dataset=ds)
    ds2 = inline_ctx.load("memory", data=RNG.random((2, 3, 8, 8)))
    with pytest.raises(InvalidParameterError, match="mask_radius"):
        inline_ctx.create_com_analysis(dataset=ds2, mask_radius_inner=2)
