"""Positions without data (a sync_offset that shifts the scan past the file) are never
processed: they stay invalid, and counts, means and fits use the positions with data only."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import CoMUDF, StdDevUDF, SumSigUDF
from tests.conftest import random_data


@pytest.mark.parametrize("offset", [62, -61])
def test_stddev_counts_only_frames_that_exist(ctx, rng, offset):
    data = random_data(rng, (8, 8, 5, 6), np.uint16)
    ds = ctx.load("memory", data=data, sync_offset=offset, num_partitions=4)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    flat = data.reshape(64, 5, 6).astype(np.float64)
    present = flat[offset:] if offset > 0 else flat[: 64 + offset]
    assert int(res["num_frames"].data[0]) == len(present)
    np.testing.assert_allclose(res["mean"].data, present.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(res["var"].data, present.var(axis=0), rtol=1e-9, atol=1e-9)


def test_nav_results_are_invalid_where_there_is_no_data(ctx, rng):
    data = random_data(rng, (4, 5, 6, 7), np.float32)
    ds = ctx.load("memory", data=data, sync_offset=3, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"]
    flat = res.data.reshape(-1)
    assert np.isnan(flat[-3:]).all()
    np.testing.assert_allclose(flat[:-3], data.reshape(20, -1)[3:].sum(axis=1), rtol=1e-5)
    assert not res.valid_mask.reshape(-1)[-3:].any() and res.valid_mask.reshape(-1)[:-3].all()
    assert res.masked_data.mask.reshape(-1)[-3:].all()


def test_partial_com_regression_fits_only_the_merged_positions(inline_ctx, rng):
    """A field with a linear descan ramp: the regression of a partial result equals the fit of
    the positions merged so far, not one that counts the others as zero shift."""
    ny, nx, h, w = 8, 9, 15, 15
    yy, xx = np.mgrid[:h, :w]
    frames = np.empty((ny, nx, h, w))
    for iy in range(ny):
        for ix in range(nx):
            cy, cx = 7 + 0.2 * iy, 7 - 0.15 * ix
            frames[iy, ix] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4)
    frames += rng.random(frames.shape) * 1e-3
    ds = inline_ctx.load("memory", data=frames, num_partitions=6)
    udf = CoMUDF.with_params(cy=7.0, cx=7.0, regression=1)
    partials = list(inline_ctx.run_udf_iter(dataset=ds, udf=udf))
    first = partials[0]
    valid = first.damage.data.reshape(-1)
    assert 0 < valid.sum() < ny * nx
    shifts = first.buffers[0]["raw_shifts"].data.reshape(-1, 2)[valid]
    coords = np.ones((valid.sum(), 3))
    coords[:, 1:] = np.stack(np.unravel_index(np.flatnonzero(valid), (ny, nx)), axis=-1)
    want = np.linalg.lstsq(coords, shifts, rcond=None)[0]
    np.testing.assert_allclose(first.buffers[0]["regression"].data, want, atol=1e-9)
    assert np.isnan(first.buffers[0]["field"].data.reshape(-1, 2)[~valid]).all()
