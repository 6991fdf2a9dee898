"""CoMUDF against a plain NumPy centre of mass."""

from __future__ import annotations

import math

import numpy as np
import pytest

from libertem_gpu import CoMParams, CoMUDF
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.io.tiles import TilingScheme
from tests.udf.builtin_cases import CASES_2D_SIG, assert_nav, case_params, load_case

PARAMS = [
    pytest.param({}, id="whole-frame"),
    pytest.param(
        {"cy": 6.3, "cx": 8.1, "r": 5.5, "ri": 1.5, "scan_rotation": 33.0, "flip_y": True},
        id="annulus-rotated",
    ),
]


def com_reference(
    frames, sig, cy=None, cx=None, r=math.inf, ri=0.0, scan_rotation=0.0, flip_y=False
):
    """Centre of mass, shifts and rotated field of each frame, in float64 NumPy."""
    rows, cols = sig
    cy = rows // 2 if cy is None else cy
    cx = cols // 2 if cx is None else cx
    y, x = np.mgrid[:rows, :cols].astype(np.float64)
    d2 = (y - cy) ** 2 + (x - cx) ** 2
    w = d2 <= r * r
    if ri > 0:
        w &= d2 > ri * ri
    wf = frames.reshape(-1, rows, cols) * w
    total = wf.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        com_y = np.where(total == 0, cy, (wf * y).sum(axis=(1, 2)) / total)
        com_x = np.where(total == 0, cx, (wf * x).sum(axis=(1, 2)) / total)
    dy, dx = com_y - cy, com_x - cx
    if flip_y:
        dy = -dy
    a = math.radians(scan_rotation)
    fy = math.cos(a) * dy + math.sin(a) * dx
    fx = -math.sin(a) * dy + math.cos(a) * dx
    return np.stack([com_y, com_x], -1), np.stack([com_y - cy, com_x - cx], -1), fy, fx


def gradient_reference(f, valid, axis):
    """Loop version: central difference between valid neighbours, one-sided at borders."""
    f = np.moveaxis(f, axis, 0)
    ok = np.moveaxis(valid, axis, 0)
    out = np.full(f.shape, np.nan)
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            if not ok[i, j]:
                continue
            prev = i > 0 and ok[i - 1, j]
            nxt = i + 1 < f.shape[0] and ok[i + 1, j]
            if prev and nxt:
                out[i, j] = (f[i + 1, j] - f[i - 1, j]) / 2
            elif nxt:
                out[i, j] = f[i + 1, j] - f[i, j]
            elif prev:
                out[i, j] = f[i, j] - f[i - 1, j]
    return np.moveaxis(out, 0, axis)


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("case", case_params(CASES_2D_SIG))
def test_com_matches_numpy(ctx, rng, tmp_path, case, params):
    loaded = load_case(ctx, case, rng, tmp_path)
    res = loaded.run(ctx, CoMUDF.with_params(**params))
    raw_com, raw_shifts, fy, fx = com_reference(loaded.selected, case.sig, **params)
    for name, expected in (
        ("raw_com", raw_com),
        ("raw_shifts", raw_shifts),
        ("field", np.stack([fy, fx], -1)),
        ("field_y", fy),
        ("field_x", fx),
        ("magnitude", np.hypot(fy, fx)),
    ):
        assert res[name].data.dtype == np.float64
        assert_nav(res[name], expected, loaded, rtol=1e-9)
    assert res["regression"].data.shape == (1 + len(case.nav), 2)
    np.testing.assert_array_equal(res["regression"].data, 0)
    if len(case.nav) != 2:
        assert "divergence" not in res and "curl" not in res
        return
    valid = loaded.processed.reshape(case.nav)
    grid_y = np.full(case.nav, np.nan)
    grid_x = np.full(case.nav, np.nan)
    grid_y[valid], grid_x[valid] = fy, fx
    if valid.all():  # the plain NumPy definition
        div = np.gradient(grid_y, axis=0) + np.gradient(grid_x, axis=1)
        curl = np.gradient(grid_y, axis=1) - np.gradient(grid_x, axis=0)
    else:
        div = gradient_reference(grid_y, valid, 0) + gradient_reference(grid_x, valid, 1)
        curl = gradient_reference(grid_y, valid, 1) - gradient_reference(grid_x, valid, 0)
    assert_nav(res["divergence"], div[valid], loaded, rtol=1e-9)
    assert_nav(res["curl"], curl[valid], loaded, rtol=1e-9)


