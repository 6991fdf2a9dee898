"""Disk, ring, point and mask analyses against NumPy: random data, rois, odd shapes,
several partitions, every executor."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context
from libertem_gpu.errors import InvalidParameterError

RNG = np.random.default_rng(17)
NAV, SIG = (5, 7), (13, 11)


def _data(dtype=np.uint16) -> np.ndarray:
    return RNG.integers(0, 1000, NAV + SIG).astype(dtype)


def _distance2(cy: float, cx: float) -> np.ndarray:
    y, x = np.mgrid[: SIG[0], : SIG[1]]
    return (y - cy) ** 2 + (x - cx) ** 2


def _apply(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.einsum("...ij,ij->...", data.astype(np.float64), mask.astype(np.float64))


def _nan_outside(expected: np.ndarray, roi) -> np.ndarray:
    if roi is None:
        return expected
    return np.where(roi, expected, np.nan)


@pytest.mark.parametrize("use_roi", [False, True])
def test_disk_every_executor(ctx: Context, use_roi: bool):
    data = _data()
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = RNG.random(NAV) > 0.4 if use_roi else None
    res = ctx.run(ctx.create_disk_analysis(dataset=ds, cx=4.5, cy=6, r=3.2), roi=roi)
    expected = _apply(data, _distance2(6, 4.5) <= 3.2**2)
    assert res.keys() == ["intensity", "intensity_log"]
    np.testing.assert_allclose(res.intensity.raw_data, _nan_outside(expected, roi), rtol=1e-6)
    assert res.intensity_log.raw_data is res.intensity.raw_data
    assert res.intensity.visualized.shape == (*NAV, 3)
    assert res.intensity.title == "intensity [lin]" and res.intensity_log.title == "intensity [log]"
    assert set(res.raw_results) >= {"intensity"}


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32])
def test_ring_dtypes(inline_ctx: Context, dtype):
    data = _data(dtype) % 200
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run(inline_ctx.create_ring_analysis(dataset=ds, cx=5, cy=6, ri=2, ro=5))
    d2 = _distance2(6, 5)
    expected = _apply(data, (d2 > 4) & (d2 <= 25))
    np.testing.assert_allclose(res.intensity.raw_data, expected, rtol=1e-6)


def test_defaults_follow_liberTEM(inline_ctx: Context):
    """Disk: centre size/2, r = 0.3 * min/2; ring: ro = min/2, ri = 0.8 ro; point: centre."""
    data = _data()
    ds = inline_ctx.load("memory", data=data)
    cy, cx = SIG[0] / 2, SIG[1] / 2
    disk = inline_ctx.create_disk_analysis(dataset=ds)
    assert (disk.parameters["cx"], disk.parameters["cy"]) == (cx, cy)
    r = min(SIG) / 2 * 0.3
    expected = _apply(data, _distance2(cy, cx) <= r * r)
    np.testing.assert_allclose(inline_ctx.run(disk).intensity.raw_data, expected, rtol=1e-6)
    ro = min(SIG) / 2
    d2 = _distance2(cy, cx)
    expected = _apply(data, (d2 > (0.8 * ro) ** 2) & (d2 <= ro * ro))
    ring = inline_ctx.run(inline_ctx.create_ring_analysis(dataset=ds))
    np.testing.assert_allclose(ring.intensity.raw_data, expected, rtol=1e-6)
    point = inline_ctx.run(inline_ctx.create_point_analysis(dataset=ds))
    np.testing.assert_array_equal(point.intensity.raw_data, data[..., int(cy), int(cx)])


@pytest.mark.parametrize("nav", [(9,), (3, 4)])
def test_point(inline_ctx: Context, nav):
    data = RNG.integers(0, 60000, nav + SIG).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run(inline_ctx.create_point_analysis(dataset=ds, x=10, y=2))
    np.testing.assert_array_equal(res.intensity.raw_data, data[..., 2, 10])


def test_point_rejects_3d_scan_and_outside(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 2, 4, 4)))
    with pytest.raises(InvalidParameterError, match="navigation dimensions"):
        inline_ctx.create_point_analysis(dataset=ds, x=1, y=1)
    ds2 = inline_ctx.load("memory", data=np.ones((2, 4, 4)))
    with pytest.raises(InvalidParameterError, match="outside"):
        inline_ctx.run(inline_ctx.create_point_analysis(dataset=ds2, x=9, y=1))


def test_mask_analysis_many_masks_roi(inline_ctx: Context):
    data = _data(np.float32)
    ds = inline_ctx.load("memory", data=data, num_partitions=4)
    masks = [RNG.random(SIG), (RNG.random(SIG) > 0.5).astype(np.float32), np.ones(SIG)]
    roi = RNG.random(NAV) > 0.5
    analysis = inline_ctx.create_mask_analysis(factories=[lambda m=m: m for m in masks], dataset=ds)
    res = inline_ctx.run(analysis, roi=roi)
    assert res.keys() == ["mask_0", "mask_1", "mask_2"]
    assert [r.title for r in res] == ["mask 0", "mask 1", "mask 2"]
    for i, m in enumerate(masks):
        expected = _nan_outside(_apply(data, m), roi)
        np.testing.assert_allclose(res[f"mask_{i}"].raw_data, expected, rtol=1e-5)
        assert res[i].visualized.shape == (*NAV, 3)


def test_mask_analysis_single_factory_stack_and_complex(inline_ctx: Context):
    data = _data()
    ds = inline_ctx.load("memory", data=data)
    stack = RNG.random((2, *SIG)) + 1j * RNG.random((2, *SIG))
    analysis = inline_ctx.create_mask_analysis(
        factories=lambda: stack, dataset=ds, mask_count=2, mask_dtype=np.complex128
    )
    res = inline_ctx.run(analysis)
    assert res.keys()[:6] == [
        "mask_0",
        "mask_0_log",
        "mask_0_real",
        "mask_0_imag",
        "mask_0_angle",
        "mask_0_complex",
    ]
    expected = np.einsum("...ij,ij->...", data.astype(np.float64), stack[1])
    np.testing.assert_allclose(res.mask_1_complex.raw_data, expected, rtol=1e-6)
    np.testing.assert_allclose(res.mask_1.raw_data, np.abs(expected), rtol=1e-6)


def test_roi_from_parameters(inline_ctx: Context):
    """LiberTEM's web form of a roi: parameters["roi"] = {"shape": "rect", ...}."""
    from libertem_gpu.analysis import SumAnalysis

    data = _data()
    ds = inline_ctx.load("memory", data=data)
    roi_spec = {"shape": "rect", "x": 1, "y": 2, "width": 2, "height": 1}
    res = inline_ctx.run(SumAnalysis(dataset=ds, parameters={"roi": roi_spec}))
    np.testing.assert_allclose(res.intensity.raw_data, data[2:4, 1:4].sum(axis=(0, 1)))


def test_needs_2d_frames(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((4, 5, 6)), sig_dims=1)
    with pytest.raises(InvalidParameterError, match="two signal dimensions"):
        inline_ctx.create_disk_analysis(dataset=ds)
    with pytest.raises(InvalidParameterError, match="two signal dimensions"):
        inline_ctx.create_ring_analysis(dataset=ds)
