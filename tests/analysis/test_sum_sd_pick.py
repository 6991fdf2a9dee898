"""Sum, standard deviation and pick analyses against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context
from libertem_gpu.errors import InvalidParameterError

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32])
def test_sum(inline_ctx: Context, dtype):
    data = (RNG.integers(0, 250, (4, 5, 7, 9)) - (50 if dtype == np.int32 else 0)).astype(dtype)
    ds = inline_ctx.load("memory", data=data, num_partitions=3)
    roi = RNG.random((4, 5)) > 0.5
    res = inline_ctx.run(inline_ctx.create_sum_analysis(dataset=ds), roi=roi)
    assert res.keys() == ["intensity", "intensity_lin"]  # LiberTEM: log image first
    assert res.intensity.title == "intensity [log]"
    expected = data[roi].astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(res.intensity.raw_data, expected, rtol=1e-6)
    assert res.intensity.visualized.shape == (7, 9, 3)


def test_sd_every_executor(ctx: Context):
    data = RNG.integers(0, 4000, (5, 6, 8, 7)).astype(np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=4)
    res = ctx.run(ctx.create_sd_analysis(dataset=ds))
    assert res.keys() == ["intensity", "intensity_lin"]
    expected = data.reshape(-1, 8, 7).astype(np.float64).std(axis=0)
    np.testing.assert_allclose(res.intensity.raw_data, expected, rtol=1e-9)
    np.testing.assert_allclose(res.raw_results["mean"].data, data.mean(axis=(0, 1)), rtol=1e-9)


@pytest.mark.parametrize(
    "nav, coords",
    [((7,), {"x": 4}), ((3, 5), {"x": 4, "y": 2}), ((2, 3, 4), {"x": 3, "y": 1, "z": 1})],
)
def test_pick(inline_ctx: Context, nav, coords):
    data = RNG.integers(0, 65000, (*nav, 6, 5)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run(inline_ctx.create_pick_analysis(dataset=ds, **coords))
    index = tuple(coords[k] for k in ("z", "y", "x") if k in coords)
    np.testing.assert_array_equal(res.intensity.raw_data, data[index])
    assert res.keys() == ["intensity", "intensity_lin"]
    assert res.intensity_lin.desc.startswith("the frame at x=")


def test_pick_needs_matching_coordinates(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((3, 5, 4, 4)))
    with pytest.raises(InvalidParameterError, match="needs exactly y, x"):
        inline_ctx.create_pick_analysis(dataset=ds, x=1)
    with pytest.raises(InvalidParameterError, match="outside the scan"):
        inline_ctx.create_pick_analysis(dataset=ds, x=1, y=7)


def test_corrections_rejected(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 4, 4)))
    with pytest.raises(InvalidParameterError, match="corrections"):
        inline_ctx.run(inline_ctx.create_sum_analysis(dataset=ds), corrections=object())