def test_known_shift_and_rotation(inline_ctx):
    data = np.zeros((3, 4, 9, 11), dtype=np.uint8)
    data[..., 5, 4] = 3  # one bright pixel: 1 below and 1 left of the centre (4, 5)
    data[1, 2] = 0  # an empty frame: shift 0, as in LiberTEM
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(dataset=ds, udf=CoMUDF.with_params())
    assert res["raw_com"].data[0, 0].tolist() == [5.0, 4.0]
    assert res["raw_shifts"].data[0, 0].tolist() == [1.0, -1.0]
    assert res["raw_shifts"].data[1, 2].tolist() == [0.0, 0.0]
    # 90 degrees clockwise: (dy, dx) = (1, -1) becomes (-1, -1)
    res = inline_ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(scan_rotation=90))
    np.testing.assert_allclose(res["field"].data[0, 0], [-1.0, -1.0], atol=1e-12)
    res = inline_ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(flip_y=True))
    np.testing.assert_allclose(res["field"].data[0, 0], [-1.0, -1.0], atol=1e-12)


@pytest.mark.parametrize("nav", [(24,), (2, 3, 4), (4, 6)])
def test_regression(ctx, rng, nav):
    data = rng.integers(0, 500, size=(*nav, 13, 17)).astype(np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = rng.random(nav) > 0.3
    base = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(r=6), roi=roi)["field"].raw_data
    coords = np.ones((int(roi.sum()), 1 + len(nav)))
    coords[:, 1:] = np.argwhere(roi)

    res = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(r=6, regression=0), roi=roi)
    np.testing.assert_allclose(res["regression"].data[0], base.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(res["field"].raw_data, base - base.mean(axis=0), atol=1e-12)

    res = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(r=6, regression=1), roi=roi)
    coef = np.linalg.lstsq(coords, base, rcond=None)[0]
    np.testing.assert_allclose(res["regression"].data, coef, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res["field"].raw_data, base - coords @ coef, atol=1e-9)
    # the residual of a least-squares fit is orthogonal to the coordinates
    np.testing.assert_allclose(coords.T @ res["field"].raw_data, 0, atol=1e-8)

    given = rng.random((1 + len(nav), 2))
    res = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(r=6, regression=given), roi=roi)
    np.testing.assert_allclose(res["field"].raw_data, base - coords @ given, atol=1e-12)


def test_partial_frames_equal_whole_frames(inline_ctx, rng):
    data = rng.integers(0, 500, size=(5, 6, 37, 29)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    udf = CoMUDF.with_params(cy=17.5, cx=13.2, r=12, ri=3)
    whole = inline_ctx.run_udf(dataset=ds, udf=udf, tiling=TilingScheme(depth=4))
    split = inline_ctx.run_udf(dataset=ds, udf=udf, tiling=TilingScheme(depth=3, sig_rows=4))
    np.testing.assert_allclose(split["raw_com"].data, whole["raw_com"].data, rtol=1e-12)
    np.testing.assert_allclose(split["curl"].data, whole["curl"].data, rtol=1e-9, atol=1e-12)


def test_partitions_of_a_run_share_one_prepared_disk(rng, monkeypatch):
    # The disk is drawn and encoded once per run in a process, not once per partition; a
    # later run with another disk prepares afresh and is never served the first one's.
    from libertem_gpu import Context

    calls = []
    original = CoMUDF._prepare

    def counting(self, folded=None):
        if self.meta.partition is not None:  # in a worker (the client prepares one to plan)
            calls.append(self.get_params().r)
        return original(self, folded)

    monkeypatch.setattr(CoMUDF, "_prepare", counting)
    data = rng.integers(0, 500, size=(4, 6, 21, 23)).astype(np.uint16)
    with Context("threads") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=6)
        small = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(cy=10, cx=11, r=4))
        assert calls == [4]
        large = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(cy=10, cx=11, r=8))
        assert calls == [4, 8]
    yy, xx = np.mgrid[:21, :23]
    for result, r in ((small, 4), (large, 8)):
        inside = ((yy - 10) ** 2 + (xx - 11) ** 2 <= r * r).astype(np.float64)
        total = np.einsum("abyx,yx->ab", data, inside)
        com_y = np.einsum("abyx,yx->ab", data, inside * yy) / total
        np.testing.assert_allclose(result["raw_com"].data[..., 0], com_y, rtol=1e-12)


def test_bad_parameters(inline_ctx, rng):
    with pytest.raises(InvalidParameterError, match="inner radius"):
        CoMUDF.with_params(r=3, ri=3)
    with pytest.raises(InvalidParameterError, match="CoMParams"):
        CoMUDF(com_params={"cy": 1})
    data = rng.integers(0, 100, size=(3, 4, 21)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, sig_dims=1)
    with pytest.raises(ShapeMismatchError, match=r"2-D frames.*\(21,\)"):
        inline_ctx.run_udf(dataset=ds, udf=CoMUDF.with_params())
    ds = inline_ctx.load("memory", data=rng.integers(0, 9, size=(3, 4, 5, 6)).astype(np.uint8))
    for bad in (2, np.zeros((2, 2))):
        with pytest.raises(InvalidParameterError, match="regression"):
            inline_ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(regression=bad))


def test_default_params_are_libertem_defaults():
    p = CoMUDF().params.com_params
    assert p == CoMParams() and p.r == math.inf and p.regression == -1
    assert CoMUDF.with_params(cy=1.5).copy().params.com_params.cy == 1.5
